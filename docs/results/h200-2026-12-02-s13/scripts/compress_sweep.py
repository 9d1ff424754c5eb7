"""Scratch: time _compress_kernel configs x prefetch x pieces directly (bf16, 256K x 8 x 128)."""
import itertools, json, sys
import torch
sys.path.insert(0, ".")
sys.path.insert(0, "scripts")
from bench_kernels import time_fn
import turboquant.triton.compress as C
from turboquant import TurboQuantMSE

tokens = int(sys.argv[1]) if len(sys.argv) > 1 else 262144
q = TurboQuantMSE(128, 4).to("cuda")
x = torch.randn(tokens, 8, 128, device="cuda", dtype=torch.bfloat16)
ref_p, ref_n = C.tq4_compress(x, q.rotation, q.boundaries)
moved = x.numel() * 2 + ref_p.numel() + ref_n.numel() * 4
C.TUNE_ROWS = 1 << 40
sms = torch.cuda.get_device_properties(0).multi_processor_count
configs = [(64, 4, 1), (64, 4, 2), (128, 8, 1), (128, 8, 2), (64, 8, 1), (128, 4, 1), (32, 4, 1), (256, 16, 1)]
for (r, w, st), pre, pieces, per_sm in itertools.product(configs, (False, True), (3, 2), (1, 2, 4)):
    if per_sm != 4 and not ((r, w) in ((64, 4), (128, 8))):
        continue
    C._SMALL_LAUNCH = dict(BLOCK_R=r, num_warps=w, num_stages=st)
    C.PREFETCH_ROWS, C.BF16_PIECES = pre, pieces
    C._max_programs = lambda dev, k=per_sm: k * sms
    try:
        p, n = C.tq4_compress(x, q.rotation, q.boundaries)
        torch.cuda.synchronize()
        mism = (p != ref_p).float().mean().item()
        us = time_fn(lambda: C.tq4_compress(x, q.rotation, q.boundaries, out_packed=p, out_norms=n))
        print(json.dumps({"cfg": [r, w, st], "prefetch": pre, "pieces": pieces, "per_sm": per_sm,
                          "us": round(us, 1), "tbps": round(moved / us / 1e6, 3), "mismatch": mism}), flush=True)
    except Exception as e:
        print(json.dumps({"cfg": [r, w, st], "prefetch": pre, "pieces": pieces, "per_sm": per_sm, "error": str(e)[:200]}), flush=True)
# fp16 input: two fp16 pieces of Pi (64 KB), what a two-piece path costs
xh = x.to(torch.float16)
C.PREFETCH_ROWS = True
for (r, w, st), per_sm in itertools.product([(64, 4, 1), (128, 8, 1), (64, 4, 2)], (2, 4)):
    C._SMALL_LAUNCH = dict(BLOCK_R=r, num_warps=w, num_stages=st)
    C._max_programs = lambda dev, k=per_sm: k * sms
    p, n = C.tq4_compress(xh, q.rotation, q.boundaries)
    us = time_fn(lambda: C.tq4_compress(xh, q.rotation, q.boundaries, out_packed=p, out_norms=n))
    print(json.dumps({"fp16": True, "cfg": [r, w, st], "per_sm": per_sm, "us": round(us, 1), "tbps": round(moved / us / 1e6, 3)}), flush=True)
