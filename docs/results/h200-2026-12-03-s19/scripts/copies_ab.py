"""Session 19 run 1: DecodeConfig.row_copies (plane dots with copies of each query head among the
padded dot rows: 166 instead of 245 registers) against the 8-accumulator kernel, and 1-warp
launch configurations with the copies, against bf16 SDPA flash; 3 interleaved rounds, medians."""
import json, sys, dataclasses
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import bench_decode as bd
from turboquant.paged import PagedKVLayout
from turboquant.quantizer import TurboQuantMSE
from turboquant.triton.decode import DecodeConfig, default_config, tq_paged_decode
from torch.nn.attention import SDPBackend

def cfg(s, **kw):
    n, w, c = (int(x) for x in s.split("/"))
    return DecodeConfig(block_n=n, num_warps=w, ctas_per_sm=c, **kw)

ONE = ["32/1/8", "32/1/12", "32/1/16", "32/1/24"]
PLAN = [
    ([8], [32768, 16384, 4096], ONE),
    ([8], [1024, 2048], ["32/1/4", "32/1/8", "32/1/12"]),
    ([16], [4096, 32768], ["32/1/16", "32/1/24", "32/1/32", "32/1/48"]),
    ([32], [4096, 32768], ["32/1/16", "32/1/32", "32/1/48"]),
    ([4], [16384, 32768], ["32/1/8", "32/1/12"]),
    ([1], [32768, 65536, 131072], ["32/1/8", "32/1/12"]),
]
gen = torch.Generator(device="cuda").manual_seed(0)
qz = TurboQuantMSE(128, 4).to("cuda")
flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
for bs, ns, names in PLAN:
    for b in bs:
        for n in ns:
            lay = PagedKVLayout(8, 128, 4, 4)
            pool, table = bd._random_pool(b, n, lay, gen)
            q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
            k = torch.randn(b, 8, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen); v = torch.randn_like(k)
            lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
            d = default_config(b * 8, n, q.device)
            cfgs = {"default": d, "default[no copies]": dataclasses.replace(d, row_copies=False)}
            for s in names:
                cfgs[s] = cfg(s, planes_min_chunk=0)
                cfgs[s + "[no copies]"] = cfg(s, planes_min_chunk=0, row_copies=False)
            def run(c):
                return tq_paged_decode(q, pool, lay, table, lens, qz.rotation, qz.centroids, qz.centroids,
                                       validate=False, max_seq_len=n, config=c)
            ref = run(d)
            res = {}
            for rnd in range(3):
                res.setdefault("flash", []).append(bd.cuda_graph_timer(lambda: flash(q[:, :, None], k, v)))
                for name, c in cfgs.items():
                    if rnd == 0:
                        torch.testing.assert_close(run(c), ref, atol=2e-3, rtol=2e-3)
                    res.setdefault(name, []).append(bd.cuda_graph_timer(lambda: run(c)))
            us = {k: round(sorted(t)[1], 2) for k, t in res.items()}
            best = min((k for k in us if k != "flash"), key=us.get)
            print(json.dumps(dict(B=b, N=n, default=f"{d.block_n}/{d.num_warps}/{d.ctas_per_sm}", best=best,
                                  best_x_flash=round(us["flash"] / us[best], 3),
                                  default_x_flash=round(us["flash"] / us["default"], 3), us=us)), flush=True)
            del pool, k, v
