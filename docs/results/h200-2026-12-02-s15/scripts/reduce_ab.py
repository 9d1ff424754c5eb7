"""Time _reduce_kernel alone over ROWS x num_warps at the decode benchmark's shapes."""
import json, sys, torch
sys.path.insert(0, ".")
sys.path.insert(0, "scripts")
from turboquant.triton import decode
from bench_decode import cuda_graph_timer
D, G, GP, H = 128, 4, 16, 8
rot = torch.linalg.qr(torch.randn(D, D, device="cuda"))[0].contiguous()
for b, splits in ((8, 16), (8, 33), (32, 17), (32, 2)):
    n = b * H * splits * G
    acc = torch.randn(n * D, device="cuda")
    ml = torch.randn(n * 2, device="cuda")
    out = torch.empty(b, H * G, D, device="cuda", dtype=torch.bfloat16)
    for rows in (16, 32, 64, 128):
        for warps in (2, 4, 8):
            def f():
                decode._reduce_kernel[(H, b)](acc, ml, rot, rot.stride(0), rot.stride(1), out, out.stride(0), out.stride(1), splits, G=G, G_PAD=GP, D=D, ROWS=rows, num_warps=warps)
            try:
                t = cuda_graph_timer(f)
            except Exception as e:  # out of resources
                t = None
            print(json.dumps(dict(B=b, splits=splits, rows=rows, warps=warps, us=t and round(t, 2))))
