"""Prefetch on/off at one fixed config (BLOCK_R 64, 4 warps, 1 stage; no autotuner), 256K x 8 heads bf16, 5 interleaved rounds."""
import json, statistics, sys
sys.path.insert(0, "."); sys.path.insert(0, "scripts")
import torch
import turboquant.triton.compress as C
from turboquant import TurboQuantMSE
from bench_kernels import time_fn
C.TUNE_ROWS = 1 << 40
q = TurboQuantMSE(128, 4).to("cuda")
x = torch.randn(262144, 8, 128, device="cuda", dtype=torch.bfloat16)
nbytes = x.numel() * 2 + x.shape[0] * 8 * (64 + 4)
res = {}
for r in range(5):
    for br, w in ((64, 4), (128, 8)):
        for pf in (True, False):
            C.PREFETCH_ROWS = pf
            C._SMALL_LAUNCH = dict(BLOCK_R=br, num_warps=w, num_stages=1)
            res.setdefault(f"R{br}w{w}_prefetch={pf}", []).append(time_fn(lambda: C.tq4_compress(x, q.rotation, q.boundaries)))
for k, v in res.items():
    m = statistics.median(v)
    print(json.dumps(dict(variant=k, us=round(m, 1), tbps=round(nbytes / m / 1e6, 3), rounds=[round(t) for t in v])))
