"""Decode attention (one query token per sequence) over TurboQuant-compressed K/V.

``tq_paged_decode`` reads the paged pool of :mod:`turboquant.paged`; ``tq_decode`` reads the
contiguous compressed tensors of the Hugging Face cache. Both run the same three kernels:

1. ``_prep_kernel``: ``q_rot = q @ Pi.T`` once per query (bf16 pieces of both on the tensor
   cores, ~16 significant bits), pre-scaled by ``sm_scale * log2(e)`` and stored in fp16. The
   codebooks' fp16 and byte-split register tables are built once per codebook pair
   (:func:`decode_tables`).
2. ``_split_kernel`` (flash-decoding): one program per (context split, KV head, sequence)
   handles *all* query heads of its KV group (padded to 16 for the tensor cores), so each
   compressed byte is read once. Per tile of ``BLOCK_N`` tokens it maps the packed indices
   through the codebook, computes the scores ``q_rot @ K_tile^T``, scales them by the fp32 key
   norms, folds the value norms into the probabilities and accumulates ``P @ V_tile`` (the
   probabilities are the A operand as the score dot leaves them); online softmax in fp32,
   the accumulators rescaled only when a maximum grows; packed words of the next tile and
   block ids of the one after are loaded ahead. In one-warp programs at ``D = 128``, 3- and
   4-bit tiles stay as 8 *index planes* (plane ``k``: index ``k`` of every packed word) and
   each dot runs as 8 dots over them, the query read and the output written in the planes'
   column order, so decompressed values are never put back into coordinate order. Each split
   writes its partial ``(max, sum, acc)``.
3. ``_reduce_kernel``: merges the splits (log-sum-exp, many partial rows per step) and rotates
   back, ``out = acc @ Pi`` (bf16 pieces again).

Unpacking: 4-bit and 2-bit rows are read as int32 words (8 or 16 indices each; records are
4-byte aligned), 3-bit rows as words too (4 groups of 8 indices in 3 words; at head_dim 64 as
three byte planes). 4-bit indices, and 3-bit ones of a symmetric codebook from head_dim 128
(spread to nibbles, :func:`_sym_words`), go through a register table with byte permutes
(``prmt``, no memory traffic); 2-bit and other 3-bit indices through an L1-resident table, one
index plane at a time; outside the plane dots a tree of ``tl.join`` restores coordinate order.
On Hopper and later the three kernels overlap their launches (``DecodeConfig.pdl``).

Each kernel's plain-torch reference is ``tq_decode_reference`` /
``tq_paged_decode_reference`` (dequantize + fp32 softmax attention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from ..packing import code_order, unpack_indices
from ..paged import PagedKVLayout, _record_views, check_block_tables, check_pool, read_slots, sequence_slots
from ..validation import FLOAT_DTYPES, check_tensor
from .codebook_memo import is_symmetric, per_codebook
from .compress import INTERPRET, dot, infer_bits

DECODE_HEAD_DIMS = (64, 128, 256)
LOG2E = 1.4426950408889634
_TABLE = 128  # fp16 codebook table: K at [0, 16), V at [128, 144): 256-byte aligned
# then the register tables (16 words: K's 8, V's 8), one copy per lane; all tables in fp16 elements
_LANE_WORDS = tl.constexpr(2 * _TABLE)
_TABLES = 2 * _TABLE + 32 * 16 * 2
# codebook lookups: 4 bits and symmetric 3 bits through a register table (_PRMT, _SYM4), the
# others through an L1-resident table (_LDG); the interpreter runs no inline PTX and takes plain
# loads (_LOAD)
_LDG, _PRMT, _LOAD, _SYM4 = tl.constexpr(0), tl.constexpr(1), tl.constexpr(2), tl.constexpr(3)
_INTERPRET = tl.constexpr(INTERPRET)
# the pair lookup's asm marked impure (``_dequant4_sym``'s PAIR 2), which hides the joins that
# repeat its input word from Triton 3.6's MMA operand-width heuristic (computeOrigBitWidth halves
# the width when a join is among an operand's producers and then picks kWidth = 4, whose operand
# registers ptxas regroups with a copy per use): static report, paged K4/V4, 128-token tiles of 4
# warps 1579 -> 1247 loop instructions per tile, contiguous 1495 -> 1079, 32-token tiles in
# coordinate order 1644 -> 1286. False: the pure asm (A/B).
PAIR_OPAQUE = True


def pair_mode(pair_lookup: bool) -> int:
    """``PAIR`` of the kernels that take the pair lookup: 0 single halves, 1 pairs, 2 pairs
    through the impure asm (:data:`PAIR_OPAQUE`)."""
    return (2 if PAIR_OPAQUE else 1) if pair_lookup else 0


@dataclass(frozen=True)
class DecodeConfig:
    """Launch parameters of the split kernel.

    ``block_n``: tokens per loop iteration (power of two, >= 16); ``num_warps``/``num_stages``:
    Triton's; ``ctas_per_sm``: the context is split so that about ``ctas_per_sm * SMs``
    programs run (fewer when the context is short: every split holds >= ``block_n`` tokens);
    ``maxnreg``: register cap per thread (more programs per SM), None for the compiler's choice;
    ``min_split_tokens``: the automatic split plan gives every split at least this many tokens
    (a split's fixed cost, its partial result and its share of the reduction, outweighs one
    16-token tile: on an H200 at B=1, N=4K, 256 one-tile splits of 16 tokens took 78 µs where
    128 splits of 32 tokens took 48); ``prefetch``: load the next tile's words while this one is
    decompressed (a software pipeline held in registers) or load each tile where it is used
    (fewer registers, more warps per SM: 225 against 168 registers at 16-token tiles by
    scripts/decode_static_report.py); ``symmetric_lookup``: 4-bit codebooks with
    ``c[15 - i] == -c[i]`` (checked once per codebook tensor) go through the 8-entry register
    table (``_SYM4_ASM``), others through the 16-entry one; symmetric 3-bit codebooks (head dim
    128 and 256) through the same 8-entry table (:func:`_sym_words`), others through the L1 one;
    ``pair_lookup``: the symmetric lookup hands its values over as fp16 pairs
    (``_SYM4_PAIR_ASM``) rather than as single halves paired up afterwards (H200, session 14:
    1.5-4.7% faster at B=1/8/32, same outputs);
    ``planes``: 4-bit tiles (``D = 128``, one-warp programs) stay as their 8 index
    planes and each dot runs as 8 dots over them (``_split_kernel``'s ``K_PLANES``/``V_PLANES``),
    so the coordinate order is never restored (H200, session 15: B=8, N=32K 207 against
    226 µs without); ``pair_lookup`` then only concerns the other tiles; ``planes_min_chunk``:
    plane dots only for splits of at least this many tokens (0: always; without
    ``k_registers`` 512 was better in session 15: with 256-token splits, N=4K, the coordinate
    order was 3-4% faster, B=8 44.3 against 45.6 µs; with ``k_registers`` the planes won at
    every split length of session 20's run 2: B=8 N=4K 36.0 against 38.8 µs, B=32 N=4K 105
    against 122); ``row_copies``: see ``_split_kernel``'s ``REPL``; ``k_registers``: with
    plane dots, the scores are computed as ``K @ q^T`` so the K planes are the tensor cores'
    A operand in the registers the loads left them in, not stored to and reloaded from
    shared memory as the B operand of ``q @ K^T`` (H200, session 20 run 2: B=8 N=32K 185
    against 216 µs, B=32 N=32K 707 against 783, B=1 N=128K 112 against 129);
    ``k_byte_planes`` (with ``k_registers``): the K words are looked up one word at a time into
    4 byte planes (nibbles ``2m, 2m + 1`` of a word, the pair one fragment register holds)
    rather than two words at a time into 8 nibble planes, so no nibble interleave is needed
    (H100, session 31, same split counts: paged B=8 N=4K/16K/32K 35.7/101.1/180.2 against
    35.1/99.2/176.1 µs, B=32 N=32K 694 against 672; the contiguous kernel, whose registers went
    from 198 to 167, 170/639 against 161/586 µs at B=8/32 N=32K); ``v_byte_planes`` (with
    ``planes``, 4-bit V): the V words likewise, each half of a row's words into 4 byte planes
    (``_split_kernel``'s ``V_BYTES``; H100, session 31 run 2, same split counts, outputs equal
    bit for bit: paged B=8 N=4K/16K/32K 34.8/98.2/175.6 against 33.8/95.1/170.6 µs, B=32 N=32K
    679 against 660; contiguous 31.6/88.8/159.2/604 against 30.8/86.5/155.3/582);
    ``product_masks`` (with row copies): each copy's probabilities are masked by a product with
    an fp16 0/1 factor rather than by selects, the same bits (Triton 3.6 static report: paged
    1190 → 1146 loop instructions at 168 registers, the contiguous kernel 1155 → 1117 at 203
    registers, 8 programs per SM rather than 12; H100, session 32, same-run A/B, outputs equal
    bit for bit: paged B=8 N=4K/16K/32K 34.2/95.3/171.9 against 34.0/92.9/167.9 µs, B=32 N=32K
    658 against 640; contiguous at 8 programs per SM 31.4/86.5/156.1/584 against
    30.6/86.4/155.9/564); ``pdl``: on
    Hopper and later GPUs the three kernels are launched
    with programmatic dependent launch, so each starts while the one before it finishes (the
    split kernel loads its first tile and the reduce kernel the rotation before they wait for
    their inputs) instead of after it; ``early_split``/``early_reduce`` (with ``pdl``): the prep
    kernel lets the split kernel launch right after its own wait rather than once its stores
    are issued, the split kernel lets the reduce kernel launch before its loop rather than
    after it (each still waits for the grid before it to finish before reading its output);
    ``wave_cap``: an automatic split count whose programs (one-warp 32-token K4/V4 tiles at
    ``D = 128``) would end in a partial wave is cut to whole waves of :data:`WAVE_PROGRAMS` per
    SM, where each split keeps at least :data:`WAVE_CAP_MIN_TOKENS` tokens (see
    :func:`split_plan`); ``reduce_rows``/``reduce_warps``: partial rows per merge
    step and warps of the reduce kernel (None: chosen by the launcher from the shape).
    Without a config the kernels take :func:`default_config`.
    """

    block_n: int = 32
    num_warps: int = 1
    num_stages: int = 1
    ctas_per_sm: int = 16
    maxnreg: int | None = None
    min_split_tokens: int = 32
    prefetch: bool = True
    symmetric_lookup: bool = True
    pair_lookup: bool = True
    planes: bool = True
    planes_min_chunk: int = 0
    row_copies: bool = True
    k_registers: bool = True
    k_byte_planes: bool = True
    v_byte_planes: bool = True
    product_masks: bool = True
    pdl: bool = True
    early_split: bool = False
    early_reduce: bool = False
    wave_cap: bool = True
    reduce_rows: int | None = None
    reduce_warps: int | None = None

    def __post_init__(self) -> None:
        if self.block_n < 16 or self.block_n & (self.block_n - 1):
            raise ValueError(f"block_n: expected a power of two >= 16, got {self.block_n}")
        if (
            self.num_warps not in (1, 2, 4, 8, 16)
            or self.num_stages < 1
            or self.ctas_per_sm < 1
            or self.min_split_tokens < 1
            or self.planes_min_chunk < 0
        ):
            raise ValueError(f"DecodeConfig: invalid launch parameters {self}")
        rows, warps = self.reduce_rows, self.reduce_warps
        if (rows is not None and (rows < 16 or rows & (rows - 1))) or warps not in (None, 1, 2, 4, 8, 16):
            raise ValueError(
                f"DecodeConfig: reduce_rows must be a power of two >= 16 and reduce_warps one of "
                f"1, 2, 4, 8, 16 (or None, automatic); got {rows!r}, {warps!r}"
            )
        for name in (
            "prefetch",
            "symmetric_lookup",
            "pair_lookup",
            "planes",
            "row_copies",
            "k_registers",
            "k_byte_planes",
            "v_byte_planes",
            "product_masks",
            "pdl",
            "early_split",
            "early_reduce",
            "wave_cap",
        ):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"DecodeConfig.{name}: expected a bool, got {getattr(self, name)!r}")


# The defaults, from scripts/bench_decode.py --graph --sweep on an H200 (32/8 heads, d=128,
# K4/V4). Sessions 10/11 (docs/results/h200-2026-12-01-s10/, -s11/): 4-warp programs of 128
# tokens, 4 per SM (3 from 128 (sequence, KV head) pairs on), were fastest at B=1 and for short
# work; 1-warp programs of 32 tokens, 16 per SM, at B=8, N=32K. Session 15, after the plane dots
# (one-warp programs only; docs/results/h200-2026-12-02-s15/): B=8, N=16K 126 µs with 32/1/16
# against 169 µs with 128/4/4; B=8, N=4K 46 µs with 32/1/8 against 50 µs (128/4/4) and 53 µs
# (32/1/16); B=32, N=32K 828 µs with 32/1/32 against 1019 µs (128/4/3), N=4K 181 against 187 µs;
# B=1 (N=4K 18 µs, 32K 51 µs) and B=8, N=1K (28 µs) stay with the 4-warp tiles. The interpreter
# always takes DEFAULT_CONFIG.
# Session 17 (docs/results/h200-2026-12-03-s17/run3_config_ab.jsonl, 3 interleaved rounds):
# from MID_PAIRS pairs on, short work takes the 4-warp tiles at 2 programs per SM (one wave:
# B=8 N=1K 17.1 against 18.8 µs with 4, N=2K 25.0 against 26.4; at B=1 equal up to N=4K and
# not timed beyond, so B=1 keeps 4), and 128+ pairs of short work take 1-warp tiles (B=16
# N=1K/2K 24.8/40.0 µs with 32/1/8 against 26.4/44.0 with 128/4/3; B=16 N=4K and B=32
# N=1K/2K 70.0/44.0/70.7 with 32/1/16 against 75.1/45.4/76.6).
# Session 18 (docs/results/h200-2026-12-03-s18/run2_table_ab.jsonl): fewer than 64 pairs take
# 128/4/2 rather than 128/4/4 (B=1 N=8K/16K/32K/64K 20.0/27.5/45.4/76.7 against
# 24.3/31.9/49.6/81.1 µs, equal up to N=4K; B=2 N=4K/16K 18.1/42.9 against 21.4/46.8) and
# 32/1/8 from MANY_PAIRS_MID_TOKENS of work (B=2 N=32K 68.7 against 75.6 with 128/4/2 and 77.6
# with 128/4/4; B=4 N=32K 112.0 against 121.3 with 32/1/16).
# Session 19 (docs/results/h200-2026-12-03-s19/run5_b1.jsonl, 5 rounds): B=1 N=128K 129.1 µs
# with 32/1/8 against 139.6 with 128/4/2 (N=64K equal, 78.6 against 78.4; N=32K 48.8 against
# 45.9), so 8+ pairs take 32/1/8 from LONG_WORK_TOKENS.
# Session 20 (docs/results/h200-2026-12-03-s20/run3.jsonl, 5 rounds, k_registers): 32/1/8 from
# 8 pairs and 512K tokens (B=1 N=64K 68.9 µs against 77.9 with 128/4/2; N=32K equal, 45.8) and
# from 32 pairs and 128K tokens (B=8 N=2K 23.2 against 25.0; B=4 N=4K equal, 25.2 against 25.3);
# B=2 N=8K (16 pairs, 128K tokens) keeps 128/4/2 (26.2 against 27.8).
ONE_WAVE_CONFIG = DecodeConfig(block_n=128, num_warps=4, ctas_per_sm=2)
DEFAULT_CONFIG = DecodeConfig()
MID_WORK_CONFIG = DecodeConfig(ctas_per_sm=8)
MANY_PAIRS_CONFIG = DecodeConfig(ctas_per_sm=32)
LOOKUP_CONFIG = DecodeConfig(block_n=16)
LONG_WORK_TOKENS = 1 << 20  # sequences × KV heads × context from which the 1-warp tiles win
MID_WORK_TOKENS = 1 << 17  # ... with 8 programs per SM, given at least MID_PAIRS pairs
MID_PAIRS = 32
FEW_PAIRS = 128  # from this many (sequence, KV head) pairs on: MANY_PAIRS_CONFIG (long work)
MANY_PAIRS_MID_TOKENS = 1 << 19  # ... and below LONG_WORK_TOKENS: DEFAULT_CONFIG from here on
MID_WORK_MIN_PAIRS = 8  # fewer pairs than MID_PAIRS take MID_WORK_CONFIG from MANY_PAIRS_MID_TOKENS
EARLY_REDUCE_PAIRS = 64  # DecodeConfig.early_reduce below this many pairs (see _early_launch) ...
EARLY_REDUCE_TOKENS = 1 << 18  # ... or, with one-warp tiles, from this much work
# Programs per SM in one wave of the one-warp 32-token K4/V4 split kernel at D = 128 with the
# default switches, from its registers: an SM's 65536 registers go to warps in units of 256 and
# in groups of 4 warps (one per scheduler, each with 16384 registers), so 168 (paged) and 167
# (contiguous) registers (Triton 3.6 on an H100, session 31 run 2, K and V byte planes; 5376
# per warp) leave room for 12 programs. With product_masks (session 32) the paged kernel stays
# at 168 and the contiguous one takes 203 registers, 6656 per warp: 8 programs, not the 9.8
# that 65536 / 6656 suggests (before k_byte_planes it took 198, also 8). A GPU test checks
# them against the compiled kernels.
WAVE_PROGRAMS = {"paged": 12, "contiguous": 8}


def programs_per_sm(n_regs: int, shared: int, warps: int) -> int:
    """Programs of ``warps`` warps one H100/H200 SM holds with ``n_regs`` registers per thread
    and ``shared`` bytes of shared memory per program: its 65536 registers go to warps in units
    of 256 and in groups of 4 warps (16384 registers per scheduler); 228 KB of shared memory
    with 1 KB reserved per program; at most 32 programs (the model behind WAVE_PROGRAMS)."""
    regs_per_warp = -(-n_regs * 32 // 256) * 256
    warps_by_regs = 4 * (16384 // regs_per_warp)
    return min(warps_by_regs // warps, 233472 // (shared + 1024), 32)


# DecodeConfig.wave_cap cuts a split count only where each split keeps this many tokens (H100,
# session 28 run 1: B=32 N=1K was 3% slower with 6 splits of 192 tokens than with the
# automatic 8; B=32 N=4K 5% faster with 6 of 704, B=16 N=4K 1% with 12 of 352)
WAVE_CAP_MIN_TOKENS = 256
# the DecodeConfig fields that change the split kernel's code (and so its registers)
_REGISTER_FIELDS = (
    "block_n",
    "num_warps",
    "num_stages",
    "maxnreg",
    "prefetch",
    "symmetric_lookup",
    "pair_lookup",
    "planes",
    "planes_min_chunk",
    "row_copies",
    "k_registers",
    "k_byte_planes",
    "v_byte_planes",
    "product_masks",
)


def default_config(
    pairs: int,
    max_len: int,
    device: torch.device,
    bits: tuple[int, int] = (4, 4),
    register_lookup: bool = True,
) -> DecodeConfig:
    """The launch configuration used when none is given: ``pairs`` = sequences × KV heads,
    ``max_len`` the longest context, ``bits`` = (K bits, V bits); ``work = pairs * max_len``.
    4-bit K and V on a GPU (see the measurements above), block_n / num_warps / ctas_per_sm:

    * ``pairs >= FEW_PAIRS``: ``MANY_PAIRS_CONFIG`` (32/1/32) from ``LONG_WORK_TOKENS`` of
      work; below it ``DEFAULT_CONFIG`` (32/1/16) from ``MANY_PAIRS_MID_TOKENS`` or
      ``2 * FEW_PAIRS`` pairs, else ``MID_WORK_CONFIG`` (32/1/8);
    * fewer pairs: ``DEFAULT_CONFIG`` from ``LONG_WORK_TOKENS`` of work and ``2 * MID_PAIRS``
      pairs; else ``MID_WORK_CONFIG`` (32/1/8) from ``MANY_PAIRS_MID_TOKENS`` of work with at
      least ``MID_WORK_MIN_PAIRS`` pairs or from ``MID_WORK_TOKENS`` with at least
      ``MID_PAIRS``; else ``ONE_WAVE_CONFIG`` (128/4/2).

    3-bit indices through the register lookup
    (``register_lookup``: symmetric codebooks, head dim >= 128, see :func:`_symmetric_lookup`)
    take the same table: the K3/V3 sweep of session 16 (run 6) found its entries fastest (B=1,
    N=4K 20.9 µs with 128/4/4, N=32K 59.4; B=8, N=4K 52.1 with 32/1/8, N=32K 259.7 with 32/1/16;
    LOOKUP_CONFIG: 32.2, 82.5, 59.1, 291.8). Indices through the L1 table (2 bits, other 3-bit
    codebooks): 1-warp programs of 16 tokens (B=8, K3/V3: 32K 589 µs and 4K 94 µs with them,
    1130 µs and 143 µs with the 4-bit defaults of session 11)."""
    if any(b not in (3, 4) for b in bits) or (3 in bits and not register_lookup):
        return LOOKUP_CONFIG
    if device.type != "cuda":
        return DEFAULT_CONFIG
    work = pairs * max_len
    if pairs >= FEW_PAIRS:
        if work >= LONG_WORK_TOKENS:
            config = MANY_PAIRS_CONFIG
        elif work >= MANY_PAIRS_MID_TOKENS or pairs >= 2 * FEW_PAIRS:
            config = DEFAULT_CONFIG
        else:
            config = MID_WORK_CONFIG
    elif work >= LONG_WORK_TOKENS and pairs >= 2 * MID_PAIRS:
        config = DEFAULT_CONFIG
    elif (work >= MANY_PAIRS_MID_TOKENS and pairs >= MID_WORK_MIN_PAIRS) or (
        work >= MID_WORK_TOKENS and pairs >= MID_PAIRS
    ):
        config = MID_WORK_CONFIG
    else:
        config = ONE_WAVE_CONFIG
    return _early_launch(config, pairs, work)


def _early_launch(config: DecodeConfig, pairs: int, work: int) -> DecodeConfig:
    """``config`` with the programmatic launches that won in session 21 (H200, K4/V4, 5
    rounds), re-measured in session 22 (run 2, docs/results/h200-2026-12-04-s22/; µs, no early
    launch → policy): the one-wave 4-warp tiles take ``early_split`` (B=8 N=1K 17.2 → 16.9),
    and ``early_reduce`` too below ``EARLY_REDUCE_PAIRS`` pairs (B=1 N=1K/4K/32K 11.2/16.2/45.8
    → 8.8/14.4/43.4; at B=8 N=1K both 17.2 against 16.9 for ``early_split`` alone); the
    one-warp tiles take ``early_reduce`` alone (their split kernel let in early was slower
    everywhere: B=32 N=32K 930 against 708 µs, B=8 N=4K 43.8 against 35.9) below
    ``EARLY_REDUCE_PAIRS`` pairs or from ``EARLY_REDUCE_TOKENS`` of work (B=32 N=32K 708 →
    692, B=2 N=32K 62.6 → 60.6, B=4 N=4K 24.8 → 24.0, B=1 N=128K 111.7 → 108.9); B=8 N=2K
    and B=16 N=1K, 128K tokens, were 4% slower with it (23.0 against 24.0, 22.4 against 23.3)."""
    if config.num_warps > 1:
        return replace(config, early_split=True, early_reduce=pairs < EARLY_REDUCE_PAIRS)
    early = pairs < EARLY_REDUCE_PAIRS or work >= EARLY_REDUCE_TOKENS
    return replace(config, early_reduce=early)


# ----------------------------------------------------------------------------- kernels


@triton.jit
def _interleave8(c0, c1, c2, c3, c4, c5, c6, c7, N: tl.constexpr, D: tl.constexpr):
    """Planes ``c_k`` [N, D/8] (coordinate ``8i + k``) → [N, D] in coordinate order.

    Joined axes flatten as ``k = 4x + 2y + z`` (``x`` the first join): pairs (k, k+4), then
    (k, k+2), then (k, k+1)."""
    lo = tl.join(tl.join(c0, c4), tl.join(c2, c6))
    hi = tl.join(tl.join(c1, c5), tl.join(c3, c7))
    return tl.join(lo, hi).reshape(N, D)


# L1-table lookups (2 and 3 bits): the index goes into the low byte of the table address
# (``_LDG_BYTE_ASM``: byte $4 of $1 replaces the low byte of $2; ``_LDG_BITS_ASM``: $2 | ((($1 >>
# $5) & $4)), $4 = twice the index mask), $3 is the address's high word, one fp16 is read.
_LDG_BYTE_ASM = tl.constexpr(
    "{ .reg .b32 t; .reg .b64 a; prmt.b32 t, $1, $2, $4; mov.b64 a, {t, $3}; ld.global.nc.b16 $0, [a]; }"
)
_LDG_BITS_ASM = tl.constexpr(
    "{ .reg .b32 t; .reg .b64 a; shr.u32 t, $1, $5; and.b32 t, t, $4; or.b32 t, t, $2; "
    "mov.b64 a, {t, $3}; ld.global.nc.b16 $0, [a]; }"
)


@triton.jit
def _table_words(tab):
    """The two 32-bit words of the (256-byte aligned) table address."""
    addr = tab.to(tl.int64, bitcast=True)
    return addr.to(tl.int32), (addr >> 32).to(tl.int32)


@triton.jit
def _lookup_byte(tab, spread, j: tl.constexpr, MODE: tl.constexpr):
    """``tab[byte_j(spread) / 2]`` (fp16): byte ``j`` of every int32 of ``spread`` holds twice an
    index. ``_LDG``: one ``prmt`` puts the byte into the low word of the table address (the table
    is 256-byte aligned), the 64-bit pointer is assembled from the two words (no 64-bit add)
    and the value is read from L1."""
    if MODE == _LDG:
        lo, hi = _table_words(tab)
        return tl.inline_asm_elementwise(
            _LDG_BYTE_ASM,
            "=h,r,r,r,r",
            [spread, lo, hi, 0x7650 + j],
            dtype=tl.float16,
            is_pure=True,
            pack=1,
        )
    else:
        return tl.load(tab + (((spread >> (8 * j)) & 0xFF) >> 1))


@triton.jit
def _lookup_bits(tab, w, shift: tl.constexpr, mask: tl.constexpr, MODE: tl.constexpr):
    """``tab[(w >> shift) & mask]`` (fp16) for every int32 ``w`` (``shift >= 1``); ``_LDG`` as in
    :func:`_lookup_byte`."""
    if MODE == _LDG:
        lo, hi = _table_words(tab)
        return tl.inline_asm_elementwise(
            _LDG_BITS_ASM,
            "=h,r,r,r,r,r",
            [w, lo, hi, 2 * mask, shift - 1],
            dtype=tl.float16,
            is_pure=True,
            pack=1,
        )
    else:
        return tl.load(tab + ((w >> shift) & mask))


# 4-bit lookup in registers, no memory: 16 fp16 entries split into their low and high bytes,
# four entries per register (t0..t3 low bytes, t4..t7 high bytes). For 4 indices (the nibbles
# of a 16-bit selector) `prmt` picks the bytes of entries 0-7 and 8-15, a byte mask from bit 3
# of every index (prmt's sign-replicate mode) selects between them, and two more `prmt`
# interleave low and high bytes into fp16 pairs.
_PRMT4_HALF = (
    "and.b32 s, {sel}, 0x7777; prmt.b32 m, w4, $8, {msk}; "
    "prmt.b32 la, $9, $10, s; prmt.b32 lb, $11, $12, s; "
    "prmt.b32 ha, $13, $14, s; prmt.b32 hb, $15, $16, s; "
    "not.b32 n, m; and.b32 la, la, n; and.b32 lb, lb, m; or.b32 la, la, lb; "
    "and.b32 ha, ha, n; and.b32 hb, hb, m; or.b32 ha, ha, hb; "
    "prmt.b32 p, la, ha, 0x5140; prmt.b32 q, la, ha, 0x7362; "
    "mov.b32 {{${o0}, ${o1}}}, p; mov.b32 {{${o2}, ${o3}}}, q; "
)
_PRMT4_ASM = tl.constexpr(
    "{ .reg .b32 s, m, n, la, lb, ha, hb, p, q, w4, hi16; shl.b32 w4, $8, 4; shr.b32 hi16, $8, 16; "
    + _PRMT4_HALF.format(sel="$8", msk="0xD9C8", o0=0, o1=1, o2=2, o3=3)
    + _PRMT4_HALF.format(sel="hi16", msk="0xFBEA", o0=4, o1=5, o2=6, o3=7)
    + "}"
)


# 4-bit lookup for a symmetric codebook (c[15 - i] = -c[i], as Lloyd-Max codebooks of the
# rotated coordinates are): only the 8 positive entries p[j] = c[8 + j] are tabulated (their low
# bytes in two registers, high bytes in two: words 2, 3, 6, 7 of the 16-entry table). The
# packed code of an index is sign-magnitude (turboquant.packing): bit 3 set is p[code & 7],
# clear is -p[code & 7]. For all 8 nibbles of a word at once: one `and` clears the sign bits;
# one `prmt` per 4 low bytes and one per 4 high bytes; prmt's sign-replicate mode turns bit 3
# of every code into a byte mask (as in _PRMT4_ASM) that sets the sign bit of the negative
# ones; two `prmt` interleave bytes into fp16 pairs. 20 PTX instructions (10 prmt) per 8
# indices against 32 (14 prmt) for the 16-entry table; ptxas fuses the logic ops into LOP3.
# (Sorted indices, the format before session 34, needed k = (i ^ 7 * !bit3) & 7 first: a
# shift, a multiply and two more logic ops. Triton 3.6 static, one-warp 32-token K4/V4 tiles:
# paged 1146 -> 1079 loop instructions, contiguous 1117 -> 1021.)
def _sym4_body(word: str, tables: tuple[str, str, str, str], pairs: tuple[str, str, str, str]) -> str:
    """The instructions of the symmetric lookup (temporaries ``s, sh, m, la, ha, w4``):
    ``word`` the operand of the 8 indices, ``tables`` those of register-table words 2, 3, 6, 7;
    the 4 fp16 pairs of coordinates (0, 1) .. (6, 7) go to the registers ``pairs``."""
    t2, t3, t6, t7 = tables
    asm = f"shl.b32 w4, {word}, 4; and.b32 s, {word}, 0x77777777; shr.b32 sh, s, 16; "
    for half, (sel, msk) in enumerate((("s", "0xD9C8"), ("sh", "0xFBEA"))):
        p, q = pairs[2 * half], pairs[2 * half + 1]
        asm += (
            f"prmt.b32 la, {t2}, {t3}, {sel}; prmt.b32 ha, {t6}, {t7}, {sel}; "
            f"prmt.b32 m, w4, {word}, {msk}; not.b32 m, m; and.b32 m, m, 0x80808080; or.b32 ha, ha, m; "
            f"prmt.b32 {p}, la, ha, 0x5140; prmt.b32 {q}, la, ha, 0x7362; "
        )
    return asm


def _sym4_asm(word: str, tables: tuple[str, str, str, str], pairs: tuple[str, str, str, str] | None) -> str:
    """The PTX of the symmetric lookup of one word (:func:`_sym4_body`); its 4 fp16 pairs go to
    the operands ``pairs``, or (None) as 8 halves to $0..$7."""
    if pairs:
        return "{ .reg .b32 s, sh, m, la, ha, w4; " + _sym4_body(word, tables, pairs) + "}"
    body = _sym4_body(word, tables, ("p0", "p1", "p2", "p3"))
    unpack = "".join(f"mov.b32 {{${2 * j}, ${2 * j + 1}}}, p{j}; " for j in range(4))
    return "{ .reg .b32 s, sh, m, la, ha, w4, p0, p1, p2, p3; " + body + unpack + "}"


_SYM4_ASM = tl.constexpr(_sym4_asm("$8", ("$9", "$10", "$11", "$12"), None))
# _SYM4_ASM with its 8 values leaving as 4 fp16 pairs (``pack=8``: Triton hands the asm 8
# consecutive elements of one thread, 16-bit ones packed two to a register), so no half is
# moved into a pair afterwards. The word and the table registers arrive 8 times (one operand
# per element of the pack; only the first of each is read): $4 is the word, $12/$20/$28/$36
# the tables words 2, 3, 6, 7; $0..$3 are the pairs of coordinates (0, 1) .. (6, 7).
_SYM4_PAIR_ASM = tl.constexpr(_sym4_asm("$4", ("$12", "$20", "$28", "$36"), ("$0", "$1", "$2", "$3")))
_SYM4_PAIR_CONSTRAINTS = tl.constexpr("=r,=r,=r,=r," + ",".join(["r"] * 40))
# The symmetric lookup of two words a = $4, b = $5 (``pack=2``: two consecutive elements of one
# thread; the table words arrive twice each, $6/$8/$10/$12 are read) into index planes: output
# j ($j) is the fp16 pair (c[a_n], c[b_n]) of index n = 2j (_SYM4_EVEN_ASM) or n = 2j + 1
# (_SYM4_ODD_ASM) of both words, the register a tensor-core operand takes when a and b are
# neighbours along the dot's reduced axis. The nibbles are first interleaved, e = (a0, b0, a2,
# b2, ..) or (a1, b1, a3, b3, ..), 4 instructions per two words, then looked up as one word. Two
# asm statements rather than one of 8 outputs: the dots of the even planes can run while the
# odd ones are looked up (Triton 3.6: 1272 against 1370 loop instructions per 32-token tile,
# 244 against 249 registers; the 8-output form kept table words in uniform registers and copied
# them back 105 times per tile).
_SYM4_EVEN_ASM = tl.constexpr(
    "{ .reg .b32 e, x, s, sh, m, la, ha, w4; "
    "shl.b32 x, $5, 4; and.b32 x, x, 0xF0F0F0F0; and.b32 e, $4, 0x0F0F0F0F; or.b32 e, e, x; "
    + _sym4_body("e", ("$6", "$8", "$10", "$12"), ("$0", "$1", "$2", "$3"))
    + "}"
)
_SYM4_ODD_ASM = tl.constexpr(
    "{ .reg .b32 e, x, s, sh, m, la, ha, w4; "
    "shr.b32 x, $4, 4; and.b32 x, x, 0x0F0F0F0F; and.b32 e, $5, 0xF0F0F0F0; or.b32 e, e, x; "
    + _sym4_body("e", ("$6", "$8", "$10", "$12"), ("$0", "$1", "$2", "$3"))
    + "}"
)
_SYM4_HALF_CONSTRAINTS = tl.constexpr(",".join(["=r"] * 4 + ["r"] * 10))
# The symmetric lookup of one word into its 4 byte planes (``DecodeConfig.k_byte_planes``):
# output j ($j) is the fp16 pair of nibbles 2j, 2j + 1 of the word ($4; ``pack=2`` over the word
# repeated, ``tl.join(w, w)``, the table words twice each from $6 on): no nibble interleave.
_SYM4_WORD_ASM = tl.constexpr(
    "{ .reg .b32 s, sh, m, la, ha, w4; "
    + _sym4_body("$4", ("$6", "$8", "$10", "$12"), ("$0", "$1", "$2", "$3"))
    + "}"
)


@triton.jit
def _lane_id():
    """This thread's lane in its warp (a value ptxas cannot prove warp-uniform)."""
    return tl.inline_asm_elementwise(
        "mov.u32 $0, %laneid;", "=r,r", [tl.full([], 0, tl.int32)], dtype=tl.int32, is_pure=True, pack=1
    )


@triton.jit
def _register_table(tab, first: tl.constexpr, USED: tl.constexpr):
    """The 8 words of a register table (written by ``_tables_kernel`` after the fp16 tables,
    once per lane: each lane loads its own copy, so ptxas sees per-lane values and keeps them
    in ordinary registers; loaded from one address it promoted some to uniform registers,
    which ``prmt``'s first source cannot read, and copied them back at every use: 84 of 1434
    loop instructions per 32-token tile with ``REPL`` 4, Triton 3.6)."""
    if USED:
        words = (tab + _LANE_WORDS).to(tl.pointer_type(tl.int32)) + first
        if not _INTERPRET:
            words += _lane_id() * 16
        return (
            tl.load(words),
            tl.load(words + 1),
            tl.load(words + 2),
            tl.load(words + 3),
            tl.load(words + 4),
            tl.load(words + 5),
            tl.load(words + 6),
            tl.load(words + 7),
        )
    else:
        return 0, 0, 0, 0, 0, 0, 0, 0


@triton.jit
def _word_planes(w, tab, t0, t1, t2, t3, t4, t5, t6, t7, BITS: tl.constexpr, MODE: tl.constexpr):
    """The 8 index planes of 3- or 4-bit words ``w`` (those of :func:`_load_packed`): plane
    ``k`` is fp16 ``c[index k]`` of every word, in ``w``'s shape. ``_PRMT``: the 16-entry register
    table ``t0..t7``; ``_SYM4``: the symmetric one (``t2, t3, t6, t7``); ``_LDG``/``_LOAD``: one
    table read per index."""
    if MODE == _PRMT:
        return tl.inline_asm_elementwise(
            _PRMT4_ASM,
            "=h,=h,=h,=h,=h,=h,=h,=h,r,r,r,r,r,r,r,r,r",
            [w, t0, t1, t2, t3, t4, t5, t6, t7],
            dtype=(tl.float16,) * 8,
            is_pure=True,
            pack=1,
        )
    elif MODE == _SYM4:
        return tl.inline_asm_elementwise(
            _SYM4_ASM,
            "=h,=h,=h,=h,=h,=h,=h,=h,r,r,r,r,r",
            [w, t2, t3, t6, t7],
            dtype=(tl.float16,) * 8,
            is_pure=True,
            pack=1,
        )
    elif BITS == 3:
        w2 = w << 1  # index 0 through the same (shift >= 1) lookup
        return (
            _lookup_bits(tab, w2, 1, 7, MODE),
            _lookup_bits(tab, w, 3, 7, MODE),
            _lookup_bits(tab, w, 6, 7, MODE),
            _lookup_bits(tab, w, 9, 7, MODE),
            _lookup_bits(tab, w, 12, 7, MODE),
            _lookup_bits(tab, w, 15, 7, MODE),
            _lookup_bits(tab, w, 18, 7, MODE),
            _lookup_bits(tab, w, 21, 7, MODE),
        )
    else:
        # "spread" words hold twice the indices 0, 2, 4, 6 (e) and 1, 3, 5, 7 (o), one per byte
        e = (w << 1) & 0x1E1E1E1E
        o = (w >> 3) & 0x1E1E1E1E
        return (
            _lookup_byte(tab, e, 0, MODE),
            _lookup_byte(tab, o, 0, MODE),
            _lookup_byte(tab, e, 1, MODE),
            _lookup_byte(tab, o, 1, MODE),
            _lookup_byte(tab, e, 2, MODE),
            _lookup_byte(tab, o, 2, MODE),
            _lookup_byte(tab, e, 3, MODE),
            _lookup_byte(tab, o, 3, MODE),
        )


@triton.jit
def _sym_words(w, BITS: tl.constexpr, MODE: tl.constexpr):
    """Words for the symmetric register lookup (``_SYM4``): 4-bit words as they are; 3-bit
    groups (code ``j`` of 8 at bits ``[3j, 3j+3)``) spread to one code per nibble with bit 3 set.
    The 4-bit lookup of ``8 + j`` is ``T[j]``, with ``T`` the 3-bit codebook's 8 entries in code
    order (``_tables_kernel``), so the 3-bit sign stays in ``T`` and the lookup's is +."""
    if MODE == _SYM4 and BITS == 3:
        w = (w & 0xFFF) | ((w & 0xFFF000) << 4)  # 4 indices in each 16-bit half
        w = (w & 0x003F003F) | ((w & 0x0FC00FC0) << 2)  # 2 in each byte
        w = (w & 0x07070707) | ((w & 0x38383838) << 1)  # 1 in each nibble
        return w | -0x77777778  # 0x88888888 as an int32: bit 3 of every nibble
    else:
        return w


@triton.jit
def _dequant4_sym(w, t2, t3, t6, t7, D: tl.constexpr, N: tl.constexpr, PAIR: tl.constexpr):
    """4-bit words ``[N, D/8]`` → fp16 ``[N, D]`` for a symmetric codebook (the words 2, 3, 6, 7
    of the register table hold its positive half): ``_SYM4_PAIR_ASM`` with ``PAIR`` (1, or 2
    for the asm marked impure: see :data:`PAIR_OPAQUE`), else ``_SYM4_ASM`` and
    :func:`_interleave8`."""
    if PAIR:
        # every word 8 times along a new in-thread axis (joins keep it in one thread), so the
        # 8 elements of one asm instance are the 8 coordinates of one word
        w2 = tl.join(w, w)
        w4 = tl.join(w2, w2)
        w8 = tl.join(w4, w4).reshape(N, D)
        return tl.inline_asm_elementwise(
            _SYM4_PAIR_ASM,
            _SYM4_PAIR_CONSTRAINTS,
            [w8, t2, t3, t6, t7],
            dtype=tl.float16,
            is_pure=PAIR == 1,
            pack=8,
        )
    c0, c1, c2, c3, c4, c5, c6, c7 = _word_planes(w, 0, 0, 0, t2, t3, 0, 0, t6, t7, 4, _SYM4)
    return _interleave8(c0, c1, c2, c3, c4, c5, c6, c7, N, D)


@triton.jit
def _load_packed(
    rows, valid, BITS: tl.constexpr, D: tl.constexpr, FIRST: tl.constexpr = 0, COUNT: tl.constexpr = 0
):
    """Packed indices of ``N`` rows as int32 words (``rows``: uint8 pointers ``[N]`` to the
    first packed byte of each row, 4-byte aligned; masked rows read 0): words ``FIRST ..
    FIRST + COUNT - 1`` (``COUNT = 0``: all).

    2 and 4 bits: ``[N, D*BITS/32]`` words, index ``k`` of a word at bits ``[k*BITS, (k+1)*BITS)``.
    3 bits: ``[N, D/8]`` 24-bit group words (8 indices in 3 bytes)."""
    m = valid[:, None]
    n3: tl.constexpr = D // 8 if COUNT == 0 else COUNT
    if BITS == 3 and D < 128:
        # D = 64: three byte planes (the word loads of session 16's run 4 gave wrong values on an
        # H200 there)
        p = rows[:, None] + 3 * (FIRST + tl.arange(0, n3))[None, :]
        w = tl.load(p, mask=m, other=0).to(tl.int32)
        w = w | (tl.load(p + 1, mask=m, other=0).to(tl.int32) << 8)
        return w | (tl.load(p + 2, mask=m, other=0).to(tl.int32) << 16)
    elif BITS == 3:
        # the words of the groups FIRST .. FIRST+n3-1 loaded as contiguous words (the layout
        # of the 4-bit words: lanes along the words), then group k is bits [s, s + 24) of the
        # word pair at 3k // 4, s = 8 * (3k % 4), gathered from the lanes that hold them
        nw: tl.constexpr = 3 * n3 // 4
        j = tl.arange(0, n3)
        words = rows.to(tl.pointer_type(tl.int32))[:, None] + (3 * FIRST // 4 + j)[None, :]
        w = tl.load(words, mask=m & (j < nw)[None, :], other=0)
        ia = ((3 * j) // 4)[None, :] + tl.zeros_like(w)
        ib = tl.minimum(ia + 1, nw - 1)
        wa = tl.gather(w, ia, 1).to(tl.uint32, bitcast=True)
        wb = tl.gather(w, ib, 1).to(tl.uint32, bitcast=True)
        sh = (8 * ((3 * j) % 4)).to(tl.uint32)[None, :]
        return (((wa >> sh) | ((wb << 8) << (24 - sh))) & 0xFFFFFF).to(tl.int32, bitcast=True)
    else:
        n: tl.constexpr = D * BITS // 32 if COUNT == 0 else COUNT
        # int32 pointers first, then the word offsets: Triton then sees each row's words as
        # contiguous and loads them 16 bytes at a time where rows are 16-byte aligned (the
        # contiguous cache; paged records of 68 bytes are only 4-byte aligned)
        words = rows.to(tl.pointer_type(tl.int32))[:, None] + (FIRST + tl.arange(0, n))[None, :]
        return tl.load(words, mask=m, other=0)


@triton.jit
def _byte_planes(tab, a, b, N: tl.constexpr, C: tl.constexpr, MODE: tl.constexpr):
    """``[N, C]`` values of the indices in bytes 0..3 of spread words ``a`` and ``b``, in the
    order ``a0 b0 a1 b1 a2 b2 a3 b3`` (:func:`_interleave8`)."""
    return _interleave8(
        _lookup_byte(tab, a, 0, MODE),
        _lookup_byte(tab, b, 0, MODE),
        _lookup_byte(tab, a, 1, MODE),
        _lookup_byte(tab, b, 1, MODE),
        _lookup_byte(tab, a, 2, MODE),
        _lookup_byte(tab, b, 2, MODE),
        _lookup_byte(tab, a, 3, MODE),
        _lookup_byte(tab, b, 3, MODE),
        N,
        C,
    )


@triton.jit
def _dequant2(w, tab, D: tl.constexpr, N: tl.constexpr, MODE: tl.constexpr):
    """Codebook values ``c[idx]`` (fp16 ``[N, D]``, coordinate order, no norm) of the 2-bit words
    of :func:`_load_packed`, looked up one index at a time (``MODE``: ``_LDG`` or ``_LOAD``);
    each lookup yields one plane (index ``k`` of every word) and :func:`_interleave8` restores
    coordinate order. Indices ``k = 4j + r`` sit in byte ``j`` of spread word ``s_r``."""
    s0 = (w << 1) & 0x06060606
    s1 = (w >> 1) & 0x06060606
    s2 = (w >> 3) & 0x06060606
    s3 = (w >> 5) & 0x06060606
    ev = _byte_planes(tab, s0, s2, N, D // 2, MODE)  # even indices 0, 2, ..., 14
    od = _byte_planes(tab, s1, s3, N, D // 2, MODE)  # odd indices 1, 3, ..., 15
    return tl.join(ev, od).reshape(N, D)


@triton.jit
def _tile_values(
    w,
    tab,
    t0,
    t1,
    t2,
    t3,
    t4,
    t5,
    t6,
    t7,
    BITS: tl.constexpr,
    D: tl.constexpr,
    N: tl.constexpr,
    MODE: tl.constexpr,
    PAIR: tl.constexpr,
):
    """fp16 ``[N, D]`` codebook values of a tile's words, by ``MODE`` (``_PRMT``: 4 bits only;
    ``_SYM4``: 3 and 4 bits, :func:`_sym_words`; ``PAIR``: see :func:`_dequant4_sym`)."""
    if MODE == _SYM4:
        return _dequant4_sym(_sym_words(w, BITS, MODE), t2, t3, t6, t7, D, N, PAIR)
    elif BITS == 2:
        return _dequant2(w, tab, D, N, MODE)
    else:
        c0, c1, c2, c3, c4, c5, c6, c7 = _word_planes(w, tab, t0, t1, t2, t3, t4, t5, t6, t7, BITS, MODE)
        return _interleave8(c0, c1, c2, c3, c4, c5, c6, c7, N, D)


@triton.jit
def _sym4_planes(x, t2, t3, t6, t7, PURE: tl.constexpr):
    """The 8 index planes of the 4-bit words ``x`` by the symmetric register lookup in pairs:
    ``_SYM4_EVEN_ASM``/``_SYM4_ODD_ASM`` on every two adjacent words of a thread (plane ``k``
    in ``x``'s shape and layout, fp16 ``c[index k]``); ``PURE``: the asm's ``is_pure``."""
    p0, p2, p4, p6 = tl.inline_asm_elementwise(
        _SYM4_EVEN_ASM,
        _SYM4_HALF_CONSTRAINTS,
        [x, t2, t3, t6, t7],
        dtype=(tl.float16,) * 4,
        is_pure=PURE,
        pack=2,
    )
    p1, p3, p5, p7 = tl.inline_asm_elementwise(
        _SYM4_ODD_ASM,
        _SYM4_HALF_CONSTRAINTS,
        [x, t2, t3, t6, t7],
        dtype=(tl.float16,) * 4,
        is_pure=PURE,
        pack=2,
    )
    return p0, p1, p2, p3, p4, p5, p6, p7


@triton.jit
def _pair_planes(a, b, N: tl.constexpr, C: tl.constexpr):
    """Planes ``a``, ``b`` ``[N, C/2]`` → ``[N, C]``, column ``2i + e`` from ``(a, b)[e]`` column ``i``."""
    return tl.join(a, b).reshape(N, C)


@triton.jit
def _tile_planes(
    lo,
    hi,
    tab,
    t0,
    t1,
    t2,
    t3,
    t4,
    t5,
    t6,
    t7,
    BITS: tl.constexpr,
    N: tl.constexpr,
    W: tl.constexpr,
    MODE: tl.constexpr,
):
    """The 8 index planes of a tile whose words (3 or 4 bits, ``W`` per row) were loaded in two
    halves, ``lo`` = words ``[0, W/2)`` and ``hi`` = ``[W/2, W)`` (``[N, W/2]`` each): plane ``k``
    is fp16 ``[N, W]``, column ``2i + e`` the value of index ``k`` of word ``i + e * W/2``, i.e. of
    coordinate ``8 * (i + e * W/2) + k`` (:func:`_plane_coords`). Each plane is a dot operand
    whose adjacent columns (one register on the tensor cores) come from one asm instance
    (``_SYM4``: ``_SYM4_EVEN_ASM``, ``_SYM4_ODD_ASM``); the dots run over the planes and the
    query and the output follow their order, so the coordinate order is never restored."""
    if MODE == _SYM4:
        lo = _sym_words(lo, BITS, MODE)
        hi = _sym_words(hi, BITS, MODE)
        # is_pure=False hides the join from the MMA operand-width heuristic (Triton 3.6's
        # computeOrigBitWidth halves the width when a join is among an operand's producers and
        # then chooses kWidth = 4): with kWidth = 2, 1370 against 1547 loop instructions per
        # 32-token tile (scripts/decode_static_report.py, one 8-output asm then)
        return _sym4_planes(_pair_planes(lo, hi, N, W), t2, t3, t6, t7, False)
    a0, a1, a2, a3, a4, a5, a6, a7 = _word_planes(lo, tab, t0, t1, t2, t3, t4, t5, t6, t7, BITS, MODE)
    b0, b1, b2, b3, b4, b5, b6, b7 = _word_planes(hi, tab, t0, t1, t2, t3, t4, t5, t6, t7, BITS, MODE)
    return (
        _pair_planes(a0, b0, N, W),
        _pair_planes(a1, b1, N, W),
        _pair_planes(a2, b2, N, W),
        _pair_planes(a3, b3, N, W),
        _pair_planes(a4, b4, N, W),
        _pair_planes(a5, b5, N, W),
        _pair_planes(a6, b6, N, W),
        _pair_planes(a7, b7, N, W),
    )


@triton.jit
def _plane_coords(k: tl.constexpr, W: tl.constexpr):
    """Coordinates of the columns of plane ``k`` of :func:`_tile_planes` (``[W]``)."""
    c = tl.arange(0, W)
    return 8 * (c // 2 + (c % 2) * (W // 2)) + k


@triton.jit
def _fragment_words(W: tl.constexpr):
    """The words behind the columns of :func:`_fragment_planes` (``[W]``, ``W = 16``): column
    ``8h + 2t + e`` is word ``4t + 2h + e``."""
    c = tl.arange(0, W)
    return 4 * ((c % 8) // 2) + 2 * (c // 8) + c % 2


@triton.jit
def _fragment_planes(
    w, tab, t0, t1, t2, t3, t4, t5, t6, t7, N: tl.constexpr, W: tl.constexpr, MODE: tl.constexpr
):
    """The 8 index planes of 4-bit words ``w`` (``[N, W]``, ``W = 16``, loaded 16 bytes per lane:
    lane ``4g + t`` holds rows ``g + 8i`` and words ``4t .. 4t + 3``), each relabelled so that its
    columns are those of :func:`_fragment_words`: the lane's words are then the columns ``2t,
    2t + 1, 2t + 8, 2t + 9`` of a 16-wide reduction, the A operand fragment of the tensor cores
    (``mma.m16n8k16``) as the load left it, with no shared memory and no shuffles. Plane ``k`` is
    fp16 ``c[index k]``; adjacent words ``4t + 2h``, ``4t + 2h + 1`` share one asm instance
    (``_SYM4_EVEN_ASM``/``_SYM4_ODD_ASM``), whose fp16 pair is the fragment's register."""
    if MODE == _SYM4:
        p0, p1, p2, p3, p4, p5, p6, p7 = _sym4_planes(w, t2, t3, t6, t7, True)
    else:
        p0, p1, p2, p3, p4, p5, p6, p7 = _word_planes(w, tab, t0, t1, t2, t3, t4, t5, t6, t7, 4, MODE)
    return (
        _relabel(p0, N, W),
        _relabel(p1, N, W),
        _relabel(p2, N, W),
        _relabel(p3, N, W),
        _relabel(p4, N, W),
        _relabel(p5, N, W),
        _relabel(p6, N, W),
        _relabel(p7, N, W),
    )


# movmatrix: the warp's 8x8 block of 16-bit values in one register per lane (lane 4r + c holding
# row r, columns 2c and 2c + 1, as a tensor-core C fragment or A fragment holds it) transposed.
_MOVMATRIX_ASM = tl.constexpr("movmatrix.sync.aligned.m8n8.trans.b16 $0, $1;")


@triton.jit
def _block_transpose(x, R: tl.constexpr, C: tl.constexpr):
    """``x`` (fp16 ``[R, C]``) with each 8x8 block transposed in place: ``y[8i + a, 8j + b] =
    x[8i + b, 8j + a]``. On the GPU ``x`` must be in a tensor-core C (or A) fragment layout,
    whose registers hold its 8x8 blocks as ``movmatrix`` takes them: the asm moves the values
    between lanes while Triton sees an elementwise op (so the result is only right in that
    layout; impure, so the compiler neither duplicates it nor changes its operand's layout)."""
    if _INTERPRET:
        return x.reshape(R // 8, 8, C // 8, 8).permute(0, 3, 2, 1).reshape(R, C)
    return tl.inline_asm_elementwise(_MOVMATRIX_ASM, "=r,r", [x], dtype=tl.float16, is_pure=False, pack=2)


@triton.jit
def _transposed_operand(pt, R: tl.constexpr, C: tl.constexpr):
    """``pt^T`` (``[C, R]``) from fp16 ``pt`` ``[R, C]`` in a tensor-core C fragment layout (the
    scores of ``K @ q^T``), in the registers of an A fragment: each 8x8 block is transposed by
    :func:`_block_transpose` and the blocks are relabelled (in-thread, no data moves): ``z[8j + a,
    8i + b] = y[8i + a, 8j + b] = pt[8i + b, 8j + a]``."""
    y = _block_transpose(pt, R, C)
    return y.reshape(R // 8, 8, C // 8, 8).permute(2, 1, 0, 3).reshape(C, R)


@triton.jit
def _relabel(p, N: tl.constexpr, W: tl.constexpr):
    """Column ``4t + 2h + e`` of ``p`` to column ``8h + 2t + e`` (in-thread: no data moves)."""
    return p.reshape(N, W // 4, 2, 2).permute(0, 2, 1, 3).reshape(N, W)


@triton.jit
def _byte_coords(m: tl.constexpr, j1: tl.constexpr, W: tl.constexpr):
    """The coordinates of the columns of byte plane ``m``, half ``j1`` of
    :func:`_byte_half` (``[W]``): column ``8 j0 + 2t + e`` is nibble ``2m + e`` of word
    ``4t + 2 j1 + j0``."""
    c = tl.arange(0, W)
    word = 4 * ((c % 8) // 2) + 2 * j1 + c // 8
    return 8 * word + 2 * m + c % 2


@triton.jit
def _word_byte_planes(
    w, tab, t0, t1, t2, t3, t4, t5, t6, t7, N: tl.constexpr, C: tl.constexpr, MODE: tl.constexpr
):
    """The 4 byte planes of the 4-bit words ``w`` (``[N, C/2]``): plane ``m`` is fp16 ``[N, C]``,
    column ``2i + e`` the value of nibble ``2m + e`` of word ``i``; a column pair (one register)
    comes from one word (``_SYM4``: ``_SYM4_WORD_ASM``)."""
    if MODE == _SYM4:
        x2 = tl.join(w, w).reshape(N, C)
        b0, b1, b2, b3 = tl.inline_asm_elementwise(
            _SYM4_WORD_ASM,
            _SYM4_HALF_CONSTRAINTS,
            [x2, t2, t3, t6, t7],
            dtype=(tl.float16,) * 4,
            is_pure=False,
            pack=2,
        )
    else:
        p0, p1, p2, p3, p4, p5, p6, p7 = _word_planes(w, tab, t0, t1, t2, t3, t4, t5, t6, t7, 4, MODE)
        b0 = _pair_planes(p0, p1, N, C)
        b1 = _pair_planes(p2, p3, N, C)
        b2 = _pair_planes(p4, p5, N, C)
        b3 = _pair_planes(p6, p7, N, C)
    return b0, b1, b2, b3


@triton.jit
def _byte_half(wh, tab, t0, t1, t2, t3, t4, t5, t6, t7, N: tl.constexpr, W: tl.constexpr, MODE: tl.constexpr):
    """The 4 byte planes (:func:`_word_byte_planes`) of the words ``wh`` (``[N, W/2]``; lane ``4g + t``
    holds words ``2t, 2t + 1``): ``[N, W]``, column ``4t + 2 j0 + e`` nibble ``2m + e`` of word
    ``2t + j0``, relabelled to ``8 j0 + 2t + e`` (:func:`_relabel`)."""
    b0, b1, b2, b3 = _word_byte_planes(wh, tab, t0, t1, t2, t3, t4, t5, t6, t7, N, W, MODE)
    return _relabel(b0, N, W), _relabel(b1, N, W), _relabel(b2, N, W), _relabel(b3, N, W)


@triton.jit
def _v_plane_coords(plane, W: tl.constexpr, BYTES: tl.constexpr):
    """The coordinates of the columns of the V planes ``plane`` (``[R, 1]``) of the split kernel
    (``[R, W]``): nibble planes (:func:`_plane_coords`: column ``2i + e`` is coordinate ``8 (i + e
    W/2) + plane``) or, with ``BYTES``, byte plane ``m`` of word half ``h`` (``plane = 4h + m``,
    :func:`_word_byte_planes`: column ``2i + e`` is coordinate ``8 (i + h W/2) + 2m + e``)."""
    if BYTES:
        c = tl.arange(0, W)[None, :]
        return 8 * (c // 2 + (plane // 4) * (W // 2)) + 2 * (plane % 4) + c % 2
    return _plane_coords(0, W)[None, :] + plane


@triton.jit
def _copy_rows(pv, copy, c: tl.constexpr, PRODUCT: tl.constexpr):
    """``pv`` (fp16, finite, non-negative) on the rows of row copy ``c``, zero elsewhere: by a
    select, or (``PRODUCT``) by a product with a 0/1 factor, which gives the same bits."""
    if PRODUCT:
        return pv * (copy == c).to(tl.float16)[:, None]
    return tl.where((copy == c)[:, None], pv, 0.0)


@triton.jit
def _word_halves(w, N: tl.constexpr, W: tl.constexpr):
    """Words ``4t + j0`` and ``4t + 2 + j0`` of ``w`` (``[N, W]``) as two ``[N, W/2]``."""
    lo, hi = tl.split(w.reshape(N, W // 4, 2, 2).permute(0, 1, 3, 2))
    return lo.reshape(N, W // 2), hi.reshape(N, W // 2)


@triton.jit
def _online_softmax(s, kn, vn, valid, m_i, l_i, AXIS: tl.constexpr):
    """One tile's step of the online softmax: ``s`` the scores before the key norms
    (log2-domain, q is pre-scaled) with the tile's tokens along ``AXIS``; returns the new row
    maxima, the rescale factor of the old sums, the new sums and the probabilities with the value
    norms folded in (fp32, ``s``'s shape; invalid tokens 0)."""
    s = s * tl.expand_dims(kn, 1 - AXIS)
    s = tl.where(tl.expand_dims(valid, 1 - AXIS), s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, AXIS))
    alpha = tl.exp2(m_i - m_new)
    p = tl.exp2(s - tl.expand_dims(m_new, AXIS))
    return m_new, alpha, l_i * alpha + tl.sum(p, AXIS), p * tl.expand_dims(vn, 1 - AXIS)


@triton.jit
def _block_ids(bt_row, t0, end, PAGED: tl.constexpr, PAGE: tl.constexpr, BLOCK_N: tl.constexpr):
    """int64 block ids of tokens ``t0 .. t0+BLOCK_N-1`` (0 past ``end``; unused unpaged)."""
    tok = t0 + tl.arange(0, BLOCK_N)
    if PAGED:
        return tl.load(bt_row + tok // PAGE, mask=tok < end, other=0).to(tl.int64)
    else:
        return tok.to(tl.int64)


@triton.jit
def _load_tile(
    k_head,
    kn_head,
    v_head,
    vn_head,
    blk,
    t0,
    end,
    stride_kp,
    stride_kt,
    stride_knp,
    stride_knt,
    stride_vp,
    stride_vt,
    stride_vnp,
    stride_vnt,
    K_BITS: tl.constexpr,
    V_BITS: tl.constexpr,
    D: tl.constexpr,
    PAGED: tl.constexpr,
    PAGE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    K_PLANES: tl.constexpr,
    V_PLANES: tl.constexpr,
):
    """Issue the loads of one tile: packed K and V words (``(all, all)``, or with ``*_PLANES``
    the halves ``(lo, hi)`` of :func:`_tile_planes`, which the byte planes take too) and the
    fp32 norms."""
    tok = t0 + tl.arange(0, BLOCK_N)
    valid = tok < end
    if PAGED:  # token t is row t % PAGE of page blk
        row = tok % PAGE
        k_off = blk * stride_kp + row * stride_kt
        kn_off = blk * stride_knp + row * stride_knt
        v_off = blk * stride_vp + row * stride_vt
        vn_off = blk * stride_vnp + row * stride_vnt
    else:
        k_off = tok * stride_kt
        kn_off = tok * stride_knt
        v_off = tok * stride_vt
        vn_off = tok * stride_vnt
    if K_PLANES:
        kw = _load_packed(k_head + k_off, valid, K_BITS, D, 0, D // 16)
        kw2 = _load_packed(k_head + k_off, valid, K_BITS, D, D // 16, D // 16)
    else:
        kw = _load_packed(k_head + k_off, valid, K_BITS, D)
        kw2 = kw
    if V_PLANES:
        vw = _load_packed(v_head + v_off, valid, V_BITS, D, 0, D // 16)
        vw2 = _load_packed(v_head + v_off, valid, V_BITS, D, D // 16, D // 16)
    else:
        vw = _load_packed(v_head + v_off, valid, V_BITS, D)
        vw2 = vw
    kn = tl.load(kn_head + kn_off, mask=valid, other=0.0)
    vn = tl.load(vn_head + vn_off, mask=valid, other=0.0)
    return kw, kw2, vw, vw2, kn, vn


@triton.jit
def _bf16_halves(x):
    """``x`` (fp32, or a bf16 ``x``: its own ``hi``, ``lo = 0``) as two bf16 pieces
    ``hi + lo`` with ~16 significant bits (bf16 has fp32's exponent range, so no scaling)."""
    x = x.to(tl.float32)
    hi = x.to(tl.bfloat16)
    return hi, (x - hi.to(tl.float32)).to(tl.bfloat16)


@triton.jit
def _dot_halves(a_hi, a_lo, b_hi, b_lo, A_LO: tl.constexpr):
    """``a @ b`` in fp32 from bf16 pieces (``a = a_hi + a_lo``, ``b = b_hi + b_lo``): the small
    terms first, ``a_lo @ b_lo`` (~2**-16 of the product) left out, ``a_lo`` too unless
    ``A_LO`` (an ``a`` that is bf16 already has none)."""
    acc = dot(a_hi, b_lo)
    if A_LO:
        acc = dot(a_lo, b_hi, acc)
    return dot(a_hi, b_hi, acc)


@triton.jit
def _tables_kernel(KC, VC, TAB, NK: tl.constexpr, NV: tl.constexpr):
    """One program: the split kernel's codebook tables in ``TAB`` (``_TABLES`` fp16) — the K and
    V codebooks (``NK``/``NV`` fp32 entries, in code order: ``turboquant.packing.code_order``)
    as fp16 at ``[0, 16)`` and ``[128, 144)``, then the register tables, 16 int32 words once per
    lane."""
    i = tl.arange(0, 16)
    kc = tl.load(KC + i, mask=i < NK, other=0.0).to(tl.float16)
    vc = tl.load(VC + i, mask=i < NV, other=0.0).to(tl.float16)
    tl.store(TAB + i, kc)
    tl.store(TAB + 128 + i, vc)
    # register tables of _dequant4_prmt: low bytes of entries 4k..4k+3 in word k, high in 4+k;
    # a 3-bit codebook's 8 entries are entries 8..15 (see _sym_words)
    words = (TAB + _LANE_WORDS).to(tl.pointer_type(tl.int32))
    copies = tl.arange(0, 32)[:, None] * 16  # one copy of the 16 words per lane
    r = tl.arange(0, 4)[None, :]
    kr = tl.load(KC + i - 8, mask=i >= 8, other=0.0).to(tl.float16) if NK == 8 else kc
    vr = tl.load(VC + i - 8, mask=i >= 8, other=0.0).to(tl.float16) if NV == 8 else vc
    for which in tl.static_range(2):
        c = kr if which == 0 else vr
        bits = c.to(tl.int16, bitcast=True).to(tl.int32) & 0xFFFF
        shift = 8 * (i % 4)
        lo = tl.sum(((bits & 0xFF) << shift).reshape(4, 4), axis=1)[None, :]
        hi = tl.sum(((bits >> 8) << shift).reshape(4, 4), axis=1)[None, :]
        tl.store(words + copies + 8 * which + r, tl.broadcast_to(lo, (32, 4)))
        tl.store(words + copies + 8 * which + 4 + r, tl.broadcast_to(hi, (32, 4)))


@triton.jit
def _prep_kernel(
    Q,
    stride_qb,
    stride_qh,
    ROTP,
    QOUT,
    qk_scale,
    G: tl.constexpr,
    G_PAD: tl.constexpr,
    D: tl.constexpr,
    PDL: tl.constexpr = False,
    EARLY: tl.constexpr = False,
):
    """Program (kv head, sequence): ``QOUT[b, h*G+g] = fp16(q @ Pi.T * qk_scale)``.

    ``ROTP``: ``Pi`` as two contiguous bf16 pieces ``[2, D, D]`` (:func:`rotation_pieces`); the
    query is split into bf16 pieces too (a bf16 query is one), so the rotation is 2 or 3
    bf16 tensor-core dots with ~16 significant bits, clear of the fp16 the result is stored in.
    ``PDL`` (programmatic dependent launch, see :class:`DecodeConfig`): wait for the kernel
    before this one; the split kernel is let in when this one's stores are issued, or with
    ``EARLY`` right after the wait (it waits for this grid before it reads ``QOUT``). The
    codebook tables are not written here but once per codebook (:func:`decode_tables`). The
    rotation (D <= 128) is loaded before the wait, as it does not depend on the kernel
    before."""
    h = tl.program_id(0)
    b = tl.program_id(1)
    g = tl.arange(0, G_PAD)
    d = tl.arange(0, D)
    gmask = (g < G)[:, None]
    # output columns in blocks (a [256, 256] operand pair is more shared memory than is useful)
    BLOCK_J: tl.constexpr = D if D <= 128 else 64
    if BLOCK_J == D:
        pit = ROTP + d[None, :] * D + d[:, None]  # Pi.T
        pit_hi, pit_lo = tl.load(pit), tl.load(pit + D * D)
    if PDL:
        gdc_wait()
        if EARLY:
            gdc_launch_dependents()
    q = tl.load(Q + b * stride_qb + (h * G + g)[:, None] * stride_qh + d[None, :], mask=gmask, other=0.0)
    Q_LO: tl.constexpr = Q.dtype.element_ty != tl.bfloat16
    q_hi, q_lo = _bf16_halves(q)
    row = b * tl.num_programs(0) * G + h * G + g
    for j0 in tl.static_range(0, D, BLOCK_J):
        j = j0 + tl.arange(0, BLOCK_J)
        if BLOCK_J != D:
            pit = ROTP + j[None, :] * D + d[:, None]  # Pi.T[:, j]
            pit_hi, pit_lo = tl.load(pit), tl.load(pit + D * D)
        q_rot = _dot_halves(q_hi, q_lo, pit_hi, pit_lo, Q_LO) * qk_scale
        tl.store(QOUT + row[:, None] * D + j[None, :], q_rot.to(tl.float16), mask=gmask)
    if PDL:
        if not EARLY:
            gdc_launch_dependents()


@triton.jit
def _split_kernel(
    Q,
    K,
    KN,
    V,
    VN,
    TAB,
    BT,
    LENS,
    ACC,
    ML,
    stride_kp,
    stride_kt,
    stride_kh,
    stride_knp,
    stride_knt,
    stride_knh,
    stride_vp,
    stride_vt,
    stride_vh,
    stride_vnp,
    stride_vnt,
    stride_vnh,
    stride_bt,
    seq_len_all,
    chunk,
    num_splits,
    G: tl.constexpr,
    G_PAD: tl.constexpr,
    D: tl.constexpr,
    K_BITS: tl.constexpr,
    V_BITS: tl.constexpr,
    PAGED: tl.constexpr,
    PAGE: tl.constexpr,
    HAS_LENS: tl.constexpr,
    BLOCK_N: tl.constexpr,
    PREFETCH: tl.constexpr,
    K_SYM: tl.constexpr = False,
    V_SYM: tl.constexpr = False,
    PAIR: tl.constexpr = False,
    K_PLANES: tl.constexpr = False,
    V_PLANES: tl.constexpr = False,
    PDL: tl.constexpr = False,
    REPL: tl.constexpr = 1,
    K_FRAGMENTS: tl.constexpr = False,
    EARLY: tl.constexpr = False,
    K_BYTES: tl.constexpr = False,
    V_BYTES: tl.constexpr = False,
    MASK_PRODUCT: tl.constexpr = False,
):
    """Program (split, kv head, sequence): online softmax over tokens
    ``[split*chunk, min((split+1)*chunk, len))`` for the ``G`` query heads of the group.

    Scores are ``[G_PAD, BLOCK_N]`` (``q_rot @ K_tile^T``), so the probabilities are the A
    operand of ``P @ V_tile`` as the first dot leaves them. ``K_PLANES``/``V_PLANES`` (3 and
    4 bits, ``D = 128``, one warp; the launcher takes them for 4 bits: :func:`_plane_dots`):
    the tile is kept as its 8 index planes (:func:`_tile_planes`) and each dot runs as 8 dots
    over them, the query read and the output written in the planes' column order; otherwise
    the tile is decompressed into coordinate order first.

    ``REPL`` (with ``V_PLANES``; 1, 2 or 4, ``G * REPL <= G_PAD``): the ``G_PAD`` rows of the
    dots, padding beyond the ``G`` query heads otherwise, hold ``REPL`` copies of each head
    (row ``r`` is head ``r % G``, copy ``r // G``), and copy ``c`` accumulates only the planes
    ``c * 8 / REPL ...`` of ``P @ V`` (its probabilities masked to its rows in the other
    copies' dots): ``8 / REPL`` accumulators of ``[G_PAD, D / 8]`` instead of 8, the same dots.

    ``K_FRAGMENTS`` (with ``K_PLANES``, 4 bits): the scores are computed transposed,
    ``K_tile @ q_rot^T`` (``[BLOCK_N, G_PAD]``), the K planes being the A operand straight from
    the registers the 16-byte loads and the lookup left them in (:func:`_fragment_planes`, no
    shared memory); the probabilities reach the A operand of ``P @ V_tile`` through
    :func:`_transposed_operand` (``movmatrix``, 8 instructions per 32-token tile).

    ``V_BYTES`` (with ``V_PLANES``, 4 bits): the V words are looked up one word at a time, each
    half of a row's words into 4 byte planes (:func:`_word_byte_planes`), rather than two words
    at a time into 8 nibble planes: the same 8 dots and accumulators, other columns
    (:func:`_v_plane_coords`).

    ``MASK_PRODUCT`` (with ``REPL`` > 1): the probabilities of copy ``c`` are ``pv`` times an
    fp16 0/1 factor per row rather than ``tl.where(copy == c, pv, 0)`` (the same bits: ``pv`` is
    finite and non-negative).

    ``K``/``V``: uint8 pointers at the packed bytes of (page or sequence 0, token 0, head 0);
    ``KN``/``VN``: fp32 pointers at the matching norms; strides: page-or-sequence, token,
    head (bytes for packed, elements for norms). ``PAGED``: token ``t`` of sequence ``b`` is
    row ``t % PAGE`` of page ``BT[b, t // PAGE]``; otherwise it is token ``t`` of sequence ``b``.
    """
    # keep this order (ids, H_KV, the LENS load, then start): with H_KV or start first Triton
    # 3.6 compiles the loop to 197 registers instead of 168, 8 programs per SM instead of 12
    split = tl.program_id(0)
    h = tl.program_id(1)
    b = tl.program_id(2)
    H_KV = tl.num_programs(1)
    if HAS_LENS:
        seq_len = tl.load(LENS + b)
    else:
        seq_len = seq_len_all
    start = split * chunk
    end = tl.minimum(start + chunk, seq_len)

    g = tl.arange(0, G_PAD)
    d = tl.arange(0, D)
    gmask = g < G
    head = g % G  # the query head of each row (REPL copies of each)
    copy = g // G
    rmask = g < G * REPL
    q_rows = Q + ((b * H_KV + h) * G + head)[:, None] * D
    W: tl.constexpr = D // 8  # words (3 bits: 3-byte groups) per row, columns of a plane
    VB: tl.constexpr = V_PLANES and V_BYTES  # V planes: the byte planes of the two word halves
    NACC: tl.constexpr = 8 // REPL  # plane accumulators per row
    m_i = tl.full([G_PAD], float("-inf"), tl.float32)
    l_i = tl.zeros([G_PAD], tl.float32)
    if V_PLANES:
        a0 = tl.zeros([G_PAD, W], tl.float32)
        a1 = tl.zeros([G_PAD, W], tl.float32)
        if NACC >= 4:
            a2 = tl.zeros([G_PAD, W], tl.float32)
            a3 = tl.zeros([G_PAD, W], tl.float32)
        if NACC == 8:
            a4 = tl.zeros([G_PAD, W], tl.float32)
            a5 = tl.zeros([G_PAD, W], tl.float32)
            a6 = tl.zeros([G_PAD, W], tl.float32)
            a7 = tl.zeros([G_PAD, W], tl.float32)
    else:
        a0 = tl.zeros([G_PAD, D], tl.float32)

    k_head = K + h * stride_kh
    kn_head = KN + h * stride_knh
    v_head = V + h * stride_vh
    vn_head = VN + h * stride_vnh
    if not PAGED:  # 64-bit sequence offsets: large caches exceed 2**31 bytes
        b64 = b.to(tl.int64)
        k_head += b64 * stride_kp
        kn_head += b64 * stride_knp
        v_head += b64 * stride_vp
        vn_head += b64 * stride_vnp
    K_HALVES: tl.constexpr = K_PLANES and not K_FRAGMENTS  # K words loaded as _tile_planes' halves
    K_MODE: tl.constexpr = _LOAD if _INTERPRET else (_SYM4 if K_SYM else (_PRMT if K_BITS == 4 else _LDG))
    V_MODE: tl.constexpr = _LOAD if _INTERPRET else (_SYM4 if V_SYM else (_PRMT if V_BITS == 4 else _LDG))
    # PREFETCH: software pipeline, block ids two tiles ahead, packed words and norms one tile
    # ahead, so memory latency overlaps the decompression of the current tile (~55 more
    # registers); otherwise each tile is loaded where it is used and other warps hide latency
    bt_row = BT + b * stride_bt
    if PREFETCH:
        blk_next = _block_ids(bt_row, start + BLOCK_N, end, PAGED, PAGE, BLOCK_N)
        kw, kw2, vw, vw2, kn, vn = _load_tile(
            k_head,
            kn_head,
            v_head,
            vn_head,
            _block_ids(bt_row, start, end, PAGED, PAGE, BLOCK_N),
            start,
            end,
            stride_kp,
            stride_kt,
            stride_knp,
            stride_knt,
            stride_vp,
            stride_vt,
            stride_vnp,
            stride_vnt,
            K_BITS,
            V_BITS,
            D,
            PAGED,
            PAGE,
            BLOCK_N,
            K_HALVES,
            V_PLANES,
        )
    # register tables (c* of K, e* of V): built before the call (decode_tables), and the
    # kernel before prep has finished when this grid starts (prep waits for it first)
    c0, c1, c2, c3, c4, c5, c6, c7 = _register_table(TAB, 0, K_MODE == _PRMT or K_MODE == _SYM4)
    e0, e1, e2, e3, e4, e5, e6, e7 = _register_table(TAB, 8, V_MODE == _PRMT or V_MODE == _SYM4)
    # what the prep kernel wrote (the rotated query) is read only from here on; with PDL
    # everything above overlaps its tail; with EARLY the reduce kernel is let in from here
    # (its programs load the rotation, then wait for this grid)
    if PDL:
        gdc_wait()
        if EARLY:
            gdc_launch_dependents()
    q_base = Q + ((b * H_KV + h) * G + head)[None, :] * D  # the columns of q^T
    if K_FRAGMENTS and K_BYTES:  # q^T byte planes: row c of plane (m, j1) is _byte_coords(m, j1, W)[c]
        q0 = tl.load(q_base + _byte_coords(0, 0, W)[:, None], mask=rmask[None, :], other=0.0)
        q1 = tl.load(q_base + _byte_coords(1, 0, W)[:, None], mask=rmask[None, :], other=0.0)
        q2 = tl.load(q_base + _byte_coords(2, 0, W)[:, None], mask=rmask[None, :], other=0.0)
        q3 = tl.load(q_base + _byte_coords(3, 0, W)[:, None], mask=rmask[None, :], other=0.0)
        q4 = tl.load(q_base + _byte_coords(0, 1, W)[:, None], mask=rmask[None, :], other=0.0)
        q5 = tl.load(q_base + _byte_coords(1, 1, W)[:, None], mask=rmask[None, :], other=0.0)
        q6 = tl.load(q_base + _byte_coords(2, 1, W)[:, None], mask=rmask[None, :], other=0.0)
        q7 = tl.load(q_base + _byte_coords(3, 1, W)[:, None], mask=rmask[None, :], other=0.0)
    elif K_FRAGMENTS:  # q^T planes: row c of plane k is coordinate 8 * _fragment_words(W)[c] + k
        q_cols = q_base + 8 * _fragment_words(W)[:, None]
        q0 = tl.load(q_cols + 0, mask=rmask[None, :], other=0.0)
        q1 = tl.load(q_cols + 1, mask=rmask[None, :], other=0.0)
        q2 = tl.load(q_cols + 2, mask=rmask[None, :], other=0.0)
        q3 = tl.load(q_cols + 3, mask=rmask[None, :], other=0.0)
        q4 = tl.load(q_cols + 4, mask=rmask[None, :], other=0.0)
        q5 = tl.load(q_cols + 5, mask=rmask[None, :], other=0.0)
        q6 = tl.load(q_cols + 6, mask=rmask[None, :], other=0.0)
        q7 = tl.load(q_cols + 7, mask=rmask[None, :], other=0.0)
    elif K_PLANES:
        q0 = tl.load(q_rows + _plane_coords(0, W)[None, :], mask=rmask[:, None], other=0.0)
        q1 = tl.load(q_rows + _plane_coords(1, W)[None, :], mask=rmask[:, None], other=0.0)
        q2 = tl.load(q_rows + _plane_coords(2, W)[None, :], mask=rmask[:, None], other=0.0)
        q3 = tl.load(q_rows + _plane_coords(3, W)[None, :], mask=rmask[:, None], other=0.0)
        q4 = tl.load(q_rows + _plane_coords(4, W)[None, :], mask=rmask[:, None], other=0.0)
        q5 = tl.load(q_rows + _plane_coords(5, W)[None, :], mask=rmask[:, None], other=0.0)
        q6 = tl.load(q_rows + _plane_coords(6, W)[None, :], mask=rmask[:, None], other=0.0)
        q7 = tl.load(q_rows + _plane_coords(7, W)[None, :], mask=rmask[:, None], other=0.0)
    else:
        q0 = tl.load(q_rows + d[None, :], mask=rmask[:, None], other=0.0)

    for t0 in range(start, end, BLOCK_N):
        # the tile loaded now: the next one (PREFETCH) or this one
        if PREFETCH:
            t_load, blk_load = t0 + BLOCK_N, blk_next
            blk_after = _block_ids(bt_row, t0 + 2 * BLOCK_N, end, PAGED, PAGE, BLOCK_N)
        else:
            t_load, blk_load = t0, _block_ids(bt_row, t0, end, PAGED, PAGE, BLOCK_N)
        kw_l, kw2_l, vw_l, vw2_l, kn_l, vn_l = _load_tile(
            k_head,
            kn_head,
            v_head,
            vn_head,
            blk_load,
            t_load,
            end,
            stride_kp,
            stride_kt,
            stride_knp,
            stride_knt,
            stride_vp,
            stride_vt,
            stride_vnp,
            stride_vnt,
            K_BITS,
            V_BITS,
            D,
            PAGED,
            PAGE,
            BLOCK_N,
            K_HALVES,
            V_PLANES,
        )
        if not PREFETCH:
            kw, kw2, vw, vw2, kn, vn = kw_l, kw2_l, vw_l, vw2_l, kn_l, vn_l
        valid = t0 + tl.arange(0, BLOCK_N) < end
        if K_FRAGMENTS and K_BYTES:
            # the scores transposed, the K words looked up one at a time into byte planes
            w_lo, w_hi = _word_halves(kw, BLOCK_N, W)
            k0, k1, k2, k3 = _byte_half(w_lo, TAB, c0, c1, c2, c3, c4, c5, c6, c7, BLOCK_N, W, K_MODE)
            st = dot(k0, q0)
            st = dot(k1, q1, st)
            st = dot(k2, q2, st)
            st = dot(k3, q3, st)
            k4, k5, k6, k7 = _byte_half(w_hi, TAB, c0, c1, c2, c3, c4, c5, c6, c7, BLOCK_N, W, K_MODE)
            st = dot(k4, q4, st)
            st = dot(k5, q5, st)
            st = dot(k6, q6, st)
            st = dot(k7, q7, st)
        elif K_FRAGMENTS:
            # the scores transposed: the K planes are the A operand as loaded and looked up
            k0, k1, k2, k3, k4, k5, k6, k7 = _fragment_planes(
                kw, TAB, c0, c1, c2, c3, c4, c5, c6, c7, BLOCK_N, W, K_MODE
            )
            st = dot(k0, q0)
            st = dot(k2, q2, st)
            st = dot(k4, q4, st)
            st = dot(k6, q6, st)
            st = dot(k1, q1, st)
            st = dot(k3, q3, st)
            st = dot(k5, q5, st)
            st = dot(k7, q7, st)
        if K_FRAGMENTS:
            m_new, alpha, l_i, pt = _online_softmax(st, kn, vn, valid, m_i, l_i, 0)
            pv = _transposed_operand(pt.to(tl.float16), BLOCK_N, G_PAD)
        elif K_PLANES:
            k0, k1, k2, k3, k4, k5, k6, k7 = _tile_planes(
                kw, kw2, TAB, c0, c1, c2, c3, c4, c5, c6, c7, K_BITS, BLOCK_N, W, K_MODE
            )
            s = dot(q0, tl.trans(k0))
            s = dot(q2, tl.trans(k2), s)
            s = dot(q4, tl.trans(k4), s)
            s = dot(q6, tl.trans(k6), s)
            s = dot(q1, tl.trans(k1), s)
            s = dot(q3, tl.trans(k3), s)
            s = dot(q5, tl.trans(k5), s)
            s = dot(q7, tl.trans(k7), s)
        else:
            k = _tile_values(kw, TAB, c0, c1, c2, c3, c4, c5, c6, c7, K_BITS, D, BLOCK_N, K_MODE, PAIR)
            s = dot(q0, tl.trans(k))
        if not K_FRAGMENTS:  # p is the A operand of P @ V as the score dot left it
            m_new, alpha, l_i, p = _online_softmax(s, kn, vn, valid, m_i, l_i, 1)
            pv = p.to(tl.float16)
        # the accumulators are rescaled only when a query head's maximum grew (in a long
        # context, rarely after the first tiles)
        if tl.max(m_new - m_i, 0) > 0:
            a0 = a0 * alpha[:, None]
            if V_PLANES:
                a1 = a1 * alpha[:, None]
                if NACC >= 4:
                    a2 = a2 * alpha[:, None]
                    a3 = a3 * alpha[:, None]
                if NACC == 8:
                    a4 = a4 * alpha[:, None]
                    a5 = a5 * alpha[:, None]
                    a6 = a6 * alpha[:, None]
                    a7 = a7 * alpha[:, None]
        if V_PLANES:
            if VB:  # plane 4h + m: byte plane m of word half h (the same dots as nibble planes)
                v0, v1, v2, v3 = _word_byte_planes(
                    vw, TAB + 128, e0, e1, e2, e3, e4, e5, e6, e7, BLOCK_N, W, V_MODE
                )
                v4, v5, v6, v7 = _word_byte_planes(
                    vw2, TAB + 128, e0, e1, e2, e3, e4, e5, e6, e7, BLOCK_N, W, V_MODE
                )
            else:
                v0, v1, v2, v3, v4, v5, v6, v7 = _tile_planes(
                    vw, vw2, TAB + 128, e0, e1, e2, e3, e4, e5, e6, e7, V_BITS, BLOCK_N, W, V_MODE
                )
            if REPL == 1:
                a0 = dot(pv, v0, a0)
                a2 = dot(pv, v2, a2)
                a4 = dot(pv, v4, a4)
                a6 = dot(pv, v6, a6)
                a1 = dot(pv, v1, a1)
                a3 = dot(pv, v3, a3)
                a5 = dot(pv, v5, a5)
                a7 = dot(pv, v7, a7)
            elif REPL == 2:  # copy 0: planes 0-3, copy 1: planes 4-7
                p0 = _copy_rows(pv, copy, 0, MASK_PRODUCT)
                p1 = _copy_rows(pv, copy, 1, MASK_PRODUCT)
                a0 = dot(p0, v0, a0)
                a2 = dot(p0, v2, a2)
                a1 = dot(p0, v1, a1)
                a3 = dot(p0, v3, a3)
                a0 = dot(p1, v4, a0)
                a2 = dot(p1, v6, a2)
                a1 = dot(p1, v5, a1)
                a3 = dot(p1, v7, a3)
            else:  # REPL 4: copy c takes planes 2c, 2c + 1
                p0 = _copy_rows(pv, copy, 0, MASK_PRODUCT)
                p1 = _copy_rows(pv, copy, 1, MASK_PRODUCT)
                p2 = _copy_rows(pv, copy, 2, MASK_PRODUCT)
                p3 = _copy_rows(pv, copy, 3, MASK_PRODUCT)
                a0 = dot(p0, v0, a0)
                a1 = dot(p0, v1, a1)
                a0 = dot(p1, v2, a0)
                a1 = dot(p1, v3, a1)
                a0 = dot(p2, v4, a0)
                a1 = dot(p2, v5, a1)
                a0 = dot(p3, v6, a0)
                a1 = dot(p3, v7, a1)
        else:
            v = _tile_values(vw, TAB + 128, e0, e1, e2, e3, e4, e5, e6, e7, V_BITS, D, BLOCK_N, V_MODE, PAIR)
            a0 = dot(pv, v, a0)
        m_i = m_new
        if PREFETCH:
            kw, kw2, vw, vw2, kn, vn = kw_l, kw2_l, vw_l, vw2_l, kn_l, vn_l
            blk_next = blk_after

    if PDL:  # the reduce kernel may start (it waits for this grid before reading ACC/ML)
        if not EARLY:
            gdc_launch_dependents()
    part = ((b * H_KV + h) * num_splits + split) * G + head
    tl.store(ML + 2 * part, m_i, mask=gmask)
    tl.store(ML + 2 * part + 1, l_i, mask=gmask)
    rows = ACC + part[:, None] * D
    if V_PLANES:  # accumulator j of copy c (rows r < G * REPL): plane c * NACC + j
        first = (copy * NACC)[:, None]
        keep = rmask[:, None]
        tl.store(rows + _v_plane_coords(first, W, VB), a0, mask=keep)
        tl.store(rows + _v_plane_coords(first + 1, W, VB), a1, mask=keep)
        if NACC >= 4:
            tl.store(rows + _v_plane_coords(first + 2, W, VB), a2, mask=keep)
            tl.store(rows + _v_plane_coords(first + 3, W, VB), a3, mask=keep)
        if NACC == 8:
            tl.store(rows + _v_plane_coords(first + 4, W, VB), a4, mask=keep)
            tl.store(rows + _v_plane_coords(first + 5, W, VB), a5, mask=keep)
            tl.store(rows + _v_plane_coords(first + 6, W, VB), a6, mask=keep)
            tl.store(rows + _v_plane_coords(first + 7, W, VB), a7, mask=keep)
    else:
        tl.store(rows + d[None, :], a0, mask=gmask[:, None])


@triton.jit
def _reduce_kernel(
    ACC,
    ML,
    ROTP,
    OUT,
    stride_ob,
    stride_oh,
    num_splits,
    G: tl.constexpr,
    G_PAD: tl.constexpr,
    D: tl.constexpr,
    ROWS: tl.constexpr,
    PDL: tl.constexpr = False,
):
    """Program (kv head, sequence): log-sum-exp merge of the splits, then ``out = acc/l @ Pi``.
    Empty splits carry ``max = -inf, sum = 0``; an empty sequence gives zeros.

    The ``num_splits * G`` partial rows of a (sequence, kv head) are contiguous (split-major,
    head-minor); they are merged ``ROWS`` at a time with a running maximum per query head,
    and the rows of each head are summed by a 0/1 selection matrix on the tensor cores (the
    weighted rows as two bf16 pieces), so a long split list costs a few wide steps, not one
    dependent step per split. The rotation back takes ``Pi`` as two bf16 pieces (``ROTP``,
    as in :func:`_prep_kernel`). ``PDL``: the rotation (D <= 128) is loaded while the split
    kernel finishes, then the program waits for it."""
    h = tl.program_id(0)
    b = tl.program_id(1)
    H_KV = tl.num_programs(0)
    g = tl.arange(0, G_PAD)
    d = tl.arange(0, D)
    BLOCK_J: tl.constexpr = D if D <= 128 else 64  # as in _prep_kernel
    if BLOCK_J == D:
        rot_ptrs = ROTP + d[:, None] * D + d[None, :]
        rot_hi, rot_lo = tl.load(rot_ptrs), tl.load(rot_ptrs + D * D)
    if PDL:
        gdc_wait()
    r = tl.arange(0, ROWS)
    base = (b * H_KV + h) * num_splits * G
    n_rows = num_splits * G
    m = tl.full([G_PAD], float("-inf"), tl.float32)
    total = tl.zeros([G_PAD], tl.float32)
    acc = tl.zeros([G_PAD, D], tl.float32)
    for r0 in range(0, n_rows, ROWS):
        rows = r0 + r
        live = rows < n_rows
        m_r = tl.load(ML + 2 * (base + rows), mask=live, other=float("-inf"))
        l_r = tl.load(ML + 2 * (base + rows) + 1, mask=live, other=0.0)
        a = tl.load(ACC + (base + rows)[:, None] * D + d[None, :], mask=live[:, None], other=0.0)
        sel = (rows % G)[None, :] == g[:, None]  # [G_PAD, ROWS]: row -> its query head
        m_new = tl.maximum(m, tl.max(tl.where(sel, m_r[None, :], float("-inf")), 1))
        m_ref = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m - m_ref)  # 0 while nothing was seen
        w = tl.exp2(m_r - tl.max(tl.where(sel, m_ref[:, None], float("-inf")), 0))  # 0 where empty
        total = total * alpha + tl.sum(tl.where(sel, (l_r * w)[None, :], 0.0), 1)
        aw_hi, aw_lo = _bf16_halves(a * w[:, None])
        sel16 = sel.to(tl.float32).to(tl.bfloat16)  # 0/1: exact
        acc = dot(sel16, aw_hi, dot(sel16, aw_lo, acc * alpha[:, None]))
        m = m_new
    out_hi, out_lo = _bf16_halves(acc / tl.where(total > 0, total, 1.0)[:, None])
    for j0 in tl.static_range(0, D, BLOCK_J):
        j = j0 + tl.arange(0, BLOCK_J)
        if BLOCK_J != D:
            rot_ptrs = ROTP + d[:, None] * D + j[None, :]
            rot_hi, rot_lo = tl.load(rot_ptrs), tl.load(rot_ptrs + D * D)
        out = _dot_halves(out_hi, out_lo, rot_hi, rot_lo, True)
        ptrs = OUT + b * stride_ob + (h * G + g)[:, None] * stride_oh + j[None, :]
        tl.store(ptrs, out.to(OUT.dtype.element_ty), mask=(g < G)[:, None])


# ----------------------------------------------------------------------------- launchers


@cache
def _has_pdl(device: torch.device) -> bool:
    """Programmatic dependent launch (``griddepcontrol``): compute capability 9.0 and later."""
    return device.type == "cuda" and not INTERPRET and torch.cuda.get_device_capability(device)[0] >= 9


@cache
def _num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4


def _plane_dots(bits: int, d: int, num_warps: int) -> bool:
    """Whether a ``bits``-bit tile of head dim ``d`` can run as plane dots: ``d = 128`` (the one
    timed; at 64 a plane's ``d/8`` columns do not fill the tensor cores' 16-wide reduction; 256
    was neither run on a GPU nor timed with them) and a one-warp program (with more, each of
    the 8 small ``[G_PAD, d/8]`` outputs is spread over warps that all need the whole tile:
    H200, B=32, N=32K, 4-warp 128-token tiles took 1479 µs with plane dots against 987 µs
    without). 4 bits only since session 19: with the aligned paged layout 3-bit plane tiles
    ran slower than coordinate order (H200, K3/V3, B=8 N=32K 297.8 against 263.9 µs, N=16K
    162.9 against 143.7; B=32 N=32K 1072 against 1061; run 6)."""
    return bits == 4 and d == 128 and num_warps == 1


def _row_copies(g: int, g_pad: int, v_planes: bool, enabled: bool = True) -> int:
    """Copies of each query head among the split kernel's ``g_pad`` dot rows (its ``REPL``):
    4 or 2 when that many fit and ``P @ V`` runs as plane dots, else 1."""
    if not (enabled and v_planes):
        return 1
    return 4 if 4 * g <= g_pad else 2 if 2 * g <= g_pad else 1


def _symmetric_lookup(bits: int, d: int, centroids: torch.Tensor | None = None) -> bool:
    """Whether ``bits``-bit indices of head dim ``d`` (with codebook ``centroids``, if given: it
    must be symmetric) can take the symmetric register lookup: 4 bits, and 3 bits from
    ``d = 128`` (at ``d = 64`` the 3-bit path gave wrong outputs on an H200 in session 16 and
    keeps the L1 table)."""
    if not (bits == 4 or (bits == 3 and d >= 128)):
        return False
    return centroids is None or is_symmetric(centroids)


def split_plan(
    pairs: int,
    max_len: int,
    config: DecodeConfig,
    device: torch.device,
    num_splits: int | None = None,
    wave_programs: int | None = None,
) -> tuple[int, int]:
    """``(num_splits, chunk)``: the context ``[0, max_len)`` is cut into ``num_splits`` chunks of
    ``chunk`` tokens (a multiple of ``block_n``); ``pairs`` = sequences × KV heads. Automatic
    (``num_splits=None``): about ``ctas_per_sm`` programs per SM, each split holding at least
    ``min_split_tokens`` tokens; with ``wave_programs`` (programs one SM holds at once) and
    ``config.wave_cap``, cut to whole waves of programs (the largest count that fills no more
    than the whole waves the automatic plan fills, at least one) where each split keeps at
    least :data:`WAVE_CAP_MIN_TOKENS` tokens. Given: at least one tile per split.

    Why: a grid of 1.3 waves runs its last third with the SMs two-thirds idle. Session 28,
    one-warp 32-token tiles, µs, automatic plan → one wave: H100 (run 1) B=8 N=64K 372.7 →
    340.5 (33 → 24 splits), N=32K 183.1 → 180.6, N=16K 102.1 → 101.1; B=32 N=32K 706.7 →
    683.5, N=4K 104.6 → 99.6; H200 (run 2) B=8 N=64K 366.6 → 340.5, B=32 N=16K/32K/64K
    353.4/687.3/1427.4 → 338.9/651.7/1330.7. From 2.67 waves one wave lost (B=16 N=32K, H200
    run 2: 334.4 against 369.8 with 12 splits; 335.6 with 24, two whole waves; H100 338.5,
    345.4, 342.3), so the cut keeps the whole waves the plan has."""
    blocks = max(1, -(-max_len // config.block_n))
    if num_splits is None:
        num_splits = -(-config.ctas_per_sm * _num_sms(device) // pairs)
        num_splits = min(num_splits, max(1, max_len // config.min_split_tokens))
        if wave_programs and config.wave_cap:
            slots = wave_programs * _num_sms(device)
            whole = max(1, pairs * num_splits // slots) * slots // pairs
            if 0 < whole < num_splits and max_len >= whole * WAVE_CAP_MIN_TOKENS:
                num_splits = whole
    elif isinstance(num_splits, bool) or not isinstance(num_splits, int) or num_splits < 1:
        raise ValueError(f"num_splits: expected an int >= 1 or None, got {num_splits!r}")
    num_splits = min(num_splits, blocks)
    chunk = -(-blocks // num_splits) * config.block_n
    return -(-max(max_len, 1) // chunk), chunk


def wave_programs(
    config: DecodeConfig, k_bits: int, v_bits: int, d: int, paged: bool, group: int = 4
) -> int | None:
    """Programs per SM of one wave (:data:`WAVE_PROGRAMS`) for the split kernels whose registers
    were counted: one-warp 32-token K4/V4 tiles at ``D = 128``, 4 query heads per KV head (the
    row copies, and so the registers, depend on the group), with the default switches."""
    if (k_bits, v_bits, d, group) != (4, 4, 128, 4):
        return None
    if any(getattr(config, f) != getattr(DEFAULT_CONFIG, f) for f in _REGISTER_FIELDS):
        return None
    return WAVE_PROGRAMS["paged" if paged else "contiguous"]


def _bf16_pieces(rotation: torch.Tensor) -> torch.Tensor:
    hi = rotation.to(torch.bfloat16)
    return torch.stack([hi, (rotation - hi.float()).to(torch.bfloat16)]).contiguous()


def rotation_pieces(rotation: torch.Tensor) -> torch.Tensor:
    """``Pi`` (fp32 ``[D, D]``) as two bf16 pieces, contiguous ``[2, D, D]`` with
    ``Pi ≈ pieces[0] + pieces[1]`` (~16 significant bits), computed once per rotation tensor
    and in-place version (the prep and reduce kernels' operands)."""
    return per_codebook(rotation, "bf16 pieces", _bf16_pieces)


def decode_tables(k_centroids: torch.Tensor, v_centroids: torch.Tensor, k_bits: int, v_bits: int):
    """The split kernel's codebook tables (``_TABLES`` fp16, see :func:`_tables_kernel`) for
    the ``k_bits``/``v_bits`` codebooks ``k_centroids``/``v_centroids`` (fp32, on the device),
    built once per pair of codebook tensors and in-place versions and then remembered (while
    a CUDA graph is captured a new pair is built inside the graph, as any kernel)."""

    def build(codebooks):
        tab = torch.zeros(_TABLES, dtype=torch.float16, device=k_centroids.device)
        k_code, v_code = (code_order(c).contiguous() for c in codebooks)  # the packed codes index them
        _tables_kernel[(1,)](k_code, v_code, tab, NK=2**k_bits, NV=2**v_bits, num_warps=1)
        return tab

    return per_codebook((k_centroids, v_centroids), ("decode tables", k_bits, v_bits), build)


def _check_query(q: object, head_dim: int | None = None) -> torch.Tensor:
    """``q`` ``[B, H_q, D]`` or ``[B, H_q, 1, D]`` → the 3-D view."""
    check_tensor("q", q, ndim=(3, 4), dtypes=FLOAT_DTYPES)
    if q.dim() == 4:
        if q.shape[2] != 1:
            raise ValueError(
                f"q: decode takes one query token, expected [B, H_q, 1, D], got {tuple(q.shape)}"
            )
        q = q[:, :, 0]
    if q.stride(-1) != 1:
        raise ValueError("q: expected a unit stride on the last dimension")
    d = q.shape[-1]
    if d not in DECODE_HEAD_DIMS:
        raise ValueError(f"q: head_dim must be one of {DECODE_HEAD_DIMS} for the decode kernels, got {d}")
    if head_dim is not None and d != head_dim:
        raise ValueError(f"q: expected head_dim {head_dim} (the layout's), got shape {tuple(q.shape)}")
    return q


def _check_codebooks(rotation, k_centroids, v_centroids, d: int, k_bits: int, v_bits: int, device) -> None:
    check_tensor("rotation", rotation, ndim=2, dtypes=(torch.float32,), device=device)
    if tuple(rotation.shape) != (d, d):
        raise ValueError(f"rotation: expected an fp32 [{d}, {d}] matrix, got shape {tuple(rotation.shape)}")
    for name, c, bits in (("k_centroids", k_centroids, k_bits), ("v_centroids", v_centroids, v_bits)):
        check_tensor(name, c, ndim=1, dtypes=(torch.float32,), device=device)
        if c.numel() != 2**bits or not c.is_contiguous():
            raise ValueError(
                f"{name}: expected {2**bits} contiguous centroids for {bits}-bit indices, got {c.numel()}"
            )


def _scale(sm_scale: float | None, d: int) -> float:
    if sm_scale is None:
        return 1.0 / math.sqrt(d)
    if not isinstance(sm_scale, (int, float)) or isinstance(sm_scale, bool) or not sm_scale > 0:
        raise ValueError(f"sm_scale: expected a positive float or None, got {sm_scale!r}")
    return float(sm_scale)


def _launch(
    q3,
    h_kv,
    k_bits,
    v_bits,
    tensors,
    strides,
    rotation,
    k_centroids,
    v_centroids,
    sm_scale,
    *,
    lens,
    seq_len_all,
    block_table,
    page,
    max_len,
    num_splits,
    config,
) -> torch.Tensor:
    """Run prep → split → reduce; ``tensors`` = (K, KN, V, VN) base views, ``strides`` the 12
    split-kernel strides. Returns ``[B, H_q, D]`` in ``q3``'s dtype."""
    b, h_q, d = q3.shape
    if h_q % h_kv:
        raise ValueError(f"q: {h_q} query heads is not a multiple of {h_kv} KV heads")
    g = h_q // h_kv
    g_pad = max(16, triton.next_power_of_2(g))
    dev = q3.device
    # the codebooks' symmetry is looked at (once per tensor, memoized) only where it may be used
    want_sym = config is None or config.symmetric_lookup
    k_sym = want_sym and _symmetric_lookup(k_bits, d, k_centroids)
    v_sym = want_sym and _symmetric_lookup(v_bits, d, v_centroids)
    if config is None:
        register_lookup = (k_bits != 3 or k_sym) and (v_bits != 3 or v_sym)
        config = default_config(b * h_kv, max_len, dev, (k_bits, v_bits), register_lookup)
    paged = block_table is not None
    # only an automatic plan is cut to whole waves
    auto = num_splits is None and dev.type == "cuda"
    wave = wave_programs(config, k_bits, v_bits, d, paged, g) if auto else None
    splits, chunk = split_plan(b * h_kv, max_len, config, dev, num_splits, wave)
    planes = config.planes and chunk >= config.planes_min_chunk
    v_planes = planes and _plane_dots(v_bits, d, config.num_warps)
    pdl = config.pdl and _has_pdl(dev)
    launch = {"launch_pdl": True} if pdl else {}

    tab = decode_tables(k_centroids, v_centroids, k_bits, v_bits)
    q16 = torch.empty(b * h_q * d, dtype=torch.float16, device=dev)
    n_part = b * h_kv * splits * g
    work = torch.empty(n_part * (d + 2), dtype=torch.float32, device=dev)
    acc, ml = work[: n_part * d], work[n_part * d :]
    out = torch.empty(b, h_q, d, dtype=q3.dtype, device=dev)
    scale = _scale(sm_scale, d) * LOG2E

    rot_pieces = rotation_pieces(rotation)
    _prep_kernel[(h_kv, b)](
        q3,
        q3.stride(0),
        q3.stride(1),
        rot_pieces,
        q16,
        scale,
        G=g,
        G_PAD=g_pad,
        D=d,
        PDL=pdl,
        EARLY=config.early_split,
        num_warps=8 if d >= 128 else 4,
        **launch,
    )
    _split_kernel[(splits, h_kv, b)](
        q16,
        *tensors,
        tab,
        block_table if paged else q16,
        lens if lens is not None else q16,
        acc,
        ml,
        *strides,
        block_table.stride(0) if paged else 0,
        seq_len_all,
        chunk,
        splits,
        G=g,
        G_PAD=g_pad,
        D=d,
        K_BITS=k_bits,
        V_BITS=v_bits,
        PAGED=paged,
        PAGE=page,
        HAS_LENS=lens is not None,
        BLOCK_N=config.block_n,
        PREFETCH=config.prefetch,
        K_SYM=config.symmetric_lookup and k_sym,
        V_SYM=config.symmetric_lookup and v_sym,
        PAIR=pair_mode(config.pair_lookup),
        K_PLANES=planes and _plane_dots(k_bits, d, config.num_warps),
        V_PLANES=v_planes,
        PDL=pdl,
        REPL=_row_copies(g, g_pad, v_planes, config.row_copies),
        K_FRAGMENTS=config.k_registers and planes and _plane_dots(k_bits, d, config.num_warps),
        K_BYTES=config.k_byte_planes,
        V_BYTES=config.v_byte_planes and v_planes and v_bits == 4,
        MASK_PRODUCT=config.product_masks,
        EARLY=config.early_reduce,
        num_warps=config.num_warps,
        num_stages=config.num_stages,
        **launch,
        **({} if config.maxnreg is None or INTERPRET else {"maxnreg": config.maxnreg}),
    )
    # from 64 (sequence, KV head) programs on, 32 rows of 4 warps per step at d=128 (H200,
    # session 15, the reduce alone in CUDA graphs: 7.7 / 11.3 / 12.6 / 9.1 µs at B=8 with 16
    # and 33 splits, B=32 with 17 and 2, against 8.8 / 12.8 / 16.8 / 16.5 µs with 128 rows of
    # 8 warps); fewer programs with more than 64 rows each (B=1 from N=4K) keep 128 rows of 8
    # warps (B=1 calls took 1-2 µs longer with the small steps: N=4K 20.1 against 19.3 µs, N=32K
    # 54.7 against 52.9 µs; at N=1K, 32 rows, 15.9 against 17.7 µs)
    few = b * h_kv < 64 and splits * g > 64
    rows = config.reduce_rows or max(16, (16384 if few else 4096) // d)
    reduce_warps = config.reduce_warps or (8 if few and d >= 128 else 4)
    _reduce_kernel[(h_kv, b)](
        acc,
        ml,
        rot_pieces,
        out,
        out.stride(0),
        out.stride(1),
        splits,
        G=g,
        G_PAD=g_pad,
        D=d,
        ROWS=rows,
        PDL=pdl,
        num_warps=reduce_warps,
        **launch,
    )
    return out


def tq_paged_decode(
    q: torch.Tensor,
    pool: torch.Tensor,
    layout: PagedKVLayout,
    block_table: torch.Tensor,
    seq_lens: torch.Tensor,
    rotation: torch.Tensor,
    k_centroids: torch.Tensor,
    v_centroids: torch.Tensor,
    sm_scale: float | None = None,
    *,
    num_splits: int | None = None,
    max_seq_len: int | None = None,
    validate: bool = True,
    config: DecodeConfig | None = None,
) -> torch.Tensor:
    """Decode attention over the paged TurboQuant pool.

    Args:
        q: ``[B, H_q, D]`` fp16/bf16/fp32, one query token per sequence (original space).
        pool: uint8 ``[num_blocks, block_size, layout.bytes_per_token]``.
        layout: the pool's :class:`~turboquant.paged.PagedKVLayout` (``H_q`` a multiple of
            ``layout.num_kv_heads``, GQA: query head ``i`` reads KV head ``i // (H_q/H_kv)``).
        block_table: int32 ``[B, max_blocks]``; seq_lens: int32 ``[B]`` (ragged, 0 allowed).
        rotation: fp32 ``[D, D]`` ``Pi``; k_centroids/v_centroids: fp32 ``[2**bits]``.
        sm_scale: softmax scale, default ``1/sqrt(D)``.
        num_splits: context splits per (sequence, KV head); default from the SM count.
        max_seq_len: an upper bound of ``seq_lens`` known on the host, to size the splits
            (default: the block table's capacity ``max_blocks * block_size``).
        validate: check block ids and lengths against the pool (reads them: a device sync;
            hot paths under CUDA graphs pass ``False``).
        config: launch parameters (:class:`DecodeConfig`).

    Returns:
        ``[B, H_q, D]`` in ``q``'s dtype.
    """
    check_pool(pool, layout)
    q3 = _check_query(q, layout.head_dim)
    dev = pool.device
    if q3.device != dev:
        raise ValueError(f"q: expected a tensor on {dev} (the pool's), got {q3.device}")
    b = q3.shape[0]
    check_tensor("block_table", block_table, ndim=2, dtypes=(torch.int32,), device=dev)
    check_tensor("seq_lens", seq_lens, ndim=1, dtypes=(torch.int32,), device=dev)
    if block_table.shape[0] != b or seq_lens.shape[0] != b:
        raise ValueError(
            f"block_table/seq_lens: expected {b} rows (q's batch), got shapes "
            f"{tuple(block_table.shape)} and {tuple(seq_lens.shape)}"
        )
    if block_table.stride(1) != 1:
        raise ValueError("block_table: expected a unit stride on the last dimension")
    _check_codebooks(rotation, k_centroids, v_centroids, layout.head_dim, layout.k_bits, layout.v_bits, dev)
    num_blocks, block_size = pool.shape[0], pool.shape[1]
    capacity = block_table.shape[1] * block_size
    if max_seq_len is None:
        max_seq_len = capacity
    elif (
        isinstance(max_seq_len, bool) or not isinstance(max_seq_len, int) or not 0 <= max_seq_len <= capacity
    ):
        raise ValueError(
            f"max_seq_len: expected an int in [0, max_blocks * block_size = {capacity}], got {max_seq_len!r}"
        )
    if validate:
        check_block_tables(block_table, seq_lens, num_blocks, block_size)
        if b and int(seq_lens.max()) > max_seq_len:
            raise ValueError(f"seq_lens: max {int(seq_lens.max())} exceeds max_seq_len={max_seq_len}")

    # the pool's own views (the layout lives in turboquant.paged): K indices, K norms, V's;
    # each [num_blocks, block_size, H, ...]: its page, token and head strides
    tensors = (*_record_views(pool, layout, "k"), *_record_views(pool, layout, "v"))
    strides = tuple(s for t in tensors for s in t.stride()[:3])
    return _launch(
        q3,
        layout.num_kv_heads,
        layout.k_bits,
        layout.v_bits,
        tensors,
        strides,
        rotation,
        k_centroids,
        v_centroids,
        sm_scale,
        lens=seq_lens,
        seq_len_all=0,
        block_table=block_table,
        page=block_size,
        max_len=max_seq_len,
        num_splits=num_splits,
        config=config,
    )


def _check_compressed(name: str, packed, norms, shape4: tuple | None, device) -> None:
    check_tensor(f"{name}_packed", packed, ndim=4, dtypes=(torch.uint8,), device=device)
    check_tensor(f"{name}_norms", norms, ndim=3, dtypes=(torch.float32,), device=device)
    if shape4 is not None and tuple(packed.shape[:3]) != shape4[:3]:
        raise ValueError(
            f"{name}_packed: expected leading shape {shape4[:3]} (k_packed's), got {tuple(packed.shape)}"
        )
    if tuple(norms.shape) != tuple(packed.shape[:3]):
        raise ValueError(
            f"{name}_norms: expected shape {tuple(packed.shape[:3])} ({name}_packed's without its "
            f"last dim), got {tuple(norms.shape)}"
        )
    if packed.stride(3) != 1 or any(s % 4 for s in packed.stride()[:3]) or packed.data_ptr() % 4:
        raise ValueError(
            f"{name}_packed: expected rows that start 4-byte aligned with contiguous bytes "
            f"(strides {packed.stride()})"
        )


def _lengths(seq_len, b: int, s: int, device, validate: bool):
    """``seq_len`` (None, int, or int32 ``[B]``) → (lens tensor or None, common length, bound)."""
    if seq_len is None:
        return None, s, s
    if isinstance(seq_len, int) and not isinstance(seq_len, bool):
        if not 0 <= seq_len <= s:
            raise ValueError(f"seq_len: expected 0 <= seq_len <= {s} (the cache length), got {seq_len}")
        return None, seq_len, seq_len
    check_tensor("seq_len", seq_len, ndim=1, dtypes=(torch.int32,), device=device)
    if seq_len.shape[0] != b:
        raise ValueError(f"seq_len: expected {b} lengths (one per sequence), got {seq_len.shape[0]}")
    if validate and b and not (0 <= int(seq_len.min()) and int(seq_len.max()) <= s):
        raise ValueError(f"seq_len: expected lengths in [0, {s}] (the cache length), got {seq_len.tolist()}")
    return seq_len, 0, s


def tq_decode(
    q: torch.Tensor,
    k_packed: torch.Tensor,
    k_norms: torch.Tensor,
    v_packed: torch.Tensor,
    v_norms: torch.Tensor,
    rotation: torch.Tensor,
    k_centroids: torch.Tensor,
    v_centroids: torch.Tensor,
    sm_scale: float | None = None,
    seq_len: int | torch.Tensor | None = None,
    *,
    num_splits: int | None = None,
    validate: bool = True,
    config: DecodeConfig | None = None,
) -> torch.Tensor:
    """Decode attention over contiguous compressed K/V (the Hugging Face compressed cache).

    Args:
        q: ``[B, H_q, 1, D]`` or ``[B, H_q, D]`` fp16/bf16/fp32.
        k_packed, v_packed: uint8 ``[B, H_kv, S, D*bits/8]`` (any strides with contiguous,
            4-byte aligned rows; bits 2, 3, 4 inferred from the width).
        k_norms, v_norms: fp32 ``[B, H_kv, S]``.
        rotation: fp32 ``[D, D]``; k_centroids/v_centroids: fp32 ``[2**bits]``.
        sm_scale: default ``1/sqrt(D)``.
        seq_len: valid tokens: ``None`` (all ``S``), an int, or int32 ``[B]`` (ragged).
        num_splits, config: as in :func:`tq_paged_decode`; validate: check a tensor
            ``seq_len`` against ``S`` (a device sync).

    Returns:
        the shape of ``q``, in ``q``'s dtype.
    """
    q3 = _check_query(q)
    dev = q3.device
    b, h_q, d = q3.shape
    _check_compressed("k", k_packed, k_norms, None, dev)
    _check_compressed("v", v_packed, v_norms, tuple(k_packed.shape), dev)
    if k_packed.shape[0] != b:
        raise ValueError(f"k_packed: expected batch {b} (q's), got shape {tuple(k_packed.shape)}")
    k_bits = infer_bits(k_packed, d, k_centroids, "k_packed")
    v_bits = infer_bits(v_packed, d, v_centroids, "v_packed")
    _check_codebooks(rotation, k_centroids, v_centroids, d, k_bits, v_bits, dev)
    h_kv, s = k_packed.shape[1], k_packed.shape[2]
    lens, common, bound = _lengths(seq_len, b, s, dev, validate)
    strides = (
        k_packed.stride(0),
        k_packed.stride(2),
        k_packed.stride(1),
        k_norms.stride(0),
        k_norms.stride(2),
        k_norms.stride(1),
        v_packed.stride(0),
        v_packed.stride(2),
        v_packed.stride(1),
        v_norms.stride(0),
        v_norms.stride(2),
        v_norms.stride(1),
    )
    out = _launch(
        q3,
        h_kv,
        k_bits,
        v_bits,
        (k_packed, k_norms, v_packed, v_norms),
        strides,
        rotation,
        k_centroids,
        v_centroids,
        sm_scale,
        lens=lens,
        seq_len_all=common,
        block_table=None,
        page=1,
        max_len=bound,
        num_splits=num_splits,
        config=config,
    )
    return out.unsqueeze(2) if q.dim() == 4 else out


# ----------------------------------------------------------------------------- references


def _dequantize_rotated(packed, norms, centroids, bits: int, d: int) -> torch.Tensor:
    """``norms * c[idx]``, fp32 ``[..., d]`` (an empty cache gives an empty tensor)."""
    if packed.numel() == 0:
        return torch.zeros(*packed.shape[:-1], d, device=packed.device)
    return centroids[unpack_indices(packed, bits, d).long()] * norms.unsqueeze(-1)


def tq_decode_reference(
    q: torch.Tensor,
    k_packed: torch.Tensor,
    k_norms: torch.Tensor,
    v_packed: torch.Tensor,
    v_norms: torch.Tensor,
    rotation: torch.Tensor,
    k_centroids: torch.Tensor,
    v_centroids: torch.Tensor,
    sm_scale: float | None = None,
    seq_len: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """Plain-torch :func:`tq_decode`: dequantize in the rotated space, fp32 softmax attention
    with the rotated query, rotate the output back. Same arguments and result."""
    q3 = _check_query(q)
    b, h_q, d = q3.shape
    k_bits = infer_bits(k_packed, d, k_centroids, "k_packed")
    v_bits = infer_bits(v_packed, d, v_centroids, "v_packed")
    h_kv, s = k_packed.shape[1], k_packed.shape[2]
    k = _dequantize_rotated(k_packed, k_norms, k_centroids, k_bits, d)
    v = _dequantize_rotated(v_packed, v_norms, v_centroids, v_bits, d)
    k = k.repeat_interleave(h_q // h_kv, dim=1)  # [B, H_q, S, D]
    v = v.repeat_interleave(h_q // h_kv, dim=1)
    q_rot = q3.float() @ rotation.T
    scores = torch.einsum("bhd,bhsd->bhs", q_rot, k) * _scale(sm_scale, d)
    if seq_len is None:
        lens = torch.full((b,), s, device=q3.device)
    elif isinstance(seq_len, int):
        lens = torch.full((b,), seq_len, device=q3.device)
    else:
        lens = seq_len.to(q3.device)
    keep = torch.arange(s, device=q3.device)[None, :] < lens[:, None].long()  # [B, S]
    scores = scores.masked_fill(~keep[:, None, :], float("-inf"))
    p = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # empty sequence → zero output
    out = torch.einsum("bhs,bhsd->bhd", p, v) @ rotation
    out = out.to(q3.dtype)
    return out.unsqueeze(2) if q.dim() == 4 else out


def tq_paged_decode_reference(
    q: torch.Tensor,
    pool: torch.Tensor,
    layout: PagedKVLayout,
    block_table: torch.Tensor,
    seq_lens: torch.Tensor,
    rotation: torch.Tensor,
    k_centroids: torch.Tensor,
    v_centroids: torch.Tensor,
    sm_scale: float | None = None,
) -> torch.Tensor:
    """Plain-torch :func:`tq_paged_decode`: gather each sequence's records through its block
    table, then :func:`tq_decode_reference`. Same arguments and result."""
    check_pool(pool, layout)
    check_block_tables(block_table, seq_lens, pool.shape[0], pool.shape[1])
    outs = []
    for i in range(q.shape[0]):
        n = int(seq_lens[i])
        kp, kn, vp, vn = read_slots(pool, layout, sequence_slots(block_table[i], n, pool.shape[1]))
        to4 = lambda x: x.transpose(0, 1).unsqueeze(0)  # [L, H, ...] → [1, H, L, ...]
        outs.append(
            tq_decode_reference(
                q[i : i + 1], to4(kp), to4(kn), to4(vp), to4(vn), rotation, k_centroids, v_centroids, sm_scale
            )
        )
    return torch.cat(outs)
