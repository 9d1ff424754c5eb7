"""The codebook tables built once per codebook pair (decode_tables) against prep's program
(0, 0) writing them every call (the code of commit 6c4f9e1, which this script expects as
turboquant/triton/_decode_prev.py: `git show 6c4f9e1:turboquant/triton/decode.py >
turboquant/triton/_decode_prev.py`). Same launch configuration (default_config), outputs
compared bit for bit; K4/V4 paged, 32/8 heads, d=128; bf16 SDPA flash in the same rounds;
5 rounds, order rotated, medians of CUDA-graph replays. Run 7 used it for the next change
(the rotation loaded before prep's wait, the tables before the split kernel's), with the
code of commit 540baf4 as _decode_prev.py: `tables_ab.py 540baf4 "pi before wait"`."""

import json
import sys
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend

ROOT = Path(__file__).resolve().parents[4]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
import bench_decode as bd  # noqa: E402

import turboquant.triton._decode_prev as prev  # noqa: E402
import turboquant.triton.decode as new  # noqa: E402
from turboquant.paged import PagedKVLayout  # noqa: E402
from turboquant.quantizer import TurboQuantMSE  # noqa: E402

SHAPES = [
    (8, 1024),
    (8, 2048),
    (8, 4096),
    (16, 1024),
    (32, 1024),
    (1, 1024),
    (1, 4096),
    (1, 32768),
    (8, 32768),
]
ROUNDS = 5


def main(old: str = "tables per call", new_name: str = "tables once") -> None:
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

        def run(mod, q=q, pool=pool, table=table, lens=lens, n=n):
            return mod.tq_paged_decode(
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
            )

        same = bool(torch.equal(run(new), run(prev)))
        variants = {
            "flash": lambda q=q, k=k, v=v: flash(q[:, :, None], k, v),
            old: lambda: run(prev),
            new_name: lambda: run(new),
        }
        names = list(variants)
        res: dict[str, list[float]] = {}
        for rnd in range(ROUNDS):
            for name in names[rnd % len(names) :] + names[: rnd % len(names)]:
                res.setdefault(name, []).append(bd.cuda_graph_timer(variants[name]))
        us = {name: round(sorted(t)[ROUNDS // 2], 2) for name, t in res.items()}
        spread = {nm: round(max(t) / min(t), 3) for nm, t in res.items()}
        prof = {
            old: bd.profile_kernels(lambda: run(prev)),
            new_name: bd.profile_kernels(lambda: run(new)),
        }
        print(json.dumps(dict(B=b, N=n, equal_outputs=same, us=us, spread=spread, profile=prof)), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
