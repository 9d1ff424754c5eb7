import sys, torch
sys.path.insert(0, ".")
import turboquant.triton.compress as C
from turboquant import TurboQuantMSE
C.TUNE_ROWS = 1 << 40
C._SMALL_LAUNCH = dict(BLOCK_R=64, num_warps=4, num_stages=1)
q = TurboQuantMSE(128, 4).to("cuda")
x = torch.randn(262144, 8, 128, device="cuda", dtype=torch.bfloat16)
p, n = C.tq4_compress(x, q.rotation, q.boundaries)
torch.cuda.synchronize()
