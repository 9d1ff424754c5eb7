"""Static view of the compressed prefill kernel (``_attn_fwd``) for sm_90a, without a GPU.

Compiles ``_attn_fwd`` as ``triton_flash_attention_tq4_kv`` launches it for 4-bit K and V
(bf16, d=128, causal), with the per-value codebook gather and with ``register_lookup=True``
(its values as single halves and as fp16 pairs, ``flash_attention.PAIR_LOOKUP``),
assembles it with Triton's bundled ptxas and prints registers, spills, shared memory, layout
conversions and the SASS histograms of the key loops (as ``decode_static_report.py`` does): the
fully visible tiles' loop (most of a long prefill) and the boundary tiles' (masks).

    .venv/bin/python scripts/prefill_static_report.py
    .venv/bin/python scripts/prefill_static_report.py --configs 64/128/4/2 128/128/8/2

``--configs BLOCK_M/BLOCK_N/warps/stages ...``: only the default lookup (register lookup, fp16
pairs, pure asm) at those launch configurations, with the full-tile loop's warp-instructions
per (query row, key) (loop instructions x warps / (BLOCK_M x BLOCK_N): the work a config
spends per unit of attention) and the programs and warps one SM holds by registers and
shared memory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import decode_static_report as report  # noqa: E402
import triton  # noqa: E402

from turboquant.triton import flash_attention as fa  # noqa: E402
from turboquant.triton.decode import programs_per_sm  # noqa: E402

POINTERS = {
    "q_ptr": "*bf16",
    "k_ptr": "*u8",
    "v_ptr": "*u8",
    "kn_ptr": "*fp32",
    "vn_ptr": "*fp32",
    "mask_ptr": "*bf16",
    "o_ptr": "*bf16",
}
ALIGNED = ("sqb", "sqh", "sqm", "skb", "skh", "skn", "svb", "svh", "svn", "sob", "soh", "som")
ALIGNED += ("sknb", "sknh", "svnb", "svnh")


def compile_prefill(
    register_lookup: bool, block_m: int, block_n: int, warps: int, stages: int, pair: int = 2
):
    """``pair``: 0 single halves, 1 pairs (pure asm), 2 pairs (impure asm, the default; see
    ``decode.PAIR_OPAQUE``)."""
    fn = fa._attn_fwd.fn
    table = "*i32" if register_lookup else "*bf16"
    pointers = dict(POINTERS, kc_ptr=table, vc_ptr=table)
    constants = dict(D=128, BLOCK_D=128, K_BITS=4, V_BITS=4, IS_CAUSAL=True, HAS_MASK=False, PAIR=pair)
    constants.update(BLOCK_M=block_m, BLOCK_N=block_n, sqd=1, skd=1, svd=1, sod=1, sknn=1, svnn=1)
    return report.compile_sm90(fn, pointers, constants, ALIGNED, warps, stages, types={"sm_scale": "fp32"})


def per_config(configs: list[str]) -> None:
    """One line per ``BLOCK_M/BLOCK_N/warps/stages`` of the default lookup (see the module)."""
    with tempfile.TemporaryDirectory() as tmp:
        for text in configs:
            block_m, block_n, warps, stages = (int(x) for x in text.split("/"))
            kernel = compile_prefill(True, block_m, block_n, warps, stages, 1)
            st = report.kernel_stats(kernel, Path(tmp))
            regs, full = int(st["registers"]), st["loops"][0][0]
            programs = programs_per_sm(regs, st["shared"], warps)
            print(
                f"{text}: {regs} registers, spill {st['spill'][0]} B, shared {st['shared']} B, "
                f"full-tile loop {full} instructions, {full * warps / (block_m * block_n):.3f} "
                f"warp-instructions per (row, key), {programs} programs ({programs * warps} warps) per SM"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", help="BLOCK_M/BLOCK_N/warps/stages, default lookup only")
    args = parser.parse_args()
    print(f"triton {triton.__version__}, sm_90a, K4/V4 bf16 d=128 causal")
    if args.configs:
        per_config(args.configs)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for block_m, block_n, warps, stages in ((128, 64, 8, 3), (64, 64, 4, 3), (64, 128, 4, 2)):
            for register_lookup, pair in ((False, 0), (True, 0), (True, 1), (True, 2)):
                kernel = compile_prefill(register_lookup, block_m, block_n, warps, stages, pair)
                st = report.kernel_stats(kernel, Path(tmp))
                ttgir = kernel.asm["ttgir"]
                names = ("halves", "pairs (pure asm)", "pairs (impure asm)")
                kind = f"register lookup, {names[pair]}" if register_lookup else "gather"
                print(
                    f"BLOCK_M={block_m} BLOCK_N={block_n} warps={warps} stages={stages} {kind}: "
                    f"{st['registers']} registers, spill {st['spill'][0]} B, "
                    f"shared {st['shared']} B, convert_layout {ttgir.count('ttg.convert_layout')}; "
                    f"SASS instructions per tile: full tiles {st['loops'][0][0]}, boundary tiles {st['loop']}"
                )
                # the first loop runs the fully visible tiles (most of a long prefill), the
                # largest one the diagonal / ragged-end tiles with their masks
                print("    full:", ", ".join(f"{op} {c}" for op, c in st["loops"][0][1].most_common(10)))
                print("    boundary:", ", ".join(f"{op} {c}" for op, c in st["ops"].most_common(10)))


if __name__ == "__main__":
    main()
