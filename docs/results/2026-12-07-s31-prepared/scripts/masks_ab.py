"""Prepared in session 31, not yet run: ``DecodeConfig.product_masks`` (the row copies'
probabilities masked by an fp16 0/1 product instead of selects; static: paged 1190 -> 1146 loop
instructions at 168 registers, contiguous 1155 -> 1117 at 203) against the default, paged and
contiguous K4/V4, 32/8 heads, d=128, page 16, the default plan's split count given to both (12
programs per SM), and the contiguous kernel also at 8 per SM (what 203 registers would fit).
bf16 SDPA flash in the same rounds (5 rounds, order rotated, medians of CUDA-graph replays).
``max_diff``: largest difference from the default's output (expected 0: the same bits)."""

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
from turboquant.triton.decode import default_config, split_plan, tq_decode, tq_paged_decode  # noqa: E402

SHAPES = [(8, 4096), (8, 32768), (8, 16384), (32, 32768)]
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
        kp, kn = qz.quantize_packed(k.float())
        vp, vn = qz.quantize_packed(v.float())
        lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
        base = default_config(b * 8, n, pool.device)
        byte = dataclasses.replace(base, product_masks=True)
        dev = pool.device
        s_paged = split_plan(b * 8, n, base, dev, None, 12)[0]
        s_contig = split_plan(b * 8, n, base, dev, None, 12)[0]
        s_contig8 = split_plan(b * 8, n, base, dev, None, 8)[0]

        def paged(c, q=q, pool=pool, table=table, lens=lens, n=n, s=s_paged):
            return tq_paged_decode(
                q, pool, lay, table, lens, qz.rotation, qz.centroids, qz.centroids,
                validate=False, max_seq_len=n, config=c, num_splits=s,
            )  # fmt: skip

        def contig(c, q=q, kp=kp, kn=kn, vp=vp, vn=vn, s=s_contig):
            return tq_decode(
                q[:, :, None], kp, kn, vp, vn, qz.rotation, qz.centroids, qz.centroids, config=c, num_splits=s
            )

        fns = {
            "flash": lambda q=q, k=k, v=v: flash(q[:, :, None], k, v),
            "paged": lambda c=base: paged(c),
            "paged[product_masks]": lambda c=byte: paged(c),
            "contiguous": lambda c=base: contig(c),
            "contiguous[product_masks]": lambda c=byte: contig(c),
            "contiguous[product_masks,8/SM]": lambda c=byte, s=s_contig8: contig(c, s=s),
        }
        diffs = {
            "paged": round((paged(byte).float() - paged(base).float()).abs().max().item(), 7),
            "contiguous": round((contig(byte).float() - contig(base).float()).abs().max().item(), 7),
        }
        us, spread = bd.interleaved_medians(fns, ROUNDS)
        row = dict(
            B=b,
            N=n,
            config=f"{base.block_n}/{base.num_warps}/{base.ctas_per_sm} splits {s_paged}/{s_contig}/{s_contig8}",
            x_flash={nm: round(us["flash"] / u, 3) for nm, u in us.items() if nm != "flash"},
            us=us,
            spread=spread,
            max_diff=diffs,
        )
        print(json.dumps(row), flush=True)
        del pool, k, v, kp, vp
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
