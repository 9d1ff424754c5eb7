"""A/B of the compress kernel's bf16 piece count (3 vs 2): time, config, index agreement."""
import json, statistics, sys
import torch
sys.path.insert(0, ".")
import turboquant.triton.compress as C
from turboquant.quantizer import TurboQuantMSE

def time_fn(fn, iters=30):
    for _ in range(3): fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        s, e = torch.cuda.Event(True), torch.cuda.Event(True)
        s.record(); fn(); e.record(); e.synchronize(); ts.append(s.elapsed_time(e) * 1e3)
    return statistics.median(ts)

q = TurboQuantMSE(128, 4).to("cuda")
for pieces in (3, 2):
    C.BF16_PIECES = pieces
    for tokens in (65536, 262144):
        x = torch.randn(tokens, 8, 128, device="cuda", dtype=torch.bfloat16)
        p, n = C.tq4_compress(x, q.rotation, q.boundaries, bits=4)
        moved = x.numel() * 2 + p.numel() + n.numel() * 4
        t = time_fn(lambda: C.tq4_compress(x, q.rotation, q.boundaries, bits=4, out_packed=p, out_norms=n))
        # agreement with the fp32 quantizer on 64K rows
        xs = x[:8192]
        ref_p, _ = q.quantize_packed(xs)
        idx, ref = q.unpack(p[:8192]), q.unpack(ref_p)
        bad = idx != ref
        y = (xs.float() / xs.float().norm(dim=-1, keepdim=True)) @ q.rotation.T
        gap = (y[bad].unsqueeze(-1) - q.boundaries).abs().min(-1).values if bad.any() else torch.zeros(1)
        print(json.dumps({"pieces": pieces, "tokens": tokens, "us": round(t, 1), "tbps": round(moved / t / 1e6, 3),
                          "config": str(C._compress_kernel.best_config), "mismatch_frac": bad.float().mean().item(),
                          "max_gap": gap.max().item()}), flush=True)
