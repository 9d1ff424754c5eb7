"""Session 38, static (no GPU): can Triton feed K, looked up in registers, to Hopper's wgmma as
its register A operand? A probe kernel computes the transposed scores ``S^T = K Q^T`` of
128-key tiles against 64 queries (d=128, 4 warps) as 8 plane dots (plane ``k`` = nibble ``k``
of every 4-bit word, an elementwise lookup; ``q^T``'s rows in the same order, as the decode
kernel's plane dots), optionally with the softmax's maximum over keys (across warps). Prints
registers, shared memory, the dots' operand types from the TTGIR and the loop's SASS.

    PYTHONPATH=<triton 3.6> .venv/bin/python docs/results/h100-2026-12-08-s38/scripts/register_a_probe.py
"""

import sys
import tempfile
from pathlib import Path

import triton
import triton.language as tl

ROOT = Path(__file__).resolve().parents[4]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
import decode_static_report as report  # noqa: E402


@triton.jit
def _probe(KW, Q, OUT, n_tiles, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, SOFTMAX: tl.constexpr):
    rows = tl.arange(0, BLOCK_N)
    m = tl.arange(0, BLOCK_M)
    j = tl.arange(0, 16)
    qb = Q + m[None, :] * 128 + 8 * j[:, None]  # q^T plane k: coordinates 8j + k
    q0, q1, q2, q3 = tl.load(qb + 0), tl.load(qb + 1), tl.load(qb + 2), tl.load(qb + 3)
    q4, q5, q6, q7 = tl.load(qb + 4), tl.load(qb + 5), tl.load(qb + 6), tl.load(qb + 7)
    acc = tl.zeros([BLOCK_N, BLOCK_M], tl.float32)
    for t in range(n_tiles):
        w = tl.load(KW + (t * BLOCK_N + rows)[:, None] * 16 + j[None, :])  # 4-bit words
        st = tl.dot(((w >> 0) & 15).to(tl.float16), q0)
        st = tl.dot(((w >> 4) & 15).to(tl.float16), q1, st)
        st = tl.dot(((w >> 8) & 15).to(tl.float16), q2, st)
        st = tl.dot(((w >> 12) & 15).to(tl.float16), q3, st)
        st = tl.dot(((w >> 16) & 15).to(tl.float16), q4, st)
        st = tl.dot(((w >> 20) & 15).to(tl.float16), q5, st)
        st = tl.dot(((w >> 24) & 15).to(tl.float16), q6, st)
        st = tl.dot(((w >> 28) & 15).to(tl.float16), q7, st)
        if SOFTMAX:  # the maximum over keys: across the warps
            st = tl.exp2(st - tl.max(st, 0)[None, :])
        acc += st
    tl.store(OUT + rows[:, None] * BLOCK_M + m[None, :], acc)


def main() -> None:
    print(f"triton {triton.__version__}, sm_90a, 128 keys x 64 queries, 4 warps, 2 stages")
    pointers = {"KW": "*i32", "Q": "*fp16", "OUT": "*fp32"}
    with tempfile.TemporaryDirectory() as tmp:
        for softmax in (False, True):
            kernel = report.compile_sm90(
                _probe, pointers, dict(BLOCK_N=128, BLOCK_M=64, SOFTMAX=softmax), (), 4, 2
            )
            st = report.kernel_stats(kernel, Path(tmp))
            ttgir = kernel.asm["ttgir"]
            dot = next(line.strip() for line in ttgir.splitlines() if "warp_group_dot " in line)
            print(
                f"softmax={softmax}: {st['registers']} registers, spill {st['spill'][0]} B, "
                f"shared {st['shared']} B, local_alloc {ttgir.count('ttg.local_alloc')}"
            )
            print("    operands:", dot[dot.index(" : ") + 3 :][:170])
            print(
                f"    loop {st['loops'][0][0]}:",
                ", ".join(f"{o} {c}" for o, c in st["loops"][0][1].most_common(14)),
            )


if __name__ == "__main__":
    main()
