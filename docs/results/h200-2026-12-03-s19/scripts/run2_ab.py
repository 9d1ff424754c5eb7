"""Session 19 run 2: row copies with per-lane register tables against the 8-accumulator kernel
(DecodeConfig.row_copies), plane dots from 0 tokens per split (planes_min_chunk=0) and 32/1/8 at
B=1, against bf16 SDPA flash; 5 rounds, the order of the variants rotated every round, medians."""
import json, sys, dataclasses
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import bench_decode as bd
from turboquant.paged import PagedKVLayout
from turboquant.quantizer import TurboQuantMSE
from turboquant.triton.decode import DecodeConfig, default_config, tq_paged_decode
from torch.nn.attention import SDPBackend

SHAPES = [(8, 32768), (8, 16384), (8, 4096), (8, 2048), (16, 4096), (16, 32768), (32, 4096), (32, 32768),
          (4, 32768), (2, 32768), (1, 65536), (1, 131072)]
gen = torch.Generator(device="cuda").manual_seed(0)
qz = TurboQuantMSE(128, 4).to("cuda")
flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
for b, n in SHAPES:
    lay = PagedKVLayout(8, 128, 4, 4)
    pool, table = bd._random_pool(b, n, lay, gen)
    q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
    k = torch.randn(b, 8, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen); v = torch.randn_like(k)
    lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
    d = default_config(b * 8, n, q.device)
    cfgs = {"default": d, "no copies": dataclasses.replace(d, row_copies=False)}
    if d.num_warps == 1 and n <= 4096:
        cfgs["planes from 0"] = dataclasses.replace(d, planes_min_chunk=0)
        cfgs["planes from 0, no copies"] = dataclasses.replace(d, planes_min_chunk=0, row_copies=False)
    if b <= 2:
        cfgs["32/1/8"] = DecodeConfig(ctas_per_sm=8)
        cfgs["128/4/2"] = DecodeConfig(block_n=128, num_warps=4, ctas_per_sm=2)
    def run(c):
        return tq_paged_decode(q, pool, lay, table, lens, qz.rotation, qz.centroids, qz.centroids,
                               validate=False, max_seq_len=n, config=c)
    ref = run(d)
    names = ["flash", *cfgs]
    res = {}
    for rnd in range(5):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for name in order:
            if name == "flash":
                res.setdefault(name, []).append(bd.cuda_graph_timer(lambda: flash(q[:, :, None], k, v)))
                continue
            c = cfgs[name]
            if rnd == 0:
                torch.testing.assert_close(run(c), ref, atol=2e-3, rtol=2e-3)
            res.setdefault(name, []).append(bd.cuda_graph_timer(lambda: run(c)))
    us = {nm: round(sorted(t)[2], 2) for nm, t in res.items()}
    same = torch.equal(run(cfgs["no copies"]), ref)  # bit for bit (the copies add exact zeros)
    print(json.dumps(dict(B=b, N=n, default=f"{d.block_n}/{d.num_warps}/{d.ctas_per_sm}", no_copies_bitwise_equal=same,
                          x_flash={nm: round(us["flash"] / u, 3) for nm, u in us.items() if nm != "flash"},
                          us=us, spread={nm: round(max(t) / min(t), 3) for nm, t in res.items()})), flush=True)
    del pool, k, v
