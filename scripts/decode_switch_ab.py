"""A/B of ``DecodeConfig`` switches on a GPU: for each shape, the default configuration against
it with each ``--set FIELD=VALUE`` applied, paged and contiguous K4/V4 (32/8 heads, d=128, page
16), bf16 SDPA flash in the same interleaved rounds (medians of CUDA-graph replays). Both sides
get the default plan's split count (a register-changing switch turns the whole-wave cut off);
``--splits-per-sm`` adds the contiguous variant at the split count of that many programs per SM.
Also prints the compiled split kernels' registers and shared memory for each configuration.
One JSON line per shape (``us``, ``x_flash``, ``max_diff`` from the default's output).

    PYTHONPATH=. python scripts/decode_switch_ab.py --set product_masks=True
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_decode as bd  # noqa: E402

from turboquant.paged import PagedKVLayout  # noqa: E402
from turboquant.quantizer import TurboQuantMSE  # noqa: E402
from turboquant.triton import decode as dm  # noqa: E402


def _switch(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    if name not in {f.name for f in dataclasses.fields(dm.DecodeConfig)}:
        raise argparse.ArgumentTypeError(f"{name!r} is not a DecodeConfig field")
    return name, json.loads(value.lower() if value in ("True", "False") else value)


def compiled_registers(configs: dict, q, pool, lay, table, lens, kp, kn, rot, cb) -> None:
    """One line per configuration and kernel: the split kernel's registers and shared memory."""
    for name, cfg in configs.items():
        for paged in (True, False):
            for cache in dm._split_kernel.device_caches.values():
                cache[0].clear()
            if paged:
                dm.tq_paged_decode(q, pool, lay, table, lens, rot, cb, cb, config=cfg)
            else:
                dm.tq_decode(q[:, :, None], kp, kn, kp, kn, rot, cb, cb, config=cfg)
            torch.cuda.synchronize()
            for cache in dm._split_kernel.device_caches.values():
                for k in cache[0].values():
                    row = dict(config=name, paged=paged, n_regs=k.n_regs, shared=k.metadata.shared)
                    print(json.dumps(row), flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=_switch, action="append", required=True, metavar="FIELD=VALUE")
    parser.add_argument("--shapes", nargs="+", default=["8x4096", "8x16384", "8x32768", "32x32768"])
    parser.add_argument("--splits-per-sm", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    gen = torch.Generator(device="cuda").manual_seed(0)
    qz = TurboQuantMSE(128, 4).to("cuda")
    flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
    lay = PagedKVLayout(8, 128, 4, 4)
    first = True
    for shape in args.shapes:
        b, n = (int(x) for x in shape.split("x"))
        pool, table = bd._random_pool(b, n, lay, gen)
        q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        k = torch.randn(b, 8, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        v = torch.randn_like(k)
        kp, kn = qz.quantize_packed(k.float())
        vp, vn = qz.quantize_packed(v.float())
        lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
        base = dm.default_config(b * 8, n, pool.device)
        configs = {"default": base}
        configs.update({f"{f}={val}": dataclasses.replace(base, **{f: val}) for f, val in args.set})
        if first:  # registers of the one-warp kernels (the default plan's tiles at long contexts)
            compiled_registers(configs, q, pool, lay, table, lens, kp, kn, qz.rotation, qz.centroids)
            first = False
        waves = {p: dm.wave_programs(base, 4, 4, 128, p) for p in (True, False)}
        splits = {p: dm.split_plan(b * 8, n, base, pool.device, None, waves[p])[0] for p in (True, False)}

        def paged(c, s=splits[True], q=q, pool=pool, table=table, lens=lens, n=n):
            return dm.tq_paged_decode(
                q, pool, lay, table, lens, qz.rotation, qz.centroids, qz.centroids,
                validate=False, max_seq_len=n, config=c, num_splits=s,
            )  # fmt: skip

        def contig(c, s=splits[False], q=q, kp=kp, kn=kn, vp=vp, vn=vn):
            return dm.tq_decode(
                q[:, :, None], kp, kn, vp, vn, qz.rotation, qz.centroids, qz.centroids, config=c, num_splits=s
            )

        fns = {"flash": lambda q=q, k=k, v=v: flash(q[:, :, None], k, v)}
        for name, cfg in configs.items():
            fns[f"paged[{name}]"] = lambda c=cfg: paged(c)
            fns[f"contiguous[{name}]"] = lambda c=cfg: contig(c)
            if args.splits_per_sm and name != "default":
                s = dm.split_plan(b * 8, n, base, pool.device, None, args.splits_per_sm)[0]
                fns[f"contiguous[{name},{args.splits_per_sm}/SM]"] = lambda c=cfg, s=s: contig(c, s)
        ref = {"paged": paged(base).float(), "contiguous": contig(base).float()}
        diffs = {
            nm: round((fn().float() - ref[nm.split("[")[0]]).abs().max().item(), 7)
            for nm, fn in fns.items()
            if nm != "flash"
        }
        us, spread = bd.interleaved_medians(fns, args.rounds)
        row = dict(
            B=b,
            N=n,
            config=f"{base.block_n}/{base.num_warps}/{base.ctas_per_sm}",
            splits=[splits[True], splits[False]],
            x_flash={nm: round(us["flash"] / u, 3) for nm, u in us.items() if nm != "flash"},
            us=us,
            spread=spread,
            max_diff=diffs,
        )
        print(json.dumps(row), flush=True)
        del pool, k, v, kp, vp


if __name__ == "__main__":
    main()
