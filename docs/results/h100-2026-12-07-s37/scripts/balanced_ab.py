"""Session 37: balanced launches (``DecodeConfig.balanced``) against the split plan, paged and
contiguous K4/V4, 32/8 heads, d=128, page 16, one-warp 32-token tiles. Variants per shape:
``split`` (the automatic plan), ``bal12`` (balanced, 12 programs per SM, ``maxnreg=168``: the
balanced kernel compiles to 206 registers uncapped, 168 capped without spills, by
scripts/decode_static_report.py --balanced) and ``bal8`` (balanced, 8 per SM, uncapped); the
contiguous kernel likewise. bf16 SDPA flash in the same 5 interleaved rounds of CUDA-graph
replays; max |diff| against the split plan's output.

    PYTHONPATH=. python docs/results/h100-2026-12-07-s37/scripts/balanced_ab.py [--shapes 8x32768 ...]
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend

ROOT = Path(__file__).resolve().parents[4]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
import bench_decode as bd  # noqa: E402

from turboquant.paged import PagedKVLayout, read_slots, sequence_slots  # noqa: E402
from turboquant.quantizer import TurboQuantMSE  # noqa: E402
from turboquant.triton.decode import DEFAULT_CONFIG, balanced_plan, default_config, tq_decode, tq_paged_decode  # noqa: E402

SHAPES = ["8x32768", "8x16384", "8x65536", "8x4096", "32x32768", "1x32768", "32x4096"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", nargs="+", default=SHAPES)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    qz = TurboQuantMSE(128, 4).to("cuda")
    rot, cb = qz.rotation, qz.centroids
    flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
    lay = PagedKVLayout(8, 128, 4, 4)
    one = dataclasses.replace(DEFAULT_CONFIG, balanced=True)
    bal = {
        "bal12": dataclasses.replace(one, ctas_per_sm=12, maxnreg=168),
        "bal8": dataclasses.replace(one, ctas_per_sm=8),
    }
    for shape in args.shapes:
        b, n = map(int, shape.split("x"))
        pool, table = bd._random_pool(b, n, lay, gen)
        recs = [read_slots(pool, lay, sequence_slots(table[i], n, bd.PAGE)) for i in range(b)]
        kp, kn, vp, vn = (torch.stack([r[j] for r in recs]).transpose(1, 2).contiguous() for j in range(4))
        q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        k = torch.randn(b, 8, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        v = torch.randn_like(k)
        lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
        base = default_config(b * 8, n, pool.device)

        def paged(c=None, q=q, pool=pool, table=table, lens=lens, n=n):
            return tq_paged_decode(
                q, pool, lay, table, lens, rot, cb, cb, validate=False, max_seq_len=n, config=c
            )

        def contiguous(c=None, q=q, t=(kp, kn, vp, vn)):
            return tq_decode(q[:, :, None], *t, rot, cb, cb, config=c)[:, :, 0]

        fns = {"flash": lambda q=q, k=k, v=v: flash(q[:, :, None], k, v), "split": paged}
        fns.update({nm: (lambda c=c: paged(c)) for nm, c in bal.items()})
        fns["contiguous split"] = contiguous
        fns.update({f"contiguous {nm}": (lambda c=c: contiguous(c)) for nm, c in bal.items()})
        ref = paged()
        diffs = {
            nm: round((fn().float() - ref.float()).abs().max().item(), 7)
            for nm, fn in fns.items()
            if nm != "flash"
        }
        plans = {nm: balanced_plan(b * 8, n, c, pool.device) for nm, c in bal.items()}
        us, spread = bd.interleaved_medians(fns, args.rounds)
        row = dict(
            gpu=torch.cuda.get_device_name(),
            B=b,
            N=n,
            split_config=f"{base.block_n}/{base.num_warps}/{base.ctas_per_sm}",
            plans=plans,
            x_flash={nm: round(us["flash"] / u, 3) for nm, u in us.items() if nm != "flash"},
            tb_s={nm: round(b * 8 * n * 136 / u / 1e6, 3) for nm, u in us.items() if nm != "flash"},
            us=us,
            spread=spread,
            max_diff=diffs,
        )
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
