"""Session 36: launch choices at short contexts over head-major pages (paged K4/V4, 32/8 heads,
d=128, page 16), B=8 N=1K and 2K: the table's choice against 128-token 4-warp tiles at 2 and 8
splits and one-warp 32/64-token tiles at 4-16 splits; the contiguous kernel at the table's
choice. bf16 SDPA flash in the same 5 rounds (order rotated, medians of CUDA-graph replays).

    PYTHONPATH=. python docs/results/h100-2026-12-07-s36/scripts/short_ab.py
"""

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
from turboquant.triton.decode import default_config, tq_decode, tq_paged_decode  # noqa: E402


def variants(base):
    """name -> (config, num_splits or None)"""
    r = dataclasses.replace
    out = {"default": (base, None)}
    four = r(base, block_n=128, num_warps=4, early_split=False)
    for s in (2, 8):
        out[f"128/4 s{s}"] = (four, s)
    for bn in (32, 64):
        one = r(base, block_n=bn, num_warps=1, early_split=False)
        for s in (4, 8, 16):
            out[f"{bn}/1 s{s}"] = (one, s)
    return out


def main() -> None:
    gen = torch.Generator(device="cuda").manual_seed(0)
    qz = TurboQuantMSE(128, 4).to("cuda")
    rot, cb = qz.rotation, qz.centroids
    flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
    lay = PagedKVLayout(8, 128, 4, 4)
    for b, n in ((8, 1024), (8, 2048)):
        pool, table = bd._random_pool(b, n, lay, gen)
        recs = [read_slots(pool, lay, sequence_slots(table[i], n, bd.PAGE)) for i in range(b)]
        kp, kn, vp, vn = (torch.stack([r[j] for r in recs]).transpose(1, 2).contiguous() for j in range(4))
        q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        k = torch.randn(b, 8, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        v = torch.randn_like(k)
        lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
        base = default_config(b * 8, n, pool.device)

        def run(c, s=None, q=q, pool=pool, table=table, lens=lens, n=n):
            return tq_paged_decode(
                q, pool, lay, table, lens, rot, cb, cb, validate=False, max_seq_len=n, config=c, num_splits=s
            )

        vs = variants(base)
        ref = run(base)
        fns = {"flash": lambda q=q, k=k, v=v: flash(q[:, :, None], k, v)}
        fns.update({nm: lambda cs=cs: run(*cs) for nm, cs in vs.items()})
        fns["contiguous"] = lambda q=q, t=(kp, kn, vp, vn): tq_decode(q[:, :, None], *t, rot, cb, cb)[:, :, 0]
        diffs = {
            nm: round((fn().float() - ref.float()).abs().max().item(), 7)
            for nm, fn in fns.items()
            if nm != "flash"
        }
        us, spread = bd.interleaved_medians(fns, 5)
        row = dict(
            B=b,
            N=n,
            config=f"{base.block_n}/{base.num_warps}/{base.ctas_per_sm}",
            x_flash={nm: round(us["flash"] / u, 3) for nm, u in us.items() if nm != "flash"},
            us=us,
            spread=spread,
            max_diff=diffs,
        )
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
