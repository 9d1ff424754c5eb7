import sys, tempfile
from pathlib import Path
sys.path.insert(0, "scripts")
import decode_static_report as report
import prefill_static_report as pr
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
fa = pr.fa
orig = report.compile_sm90
def compile_sm90(fn, pointers, constants, aligned, warps, stages, types=None, maxnreg=None):
    signature = {name: pointers.get(name, "i32") for name in fn.arg_names if name not in constants}
    signature.update(types or {})
    signature.update(dict.fromkeys(constants, "constexpr"))
    attrs = {(i,): [["tt.divisibility", 16]] for i, name in enumerate(fn.arg_names) if name in pointers or name in aligned}
    opts = {"num_warps": warps, "num_stages": stages}
    if maxnreg: opts["maxnreg"] = maxnreg
    return triton.compile(ASTSource(fn, signature, constants, attrs), target=GPUTarget("cuda", 90, 32), options=opts)
with tempfile.TemporaryDirectory() as tmp:
    for bm, bn, w, st, mr in [(64,64,4,2,None),(64,64,4,2,168),(64,64,4,3,168),(64,32,4,2,168),(64,32,4,3,128),(128,64,8,2,128),(128,32,8,2,128),(64,128,4,2,168)]:
        fn = fa._attn_fwd.fn
        pointers = dict(pr.POINTERS, kc_ptr="*i32", vc_ptr="*i32")
        constants = dict(D=128, BLOCK_D=128, K_BITS=4, V_BITS=4, IS_CAUSAL=True, HAS_MASK=False, PAIR=True)
        constants.update(BLOCK_M=bm, BLOCK_N=bn, sqd=1, skd=1, svd=1, sod=1, sknn=1, svnn=1)
        k = compile_sm90(fn, pointers, constants, pr.ALIGNED, w, st, types={"sm_scale": "fp32"}, maxnreg=mr)
        s = report.kernel_stats(k, Path(tmp))
        print(bm, bn, w, st, mr, "regs", s["registers"], "spill", s["spill"], "smem", s["shared"], "loop", s["loop"], "per key-row", round(s["loop"]/bn, 1))
