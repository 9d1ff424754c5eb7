"""One launch each of the dense and the K4/V4 prefill kernel (8K causal, 32/8 heads) at the
session-11 winning config of _tq4_kv (BLOCK_M 64, BLOCK_N 128, 4 warps, 2 stages), for ncu."""
import sys, torch, triton
sys.path.insert(0, ".")
import turboquant.triton.flash_attention as fa
from turboquant import TurboQuantMSE
from turboquant.triton import tq4_compress, triton_flash_attention, triton_flash_attention_tq4_kv
fa._attn_fwd.configs = [triton.Config({"BLOCK_M": 64, "BLOCK_N": 128}, num_warps=4, num_stages=2)]
qz = TurboQuantMSE(128, 4).to("cuda")
n = 8192
q, k, v = (torch.randn(1, h, n, 128, device="cuda", dtype=torch.bfloat16) for h in (32, 8, 8))
kp, kn = tq4_compress(k, qz.rotation, qz.boundaries); vp, vn = tq4_compress(v, qz.rotation, qz.boundaries)
for _ in range(2):
    triton_flash_attention(q, k, v, is_causal=True)
    triton_flash_attention_tq4_kv(q, kp, kn, vp, vn, qz.centroids, qz.rotation, is_causal=True, v_centroids=qz.centroids)
torch.cuda.synchronize()
