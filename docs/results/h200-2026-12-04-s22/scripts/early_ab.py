"""Early programmatic launch of the split and reduce kernels (DecodeConfig.early_split /
early_reduce) at the launch table's configuration: none / split / reduce / both / the default
policy (_early_launch), against bf16 SDPA flash; K4/V4 paged, 32/8 heads, d=128; 5 rounds,
order rotated, medians of CUDA-graph replays. Every variant's output must equal the no-early
variant's bit for bit (the flags only move when a kernel is let in, not what it computes)."""

import dataclasses
import json
import sys
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend

ROOT = Path(__file__).resolve().parents[4]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
import bench_decode as bd  # noqa: E402

from turboquant.paged import PagedKVLayout  # noqa: E402
from turboquant.quantizer import TurboQuantMSE  # noqa: E402
from turboquant.triton.decode import default_config, tq_paged_decode  # noqa: E402

SHAPES = [(8, 1024), (8, 2048), (8, 4096), (8, 32768), (16, 1024), (32, 1024), (32, 32768)]
SHAPES += [(1, 1024), (1, 4096), (1, 32768), (1, 131072), (2, 32768), (4, 4096)]
ROUNDS = 5


def main() -> None:
    gen = torch.Generator(device="cuda").manual_seed(0)
    qz = TurboQuantMSE(128, 4).to("cuda")
    flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
    lay = PagedKVLayout(8, 128, 4, 4)
    for b, n in SHAPES:
        pool, table = bd._random_pool(b, n, lay, gen)
        q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        k = torch.randn(b, 8, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        v = torch.randn_like(k)
        lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
        base = default_config(b * 8, n, pool.device)
        off = dataclasses.replace(base, early_split=False, early_reduce=False)
        cfgs = {
            "none": off,
            "split": dataclasses.replace(off, early_split=True),
            "reduce": dataclasses.replace(off, early_reduce=True),
            "both": dataclasses.replace(off, early_split=True, early_reduce=True),
            "policy": base,
        }

        def run(c, q=q, pool=pool, table=table, lens=lens, n=n):
            return tq_paged_decode(
                q,
                pool,
                lay,
                table,
                lens,
                qz.rotation,
                qz.centroids,
                qz.centroids,
                validate=False,
                max_seq_len=n,
                config=c,
            )

        ref = run(off)
        same = {name: bool(torch.equal(run(c), ref)) for name, c in cfgs.items()}
        names = ["flash", *cfgs]
        res: dict[str, list[float]] = {}
        for rnd in range(ROUNDS):
            for name in names[rnd % len(names) :] + names[: rnd % len(names)]:
                if name == "flash":
                    fn = lambda q=q, k=k, v=v: flash(q[:, :, None], k, v)  # noqa: E731
                else:
                    fn = lambda c=cfgs[name]: run(c)  # noqa: E731
                res.setdefault(name, []).append(bd.cuda_graph_timer(fn))
        us = {name: round(sorted(t)[ROUNDS // 2], 2) for name, t in res.items()}
        row = dict(
            B=b,
            N=n,
            config=f"{base.block_n}/{base.num_warps}/{base.ctas_per_sm}",
            policy=[base.early_split, base.early_reduce],
            equal_outputs=same,
            x_flash={nm: round(us["flash"] / u, 3) for nm, u in us.items() if nm != "flash"},
            us=us,
            spread={nm: round(max(t) / min(t), 3) for nm, t in res.items()},
        )
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
