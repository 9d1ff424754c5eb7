"""Scratch: programs per SM x pieces (prefetch on), repeated and interleaved; fp16 input."""
import itertools, json, sys, statistics
import torch
sys.path.insert(0, "."); sys.path.insert(0, "scripts")
from bench_kernels import time_fn
import turboquant.triton.compress as C
from turboquant import TurboQuantMSE

q = TurboQuantMSE(128, 4).to("cuda")
sms = torch.cuda.get_device_properties(0).multi_processor_count
C.TUNE_ROWS = 1 << 40
for tokens in (262144, 65536):
    x = torch.randn(tokens, 8, 128, device="cuda", dtype=torch.bfloat16)
    ref_p, ref_n = C.tq4_compress(x, q.rotation, q.boundaries)
    moved = x.numel() * 2 + ref_p.numel() + ref_n.numel() * 4
    cases = [((64, 4, 1), pieces, per_sm, pre, dt) for pieces in (3, 2) for per_sm in (1, 2, 3, 4, 8) for pre in (True,) for dt in ("bf16",)]
    cases += [((64, 4, 1), 3, 4, False, "bf16"), ((64, 4, 1), 3, 2, False, "bf16"), ((64, 4, 1), 2, 2, True, "fp16"), ((64, 4, 1), 2, 4, True, "fp16")]
    res = {c: [] for c in cases}
    xs = {"bf16": x, "fp16": x.half()}
    for rep in range(3):
        for c in cases:
            (r, w, st), pieces, per_sm, pre, dt = c
            C._SMALL_LAUNCH = dict(BLOCK_R=r, num_warps=w, num_stages=st)
            C.PREFETCH_ROWS, C.BF16_PIECES = pre, pieces
            C._max_programs = lambda dev, k=per_sm: k * sms
            xx = xs[dt]
            p, n = C.tq4_compress(xx, q.rotation, q.boundaries)
            res[c].append(time_fn(lambda: C.tq4_compress(xx, q.rotation, q.boundaries, out_packed=p, out_norms=n)))
    for c, ts in res.items():
        (r, w, st), pieces, per_sm, pre, dt = c
        print(json.dumps({"tokens": tokens, "dtype": dt, "pieces": pieces, "per_sm": per_sm, "prefetch": pre,
                          "us": [round(t, 1) for t in ts], "tbps_best": round(moved / min(ts) / 1e6, 3),
                          "tbps_median": round(moved / statistics.median(ts) / 1e6, 3)}), flush=True)
