"""Session 18: DecodeConfig.fused_merge against the reduce kernel at the default launch
configuration, 3 interleaved rounds with bf16 SDPA flash. Run from the repository root."""
import dataclasses, json, sys
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import bench_decode as bd
from turboquant.paged import PagedKVLayout
from turboquant.quantizer import TurboQuantMSE
from turboquant.triton.decode import default_config, tq_paged_decode
from torch.nn.attention import SDPBackend

gen = torch.Generator(device="cuda").manual_seed(0)
qz = TurboQuantMSE(128, 4).to("cuda")
flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
bs = [int(x) for x in sys.argv[1].split(",")] if len(sys.argv) > 1 else [8, 1, 16, 32]
ns = [int(x) for x in sys.argv[2].split(",")] if len(sys.argv) > 2 else [1024, 2048, 4096, 16384, 32768]
for b in bs:
    for n in ns:
        lay = PagedKVLayout(8, 128, 4, 4)
        pool, table = bd._random_pool(b, n, lay, gen)
        q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        k = torch.randn(b, 8, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen); v = torch.randn_like(k)
        lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
        d = default_config(b * 8, n, q.device)
        cfgs = {"reduce": dataclasses.replace(d, fused_merge=False), "fused": dataclasses.replace(d, fused_merge=True)}
        def run(cfg):
            return tq_paged_decode(q, pool, lay, table, lens, qz.rotation, qz.centroids, qz.centroids,
                                   validate=False, max_seq_len=n, config=cfg)
        ref = run(cfgs["reduce"])
        res = {}
        for rnd in range(3):
            res.setdefault("flash", []).append(bd.cuda_graph_timer(lambda: flash(q[:, :, None], k, v)))
            for name, cfg in cfgs.items():
                if rnd == 0:
                    torch.testing.assert_close(run(cfg), ref, atol=2e-3, rtol=2e-3)
                res.setdefault(name, []).append(bd.cuda_graph_timer(lambda: run(cfg)))
        us = {k: round(sorted(t)[1], 2) for k, t in res.items()}
        print(json.dumps(dict(B=b, N=n, config=f"{d.block_n}/{d.num_warps}/{d.ctas_per_sm}", us=us,
                              fused_x_flash=round(us["flash"] / us["fused"], 3), reduce_x_flash=round(us["flash"] / us["reduce"], 3))), flush=True)
        del pool, k, v
