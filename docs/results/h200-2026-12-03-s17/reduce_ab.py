"""Session 17 run 1: the reduce kernel's (rows, warps) against the launcher's choice, and
per-kernel times. Run from the repository root: ``python docs/results/h200-2026-12-03-s17/reduce_ab.py``."""
import dataclasses, json, sys
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import bench_decode as bd
from turboquant.paged import PagedKVLayout
from turboquant.quantizer import TurboQuantMSE
from turboquant.triton.decode import default_config, tq_paged_decode

gen = torch.Generator(device="cuda").manual_seed(0)
qz = TurboQuantMSE(128, 4).to("cuda")
variants = [None, (32, 4), (32, 8), (64, 8), (128, 8), (16, 4)]
for b in (1, 8, 32):
    for n in (1024, 4096, 32768):
        lay = PagedKVLayout(8, 128, 4, 4)
        pool, table = bd._random_pool(b, n, lay, gen)
        q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
        cfg0 = default_config(b * 8, n, q.device)
        def run(cfg):
            return tq_paged_decode(q, pool, lay, table, lens, qz.rotation, qz.centroids, qz.centroids,
                                   validate=False, max_seq_len=n, config=cfg)
        ref = run(cfg0)
        res = {}
        for rnd in range(3):
            for v in variants:
                cfg = cfg0 if v is None else dataclasses.replace(cfg0, reduce_rows=v[0], reduce_warps=v[1])
                if rnd == 0:
                    assert torch.equal(run(cfg), ref) or v is not None
                res.setdefault(str(v), []).append(bd.cuda_graph_timer(lambda: run(cfg)))
        prof = bd.profile_kernels(lambda: run(dataclasses.replace(cfg0, pdl=False)))
        print(json.dumps(dict(B=b, N=n, us={k: round(sorted(t)[1], 2) for k, t in res.items()}, kernels_us=prof)), flush=True)
