"""Session 17 run 3 (``--b1``: the B=1 check that found no GPU): short-context launch
configurations against bf16 SDPA flash, 3 interleaved rounds. Run from the repository root:
``python docs/results/h200-2026-12-03-s17/config_ab.py``."""
import dataclasses, json, sys
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import bench_decode as bd
from turboquant.paged import PagedKVLayout
from turboquant.quantizer import TurboQuantMSE
from turboquant.triton.decode import DecodeConfig, default_config, tq_paged_decode
from torch.nn.attention import SDPBackend

gen = torch.Generator(device="cuda").manual_seed(0)
qz = TurboQuantMSE(128, 4).to("cuda")
cands = {"128/4/4": DecodeConfig(block_n=128, num_warps=4, ctas_per_sm=4)} if "--b1" in sys.argv else {
    "128/4/4 min256": DecodeConfig(block_n=128, num_warps=4, ctas_per_sm=4, min_split_tokens=256),
    "128/4/3": DecodeConfig(block_n=128, num_warps=4, ctas_per_sm=3),
    "128/4/2": DecodeConfig(block_n=128, num_warps=4, ctas_per_sm=2),
    "32/1/8": DecodeConfig(ctas_per_sm=8),
    "32/1/16": DecodeConfig(ctas_per_sm=16),
    "32/1/8 min128": DecodeConfig(ctas_per_sm=8, min_split_tokens=128),
}
flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
shapes = [(1, n) for n in (8192, 16384, 32768)] + [(8, 1024), (8, 2048)] if "--b1" in sys.argv else [(b, n) for b in (1, 8, 16, 32) for n in (1024, 2048, 4096)]
for b, n in shapes:
    if True:  # (the loop body as run)
        lay = PagedKVLayout(8, 128, 4, 4)
        pool, table = bd._random_pool(b, n, lay, gen)
        q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        k = torch.randn(b, 8, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen); v = torch.randn_like(k)
        lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
        cfgs = {"default": default_config(b * 8, n, q.device), **cands}
        def run(cfg):
            return tq_paged_decode(q, pool, lay, table, lens, qz.rotation, qz.centroids, qz.centroids,
                                   validate=False, max_seq_len=n, config=cfg)
        ref = run(cfgs["default"])
        res = {}
        for rnd in range(3):
            res.setdefault("flash", []).append(bd.cuda_graph_timer(lambda: flash(q[:, :, None], k, v)))
            for name, cfg in cfgs.items():
                if rnd == 0:
                    torch.testing.assert_close(run(cfg), ref, atol=2e-2, rtol=2e-2)
                res.setdefault(name, []).append(bd.cuda_graph_timer(lambda: run(cfg)))
        print(json.dumps(dict(B=b, N=n, default=str(cfgs["default"]), us={k: round(sorted(t)[1], 2) for k, t in res.items()})), flush=True)
