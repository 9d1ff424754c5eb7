"""Session 20 run 2: k_registers (K tile as the A operand from registers, P transposed by
movmatrix) with and without row copies, V planes by movmatrix (v_registers), plane dots from
0 tokens per split with k_registers, 16-token tiles, the contiguous kernel; against the
session-19 kernel and bf16 SDPA flash; 5 rounds, order rotated, medians of CUDA-graph replays."""
import json, sys, dataclasses
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import bench_decode as bd
from turboquant.paged import PagedKVLayout
from turboquant.quantizer import TurboQuantMSE
from turboquant.triton.decode import DecodeConfig, default_config, tq_paged_decode, tq_decode
from torch.nn.attention import SDPBackend

SHAPES = [(8, 32768), (8, 16384), (8, 4096), (8, 2048), (8, 1024), (16, 2048), (16, 32768), (32, 32768),
          (32, 4096), (4, 32768), (2, 32768), (1, 131072), (1, 32768)]
gen = torch.Generator(device="cuda").manual_seed(0)
qz = TurboQuantMSE(128, 4).to("cuda")
flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
R = dataclasses.replace
for b, n in SHAPES:
    lay = PagedKVLayout(8, 128, 4, 4)
    pool, table = bd._random_pool(b, n, lay, gen)
    q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
    k = torch.randn(b, 8, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen); v = torch.randn_like(k)
    lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
    d = default_config(b * 8, n, q.device)
    cfgs = {"base": d}
    one = d if d.num_warps == 1 else DecodeConfig(ctas_per_sm=8 if b * 8 < 128 else 16)
    cfgs["k"] = R(one, k_registers=True)
    cfgs["k nc"] = R(one, k_registers=True, row_copies=False)
    cfgs["kv nc"] = R(one, k_registers=True, v_registers=True, row_copies=False)
    cfgs["k 0"] = R(one, k_registers=True, planes_min_chunk=0)
    cfgs["k nc 0"] = R(one, k_registers=True, row_copies=False, planes_min_chunk=0)
    if n >= 16384:
        cfgs["k 16"] = R(one, k_registers=True, block_n=16, planes_min_chunk=0)
    def run(c):
        return tq_paged_decode(q, pool, lay, table, lens, qz.rotation, qz.centroids, qz.centroids,
                               validate=False, max_seq_len=n, config=c)
    fns = {nm: (lambda c=c: run(c)) for nm, c in cfgs.items()}
    if b in (8, 32) and n in (32768, 4096):
        kp = torch.randint(0, 256, (b, 8, n, 64), dtype=torch.uint8, device="cuda", generator=gen)
        kn = torch.rand(b, 8, n, device="cuda", generator=gen) + 0.5
        vp, vn = torch.randint_like(kp, 0, 256), torch.rand_like(kn) + 0.5
        dc = default_config(b * 8, n, q.device)
        for nm, c in (("contig base", None), ("contig k", R(one, k_registers=True)),
                      ("contig k nc", R(one, k_registers=True, row_copies=False))):
            fns[nm] = (lambda c=c: tq_decode(q, kp, kn, vp, vn, qz.rotation, qz.centroids, qz.centroids, config=c))
        cref = fns["contig base"]()
    ref = run(d)
    names = ["flash", *fns]
    res = {}
    for rnd in range(5):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for name in order:
            if name == "flash":
                res.setdefault(name, []).append(bd.cuda_graph_timer(lambda: flash(q[:, :, None], k, v)))
                continue
            f = fns[name]
            if rnd == 0:
                torch.testing.assert_close(f(), cref if name.startswith("contig") else ref, atol=2e-3, rtol=2e-3)
            res.setdefault(name, []).append(bd.cuda_graph_timer(f))
    us = {nm: round(sorted(t)[2], 2) for nm, t in res.items()}
    print(json.dumps(dict(B=b, N=n, default=f"{d.block_n}/{d.num_warps}/{d.ctas_per_sm}", one=f"{one.block_n}/{one.num_warps}/{one.ctas_per_sm}",
                          x_flash={nm: round(us["flash"] / u, 3) for nm, u in us.items() if nm != "flash"},
                          us=us, spread={nm: round(max(t) / min(t), 3) for nm, t in res.items()})), flush=True)
    del pool, k, v
