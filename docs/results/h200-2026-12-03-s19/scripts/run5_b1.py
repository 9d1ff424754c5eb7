"""Session 19 run 5: B=1 at N=32K-128K, 128/4/2 (the table below 1M tokens) against 32/1/8, with
the landed kernels; 5 rounds, order rotated, medians."""
import json, sys
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import bench_decode as bd
from turboquant.paged import PagedKVLayout
from turboquant.quantizer import TurboQuantMSE
from turboquant.triton.decode import DecodeConfig, tq_paged_decode
from torch.nn.attention import SDPBackend

gen = torch.Generator(device="cuda").manual_seed(0)
qz = TurboQuantMSE(128, 4).to("cuda")
flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
CFGS = {"128/4/2": DecodeConfig(block_n=128, num_warps=4, ctas_per_sm=2), "32/1/8": DecodeConfig(ctas_per_sm=8)}
for b, n in [(1, 32768), (1, 65536), (1, 131072), (2, 65536)]:
    lay = PagedKVLayout(8, 128, 4, 4)
    pool, table = bd._random_pool(b, n, lay, gen)
    q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
    k = torch.randn(b, 8, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen); v = torch.randn_like(k)
    lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
    run = lambda c=None: tq_paged_decode(q, pool, lay, table, lens, qz.rotation, qz.centroids, qz.centroids,
                                         validate=False, max_seq_len=n, config=c)
    ref = run()
    variants = {"flash": lambda: bd.cuda_graph_timer(lambda: flash(q[:, :, None], k, v))}
    for name, c in CFGS.items():
        torch.testing.assert_close(run(c), ref, atol=2e-3, rtol=2e-3)
        variants[name] = lambda c=c: bd.cuda_graph_timer(lambda: run(c))
    names, res = list(variants), {}
    for rnd in range(5):
        for nm in names[rnd % len(names):] + names[:rnd % len(names)]:
            res.setdefault(nm, []).append(variants[nm]())
    us = {nm: round(sorted(t)[2], 2) for nm, t in res.items()}
    print(json.dumps(dict(B=b, N=n, us=us, x_flash={nm: round(us["flash"] / u, 3) for nm, u in us.items()})), flush=True)
    del pool, k, v
