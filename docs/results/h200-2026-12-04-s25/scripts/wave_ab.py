"""Wave-aware context splits for the paged decode kernel: the launch table's configuration
with its own split count (``split_plan``: about ``ctas_per_sm * SMs`` programs, which for
one-warp tiles asks for 16 per SM where 12 fit, e.g. 2048 programs = 1.29 waves at B=8
N=32K) against the same configuration with split counts whose programs fill whole waves of
what fits per SM (from the compiled kernel's registers and shared memory), and a few
alternatives; K4/V4 paged, 32/8 heads, d=128; 3 rounds, order rotated, medians of CUDA-graph
replays; bf16 SDPA flash in the same rounds. ``max_diff``: each variant's largest difference
from the default's output (the merge order changes with the split count)."""

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
from turboquant.triton import decode as dm  # noqa: E402
from turboquant.triton.decode import default_config, split_plan, tq_paged_decode  # noqa: E402

SHAPES = [(8, 1024), (8, 2048), (8, 4096), (8, 8192), (8, 16384), (8, 32768), (8, 65536)]
SHAPES += [(16, 1024), (16, 4096), (16, 32768), (32, 1024), (32, 4096), (32, 32768), (1, 32768), (4, 4096)]
ROUNDS = 3


def compiled_split_kernels():
    """(n_regs, shared bytes, num_warps) of every compiled split kernel."""
    out = []
    for entry in getattr(dm._split_kernel, "device_caches", {}).values():
        for k in entry[0].values():
            try:
                out.append((k.n_regs, k.metadata.shared, k.metadata.num_warps))
            except AttributeError:
                pass
    return out


def fit_per_sm(n_regs: int, shared: int, warps: int) -> int:
    """Programs of this kernel one H100/H200 SM holds (64K registers, 228 KB shared memory with
    1 KB reserved per program, 32 programs, 64 warps)."""
    regs_per_warp = -(-n_regs * 32 // 256) * 256
    by_regs = 65536 // (regs_per_warp * warps)
    by_smem = (233472) // (shared + 1024) if shared else 32
    return max(1, min(by_regs, by_smem, 32, 64 // warps))


def wave_splits(pairs: int, max_len: int, block_n: int, slots: int, waves: int) -> int:
    """The split count whose programs (after the chunk rounding of split_plan) fill at most
    ``waves`` waves of ``slots`` programs with the fewest tiles per program."""
    blocks = -(-max_len // block_n)
    best = None
    for c in range(1, blocks + 1):
        s = -(-blocks // c)
        if pairs * s <= waves * slots:
            best = s
            break
    return best or 1


def main() -> None:
    gen = torch.Generator(device="cuda").manual_seed(0)
    qz = TurboQuantMSE(128, 4).to("cuda")
    flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
    lay = PagedKVLayout(8, 128, 4, 4)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    fits: dict[tuple[int, int], int] = {}
    for b, n in SHAPES:
        pool, table = bd._random_pool(b, n, lay, gen)
        q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        k = torch.randn(b, 8, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        v = torch.randn_like(k)
        lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
        pairs = b * 8
        base = default_config(pairs, n, pool.device)

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
        default_splits = split_plan(pairs, n, base, pool.device)[0]
        variants = {"default": (base, None)}
        tiles = {(base.block_n, base.num_warps): base}
        if base.num_warps == 1:  # the 4-warp tiles as an alternative, and back
            tiles[(128, 4)] = dataclasses.replace(base, block_n=128, num_warps=4)
        else:
            tiles[(32, 1)] = dataclasses.replace(base, block_n=32, num_warps=1, early_split=False)
        for (bn, w), cfg in tiles.items():
            if (bn, w) not in fits:  # the fewest of any compiled variant with these warps
                run(cfg)
                found = [fit_per_sm(*x) for x in compiled_split_kernels() if x[2] == w]
                fits[(bn, w)] = min(found) if found else (12 if w == 1 else 2)
            slots = fits[(bn, w)] * sms
            wanted = [wave_splits(pairs, n, bn, slots, waves) for waves in (1, 2)]
            # and the counts the table's ctas_per_sm values would give
            for ctas in (8, 12, 16, 24) if w == 1 else (2, 3):
                wanted.append(
                    split_plan(pairs, n, dataclasses.replace(cfg, ctas_per_sm=ctas), pool.device)[0]
                )
            for want in wanted:
                s = split_plan(pairs, n, cfg, pool.device, want)[0]
                if (bn, w, s) != (base.block_n, base.num_warps, default_splits):
                    variants.setdefault(f"{bn}/{w} s{s}", (cfg, s))
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
            fits=[f"{bn}/{w}: {f} per SM" for (bn, w), f in fits.items()],
            waves={
                nm: round(pairs * s / (fits[(c.block_n, c.num_warps)] * sms), 2)
                for nm, (c, s) in variants.items()
                if s is not None
            },
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
