"""B=8 N=32K paged K4/V4 with k_registers, 6 calls (for Nsight Compute)."""
import sys
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import bench_decode as bd
from turboquant.paged import PagedKVLayout
from turboquant.quantizer import TurboQuantMSE
from turboquant.triton.decode import default_config, tq_paged_decode
import dataclasses
gen = torch.Generator(device="cuda").manual_seed(0)
qz = TurboQuantMSE(128, 4).to("cuda")
b, n = 8, 32768
lay = PagedKVLayout(8, 128, 4, 4)
pool, table = bd._random_pool(b, n, lay, gen)
q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
cfg = dataclasses.replace(default_config(b * 8, n, q.device), k_registers=True)
for _ in range(6):
    tq_paged_decode(q, pool, lay, table, lens, qz.rotation, qz.centroids, qz.centroids, validate=False, max_seq_len=n, config=cfg)
torch.cuda.synchronize()
