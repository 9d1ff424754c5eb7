"""Session 19 run 6: K3/V3 at B=8 (slower in run 5 than in session 18): row copies and plane dots
on/off, 5 rounds, order rotated, medians."""
import json, sys, dataclasses
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import bench_decode as bd
from turboquant.paged import PagedKVLayout
from turboquant.quantizer import TurboQuantMSE
from turboquant.triton.decode import default_config, tq_paged_decode

gen = torch.Generator(device="cuda").manual_seed(0)
qz = TurboQuantMSE(128, 3).to("cuda")
for b, n in [(8, 32768), (8, 16384), (32, 32768)]:
    lay = PagedKVLayout(8, 128, 3, 3)
    pool, table = bd._random_pool(b, n, lay, gen)
    q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
    lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
    d = default_config(b * 8, n, q.device, (3, 3))
    cfgs = {"default": d, "no copies": dataclasses.replace(d, row_copies=False),
            "no planes": dataclasses.replace(d, planes=False)}
    run = lambda c: tq_paged_decode(q, pool, lay, table, lens, qz.rotation, qz.centroids, qz.centroids,
                                    validate=False, max_seq_len=n, config=c)
    ref = run(d)
    for c in cfgs.values():
        torch.testing.assert_close(run(c), ref, atol=2e-3, rtol=2e-3)
    names, res = list(cfgs), {}
    for rnd in range(5):
        for nm in names[rnd % 3:] + names[:rnd % 3]:
            res.setdefault(nm, []).append(bd.cuda_graph_timer(lambda: run(cfgs[nm])))
    print(json.dumps(dict(B=b, N=n, bits=3, us={nm: round(sorted(t)[2], 2) for nm, t in res.items()})), flush=True)
    del pool
