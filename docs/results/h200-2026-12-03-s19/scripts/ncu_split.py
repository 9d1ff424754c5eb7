"""Session 19: decode calls for Nsight Compute (B, N from argv), default config."""
import sys
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import bench_decode as bd
from turboquant.paged import PagedKVLayout
from turboquant.quantizer import TurboQuantMSE
from turboquant.triton.decode import tq_paged_decode

b, n = int(sys.argv[1]), int(sys.argv[2])
gen = torch.Generator(device="cuda").manual_seed(0)
qz = TurboQuantMSE(128, 4).to("cuda")
lay = PagedKVLayout(8, 128, 4, 4)
pool, table = bd._random_pool(b, n, lay, gen)
q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
for _ in range(5):
    tq_paged_decode(q, pool, lay, table, lens, qz.rotation, qz.centroids, qz.centroids, validate=False, max_seq_len=n)
torch.cuda.synchronize()
