"""Session 31: the short contexts with the byte planes (paged K4/V4, 32/8 heads, d=128, page
16). B=8 N=1K: the table's 4-warp 128-token tiles (no plane dots, so no byte planes) against
one-warp 32-token tiles in 8 and 16 splits with K byte planes (the default) and with V byte
planes too; B=8 N=2K/4K: the table's plan with and without V byte planes, and 20/24 splits at
4K. bf16 SDPA flash in the same rounds (5 rounds, order rotated, medians of CUDA-graph
replays). ``max_diff``: largest difference from the default."""

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

SHAPES = [(8, 4096), (8, 2048), (8, 1024)]
ROUNDS = 5


def variants(base, n):
    """name -> (config, num_splits or None)"""
    r = dataclasses.replace
    out = {"default": (base, None)}
    if base.num_warps == 1:
        out["v_byte_planes"] = (r(base, v_byte_planes=True), None)
        if n >= 4096:
            for s in (20, 24):
                out[f"s{s} v_byte_planes"] = (r(base, v_byte_planes=True), s)
    else:
        one = r(base, block_n=32, num_warps=1, early_split=False)
        for s in (8, 16):
            out[f"32/1 s{s}"] = (one, s)
            out[f"32/1 s{s} v_byte_planes"] = (r(one, v_byte_planes=True), s)
            out[f"32/1 s{s} v_byte_planes reduce 64/4"] = (
                r(one, v_byte_planes=True, reduce_rows=64, reduce_warps=4),
                s,
            )
    return out


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

        def run(c, s=None, q=q, pool=pool, table=table, lens=lens, n=n):
            return tq_paged_decode(
                q, pool, lay, table, lens, qz.rotation, qz.centroids, qz.centroids,
                validate=False, max_seq_len=n, config=c, num_splits=s,
            )  # fmt: skip

        vs = variants(base, n)
        ref = run(base)
        diffs = {nm: round((run(*cs).float() - ref.float()).abs().max().item(), 7) for nm, cs in vs.items()}
        fns = {"flash": lambda q=q, k=k, v=v: flash(q[:, :, None], k, v)}
        fns.update({nm: lambda cs=cs: run(*cs) for nm, cs in vs.items()})
        us, spread = bd.interleaved_medians(fns, ROUNDS)
        row = dict(
            B=b,
            N=n,
            config=f"{base.block_n}/{base.num_warps}/{base.ctas_per_sm} er={base.early_reduce}",
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
