"""Split counts around the launch table's (and register caps), paged K4/V4, 32/8 heads, d=128, page 16: at each
shape the table's configuration (wave cap on) with the split counts below, bf16 SDPA flash in
the same rounds (5 rounds, order rotated, medians of CUDA-graph replays). ``max_diff``: each
variant's largest difference from the default's output (the merge order changes with the
split count)."""

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
from turboquant.triton.decode import default_config, split_plan, tq_paged_decode, wave_programs  # noqa: E402

# (B, N, split counts to try with the table's tile, split counts with the other tile)
SHAPES = [
    (8, 1024, [2, 3, 4, 6, 8], [4, 6, 8, 12]),
    (8, 2048, [8, 12, 16, 20], [4]),
    (8, 4096, [6, 8, 10, 12, 14, 16, 20], [4, 6]),
    (8, 8192, [8, 12, 16, 20, 24], []),
    (16, 32768, [12, 16, 24, 32], []),
    (32, 1024, [4, 6, 8], []),
    (8, 32768, [24, 32], []),
    (8, 65536, [24, 33, 48], []),
]
# register caps (more one-warp programs per SM: 144 -> 14, 128 -> 16) with the split count
# that fills one wave of them: (maxnreg, splits) per (B, N)
CAPS = {
    (8, 4096): [(144, 16), (128, 16)],
    (8, 32768): [(144, 28), (128, 33)],
    (8, 65536): [(144, 28), (128, 33)],
}
ROUNDS = 5


def main() -> None:
    gen = torch.Generator(device="cuda").manual_seed(0)
    qz = TurboQuantMSE(128, 4).to("cuda")
    flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
    lay = PagedKVLayout(8, 128, 4, 4)
    for b, n, same, other in SHAPES:
        pool, table = bd._random_pool(b, n, lay, gen)
        q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        k = torch.randn(b, 8, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        v = torch.randn_like(k)
        lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
        pairs = b * 8
        base = default_config(pairs, n, pool.device)
        alt = (
            dataclasses.replace(base, block_n=128, num_warps=4, early_split=True)
            if base.num_warps == 1
            else dataclasses.replace(base, block_n=32, num_warps=1, ctas_per_sm=8, early_split=False)
        )

        def run(c, s=None, q=q, pool=pool, table=table, lens=lens, n=n):
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
                num_splits=s,
            )

        ref = run(base)
        wave = wave_programs(base, 4, 4, 128, True)
        default_splits = split_plan(pairs, n, base, pool.device, None, wave)[0]
        variants = {"default": (base, None)}
        for cfg, counts in ((base, same), (alt, other)):
            for want in counts:
                s = split_plan(pairs, n, cfg, pool.device, want)[0]
                if (cfg, s) != (base, default_splits):
                    variants.setdefault(f"{cfg.block_n}/{cfg.num_warps} s{s}", (cfg, s))
        for r, want in CAPS.get((b, n), []):
            cfg = dataclasses.replace(base, maxnreg=r)
            s = split_plan(pairs, n, cfg, pool.device, want)[0]
            variants[f"maxnreg {r} s{s}"] = (cfg, s)
        diffs = {
            name: round((run(c, s).float() - ref.float()).abs().max().item(), 7)
            for name, (c, s) in variants.items()
        }
        fns = {"flash": lambda q=q, k=k, v=v: flash(q[:, :, None], k, v)}
        fns.update({name: lambda cs=cs: run(*cs) for name, cs in variants.items()})
        us, spread = bd.interleaved_medians(fns, ROUNDS)
        row = dict(
            B=b,
            N=n,
            config=f"{base.block_n}/{base.num_warps}/{base.ctas_per_sm}",
            default_splits=default_splits,
            x_flash={nm: round(us["flash"] / u, 3) for nm, u in us.items() if nm != "flash"},
            us=us,
            spread=spread,
            max_diff=diffs,
        )
        print(json.dumps(row), flush=True)
        del pool, k, v
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
