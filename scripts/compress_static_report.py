"""Static view of the compress kernel (``_compress_kernel``) for sm_90a, without a GPU.

Compiles ``_compress_kernel`` as ``tq4_compress`` launches it for bf16 input, d=128, 4-bit
indices and symmetric boundaries, at the autotune configs named below, with the Triton
bucketing and with the inline-PTX one (``BUCKET_ASM``), and with a Hadamard rotation's sign
piece (``SIGNS``), assembles it with Triton's bundled
ptxas and prints registers, spills, shared memory and the SASS histogram of the row-block loop
(as ``decode_static_report.py`` does), per coordinate and thread.

    .venv/bin/python scripts/compress_static_report.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import decode_static_report as report  # noqa: E402
import triton  # noqa: E402

from turboquant.triton import compress  # noqa: E402

POINTERS = {
    "x_ptr": "*bf16",
    "rot_ptr": "*fp32",
    "bnd_ptr": "*fp32",
    "packed_ptr": "*u8",
    "norms_ptr": "*fp32",
    "slot_ptr": "*fp32",
    "tab_ptr": "*i32",
}
ALIGNED = ("sx_t", "sx_h", "sp_pg", "sp_t", "sp_h")
CONFIGS = ((32, 4, 1), (64, 4, 1), (64, 4, 2), (128, 8, 1))  # BLOCK_R, warps, stages


def compile_compress(
    block_r: int,
    warps: int,
    stages: int,
    use_asm: bool,
    prefetch: bool = True,
    table: bool = True,
    bits: int = 4,
    words3: bool = True,
    signs: bool = False,
):
    fn = compress._compress_kernel.fn
    gsize, gbytes = compress.group_size(bits)
    constants = dict(D=128, BLOCK_D=128, CHUNK=128, BITS=bits, GSIZE=gsize, GBYTES=gbytes, IN_KIND=2)
    constants.update(HAS_SLOTS=False, SYMMETRIC=bits == 4 and not table, TABLE=table)
    constants.update(WORDS3=bits == 3 and words3, BF16_PIECES=compress.BF16_PIECES, SIGNS=signs)
    constants.update(USE_ASM=use_asm, PREFETCH=prefetch, BLOCK_R=block_r, sx_d=1, sp_b=1, sn_h=1, PAGE=1)
    types = {"tab_scale": "fp32", "tab_offset": "fp32", "rot_scale": "fp32"}
    return report.compile_sm90(fn, POINTERS, constants, ALIGNED, warps, stages, types=types)


def main() -> None:
    print(f"triton {triton.__version__}, sm_90a, bf16 in, d=128, K4, symmetric boundaries")
    # (use_asm, prefetch, table, signs): signs is a Hadamard rotation's one sign piece
    variants = ((False, True, False, False), (True, False, False, False), (True, True, False, False))
    variants += ((False, True, True, False), (True, True, True, False), (True, True, True, True))
    with tempfile.TemporaryDirectory() as tmp:
        for block_r, warps, stages in CONFIGS:
            for use_asm, prefetch, table, signs in variants:
                kernel = compile_compress(block_r, warps, stages, use_asm, prefetch, table, signs=signs)
                st = report.kernel_stats(kernel, Path(tmp))
                per_coord = st["loop"] * warps * 32 / (block_r * 128)
                print(
                    f"BLOCK_R={block_r} warps={warps} stages={stages} "
                    f"{'asm' if use_asm else 'triton'} {'table' if table else 'search'} bucketing"
                    f"{', prefetch' if prefetch else ''}{', sign piece' if signs else ''}: "
                    f"{st['registers']} registers, "
                    f"spill {st['spill'][0]} B, shared {st['shared']} B; loop: {st['loop']} SASS "
                    f"instructions, {per_coord:.1f} per coordinate and thread"
                )
                print("   ", ", ".join(f"{op} {c}" for op, c in st["ops"].most_common(10)))


if __name__ == "__main__":
    main()
