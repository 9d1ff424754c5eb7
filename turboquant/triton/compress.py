"""Fused TurboQuant compress / decompress kernels.

``tq4_compress``: one kernel reads ``x [..., D]`` (fp16/bf16/fp32), computes the fp32 norm,
rotates (``y = x @ Pi.T / ||x||``), buckets every coordinate against the Lloyd-Max boundaries
and writes the bit-packed indices (layout of docs/ARCHITECTURE.md) and the fp32 norm.
``tq4_decompress``: unpack + centroid gather + norm scale, in the rotated space (no inverse
rotation; attention kernels work there).

Rotation precision: the rotation runs on tensor cores with fp32 accumulation and ``Pi`` split
into 16-bit pieces whose products with the input are exact in fp32: two fp16 pieces for fp16
input (``Pi ≈ P0 + P1 / 2**11``, ~22 bits), three bf16 pieces for bf16 input (``Pi ≈ P0 + P1 +
P2``, ~24 bits; the input goes in as it is), a 3xTF32 dot for fp32 input. That reproduces the
fp32 rotation to ~1e-7, so indices differ from ``TurboQuantMSE`` only where a rotated
coordinate lies within fp32 rounding of a boundary.

Packing inside the kernel: the rotation's output columns are computed in an order that gives
each tensor-core lane runs of consecutive coordinates (``_accumulator_order``), so the bytes
are built in registers; index ``j`` is shifted to bit ``(j % g) * bits`` of its group of
``g = 8 / gcd(bits, 8)`` indices, and a sum over the group (disjoint bits) gives the group's
``g * bits / 8`` bytes (layout of docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import functools
import math
import os
from fractions import Fraction

import numpy as np
import torch
import triton
import triton.language as tl

from ..packing import index_codes
from ..validation import check_bits, check_head_dim, check_tensor
from .codebook_memo import code_table, is_symmetric, per_codebook

SUPPORTED_HEAD_DIMS = (64, 96, 128, 256)
SUPPORTED_BITS = (2, 3, 4)
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
# Triton's interpreter (3.9) computes tl.dot on bf16 operands wrongly: `dot` upcasts there.
_INTERPRET_DOT = tl.constexpr(INTERPRET)

# bf16 pieces of Pi for bf16 input: 3 (~24 bits, as fp32) or 2 (~16 bits: a third less
# tensor-core work and shared memory; rotated coordinates within ~1e-6 of fp32's)
BF16_PIECES = 3

# rotations whose entries all share one magnitude c (the randomized Hadamard of
# `random_rotation(kind="hadamard")`: +-1/sqrt(d)) go to the tensor cores as one +-1 piece for
# 16-bit input: each product is exact, so one dot and a scale by c give what three pieces give
SIGN_ROTATION = True

# dtype code of the kernel input (selects the rotation-split scheme)
_IN_KIND = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}

# Autotune configs, in one place. The interpreter gets one config (tests stay fast).
if INTERPRET:
    COMPRESS_CONFIGS = [triton.Config({"BLOCK_R": 16}, num_warps=4)]
    DECOMPRESS_CONFIGS = [triton.Config({"BLOCK_R": 16}, num_warps=4)]
else:
    COMPRESS_CONFIGS = [
        triton.Config({"BLOCK_R": r}, num_warps=w, num_stages=st, maxnreg=(reg or [None])[0])
        for r, w, st, *reg in [
            (32, 4, 1),  # first: the only config for small writes (fits every head_dim/dtype)
            (64, 4, 2),
            (64, 4, 1),
            # at most 128 registers: 4 programs per SM where shared memory allows (one Pi piece:
            # a Hadamard rotation; H100, session 33: 1.03-1.06x its 185-register launch)
            (64, 4, 1, 128),
            (128, 8, 2),
            (128, 8, 1),
            (128, 16, 1),
            (256, 16, 1),
        ]
    ]
    DECOMPRESS_CONFIGS = [triton.Config({"BLOCK_R": r}, num_warps=w) for r, w in [(64, 4), (128, 8)]]


def group_size(bits: int) -> tuple[int, int]:
    """Indices per packing group and bytes per group: (2, 1) for 4 bits, (4, 1) for 2, (8, 3) for 3."""
    g = {2: 4, 3: 8, 4: 2}[bits]
    return g, g * bits // 8


def infer_bits(packed: torch.Tensor, head_dim: int, centroids: torch.Tensor, name: str = "packed") -> int:
    """Bit width of a packed tensor: ``packed.shape[-1] * 8 // head_dim``, checked against
    the codebook size (``2**bits`` centroids) and the supported widths (2, 3, 4)."""
    nbytes = packed.shape[-1]
    bits = nbytes * 8 // head_dim
    if bits not in SUPPORTED_BITS or nbytes * 8 != bits * head_dim:
        raise ValueError(
            f"{name}: last dimension {nbytes} is not head_dim*bits/8 for head_dim {head_dim} and "
            f"bits in {SUPPORTED_BITS} (expected one of "
            f"{[head_dim * b // 8 for b in SUPPORTED_BITS]})"
        )
    if centroids.numel() != 2**bits:
        raise ValueError(
            f"{name}: packed width {nbytes} bytes means {bits}-bit indices, which need "
            f"{2**bits} centroids, got {centroids.numel()}"
        )
    return bits


@triton.jit
def load_indices(row_ptr, d, mask, BITS: tl.constexpr):
    """Unpack ``BITS``-bit indices of coordinates ``d`` from packed rows starting at ``row_ptr``
    (uint8 pointers, broadcast against ``d``; bytes contiguous; ``mask`` may be None).
    Returns their int32 codes (``turboquant.packing``: gather from a ``code_table``)."""
    bit = d * BITS
    byte = bit // 8
    shift = bit % 8
    if mask is None:
        word = tl.load(row_ptr + byte).to(tl.int32)
        straddles = shift > 5
    else:
        word = tl.load(row_ptr + byte, mask=mask, other=0).to(tl.int32)
        straddles = (shift > 5) & mask
    if BITS == 3:  # an index may straddle two bytes
        hi = tl.load(row_ptr + byte + 1, mask=straddles, other=0).to(tl.int32)
        word = word | (hi << 8)
    return (word >> shift) & ((1 << BITS) - 1)


@triton.jit
def dot(a, b, acc=None):
    """``tl.dot`` with fp32 accumulation; under the interpreter, 16-bit operands go through fp32."""
    if _INTERPRET_DOT:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    return tl.dot(a, b, acc)


@triton.jit
def _accumulator_order(c, CHUNK: tl.constexpr, PERMUTE: tl.constexpr):
    """The coordinate that column ``c`` of a rotation chunk computes. With ``PERMUTE``, column
    ``8n + 2j + e`` (the tensor-core accumulator gives lane ``j = lane % 4`` the columns
    ``8n + 2j + {0, 1}`` for every ``n``) is coordinate ``(CHUNK / 4) j + 2n + e``: each lane
    computes runs of consecutive coordinates, so its packed bytes are contiguous and are built
    and stored without a layout conversion. Any order is correct (:func:`_coordinate_order`
    undoes it); this one is the fast one."""
    if PERMUTE:
        return (CHUNK // 4) * ((c % 8) // 2) + 2 * (c // 8) + (c % 2)
    else:
        return c


@triton.jit
def _coordinate_order(t, BLOCK_R: tl.constexpr, CHUNK: tl.constexpr, PERMUTE: tl.constexpr):
    """``[BLOCK_R, CHUNK]`` from accumulator order (:func:`_accumulator_order`) back to
    coordinate order: a reshape and a transpose, free for the layouts involved."""
    if PERMUTE:
        t4 = tl.reshape(t, (BLOCK_R, CHUNK // 8, 4, 2))
        return tl.reshape(tl.permute(t4, (0, 2, 1, 3)), (BLOCK_R, CHUNK))
    else:
        return t


@triton.jit
def _rotation_tile(
    rot_ptr,
    c0,
    offs_k,
    D: tl.constexpr,
    CHUNK: tl.constexpr,
    IN_KIND: tl.constexpr,
    PERMUTE: tl.constexpr,
    SIGNS: tl.constexpr,
):
    """Columns ``[c0, c0 + CHUNK)`` of ``Pi.T`` (in accumulator order) as the operands of
    :func:`_rotate`: fp32 ``pit`` three times for fp32 input (IN_KIND 0); for fp16 input two
    fp16 pieces ``(p0, p1, p1)`` with ``pit ≈ p0 + p1 / 2**11`` (the second scaled clear of
    subnormals), ~22 bits; for bf16 input three bf16 pieces with ``pit ≈ p0 + p1 + p2``
    (bf16 has fp32's exponent range, so no scaling), ~24 bits. With ``SIGNS`` (16-bit input,
    every entry ``+-c``): the signs ``+-1`` in the input dtype, three times."""
    cols = c0 + _accumulator_order(tl.arange(0, CHUNK), CHUNK, PERMUTE)
    pit = tl.load(
        rot_ptr + cols[None, :] * D + offs_k[:, None],
        mask=(cols[None, :] < D) & (offs_k[:, None] < D),
        other=0.0,
    )
    if SIGNS:
        sgn = tl.where(pit > 0, 1.0, tl.where(pit < 0, -1.0, 0.0))
        sgn = sgn.to(tl.float16) if IN_KIND == 1 else sgn.to(tl.bfloat16)
        return sgn, sgn, sgn
    elif IN_KIND == 0:
        return pit, pit, pit
    elif IN_KIND == 1:
        p0 = pit.to(tl.float16)
        p1 = ((pit - p0.to(tl.float32)) * 2048.0).to(tl.float16)
        return p0, p1, p1
    else:
        p0 = pit.to(tl.bfloat16)
        r1 = pit - p0.to(tl.float32)
        p1 = r1.to(tl.bfloat16)
        p2 = (r1 - p1.to(tl.float32)).to(tl.bfloat16)
        return p0, p1, p2


@triton.jit
def _rotate(xd, p0, p1, p2, IN_KIND: tl.constexpr, BF16_PIECES: tl.constexpr):
    """``xd @ Pi.T[:, chunk]`` in fp32 from the operands of :func:`_rotation_tile`: one 3xTF32
    dot for fp32 input (fp32-accurate); for 16-bit input one dot per piece (each product exact
    in fp32), the smallest piece first."""
    if IN_KIND == 0:
        y = tl.dot(xd, p0, input_precision="tf32x3")
    elif IN_KIND == 1:
        y = dot(xd, p0) + dot(xd, p1) * (1.0 / 2048.0)
    elif BF16_PIECES == 3:
        y = dot(xd, p0, dot(xd, p1, dot(xd, p2)))
    else:
        y = dot(xd, p0, dot(xd, p1))
    return y


@triton.jit
def _bucketize4(y, bnd_ptr):
    """``torch.bucketize(y, boundaries)`` for the 15 sorted boundaries at ``bnd_ptr``: the
    number of them strictly below ``y``, by binary search over scalars (4 comparisons and 11
    selects per element instead of 15 comparisons and adds); NaN gives 0 like the linear count.
    Returns the index's code (``turboquant.packing``): ``8 + k`` above the middle boundary,
    ``k ^ 7`` = ``7 - k`` below it, ``k`` the index within its half."""
    b0, b1, b2, b3 = tl.load(bnd_ptr), tl.load(bnd_ptr + 1), tl.load(bnd_ptr + 2), tl.load(bnd_ptr + 3)
    b4, b5, b6, b7 = tl.load(bnd_ptr + 4), tl.load(bnd_ptr + 5), tl.load(bnd_ptr + 6), tl.load(bnd_ptr + 7)
    b8, b9, b10, b11 = (
        tl.load(bnd_ptr + 8),
        tl.load(bnd_ptr + 9),
        tl.load(bnd_ptr + 10),
        tl.load(bnd_ptr + 11),
    )
    b12, b13, b14 = tl.load(bnd_ptr + 12), tl.load(bnd_ptr + 13), tl.load(bnd_ptr + 14)
    c8 = y > b7
    c4 = y > tl.where(c8, b11, b3)
    c2 = y > tl.where(c8, tl.where(c4, b13, b9), tl.where(c4, b5, b1))
    t_hi = tl.where(c4, tl.where(c2, b14, b12), tl.where(c2, b10, b8))
    t_lo = tl.where(c4, tl.where(c2, b6, b4), tl.where(c2, b2, b0))
    c1 = y > tl.where(c8, t_hi, t_lo)
    k = c4.to(tl.int32) * 4 + c2.to(tl.int32) * 2 + c1.to(tl.int32)
    return tl.where(c8, 8 + k, k ^ 7)


# _bucketize4_symmetric as one inline-PTX block per element (the compiler turns the Triton
# version's 0/1 selects into byte-lane shuffles): integer compares of the float bits, selects
# of the boundaries, the code's bits set by predicated xors. Static report (sm_90a, bf16,
# d=128, BLOCK_R 64, 4 warps): 38 -> 27.5 loop instructions per coordinate; measured on an H200
# 1.12-1.13x faster than the Triton version at 64K-256K tokens, same bytes (session 12).
# $1 = y (f32), $2..$8 = bits of the positive boundaries b[8..14].
_BUCKET4_SYM_ASM = tl.constexpr(
    "{ .reg .pred p, c4, c2, c1; .reg .b32 a, t, u; "
    "setp.gt.f32 p, $1, 0f00000000; mov.b32 a, $1; and.b32 a, a, 0x7fffffff; "
    "@!p add.s32 a, a, 1; "
    "setp.gt.s32 c4, a, $5; selp.b32 t, $7, $3, c4; setp.gt.s32 c2, a, t; "
    "selp.b32 t, $8, $6, c2; selp.b32 u, $4, $2, c2; selp.b32 t, t, u, c4; "
    "setp.gt.s32 c1, a, t; selp.b32 $0, 8, 0, p; "
    "@c4 xor.b32 $0, $0, 4; @c2 xor.b32 $0, $0, 2; @c1 xor.b32 $0, $0, 1; }"
)
# inline-PTX bucketing for symmetric 4-bit boundaries (not under the interpreter, which runs
# no PTX); False runs the Triton version (bench_kernels' `tq4_compress[triton bucketize]` rows)
BUCKET_ASM = True
# load the next row block of a persistent program before this block's math (register double
# buffering: the load latency hides behind the rotation and the bucketing)
PREFETCH_ROWS = True
# 3-bit indices (d = 128): each thread's 32 consecutive coordinates stored as three int32 words
# instead of 12 single-byte stores (Triton 3.6 static, BLOCK_R 64 / 4 warps: 24 STG.E.U8 per
# thread and block -> 6 STG.E, 1584 -> 1537 loop instructions). H100, session 33 run 1: 1.94x /
# 2.02x at 64K / 256K tokens (0.63 -> 1.27 TB/s of GPU time), the same bytes
PACK3_WORDS = True

# Bucketing by a table lookup (3- and 4-bit indices; any sorted boundaries at least a few
# hundredths of their span apart, Lloyd-Max's are): a rotated coordinate ``y`` goes to cell
# ``f(y) = rne(32 * sat(fma(y, s, o)))`` of 33 (``sat`` clamps to [0, 1], NaN to 0), with ``s``
# and ``o`` chosen per codebook so that no two boundaries share a cell. Entry ``c`` of the table
# holds ``lo[c]``, the number of boundaries whose cell is below ``c``, and ``b[c]``, the
# boundary in cell ``c`` (+inf if none), side by side in 8 bytes. Because ``f`` is monotone,
# every boundary in a lower cell is below ``y`` and every one in a higher cell is not, so the
# index is ``lo[c] + (y > b[c])``, exact on ties (``torch.bucketize`` counts the boundaries
# strictly below). The entry holds the codes (``turboquant.packing``) of both, ``lo[c]`` in
# its low byte and ``lo[c] + 1`` in the next, so the code costs one instruction more than the
# index did (an ``and`` and a predicated shift for the add; a third word holding the step
# instead, in 16-byte entries, spilled: Triton 3.6 static report, 229 -> 255 registers; sorted
# indices in the table and the code made after the add, two more instructions per coordinate,
# measured 0.90-0.92x on an H100 in session 34, commit 4f0e89a's TABLE_CODES="index"). Per
# coordinate: two FMAs, a 64-bit address, one 8-byte load from a 264-byte table that stays in
# L1, a compare, an and and a shift, against ~12 integer instructions for the
# sign-folded search (Triton 3.6 static report, BLOCK_R 64 / 4 warps: 28.2 -> 25.1 loop
# instructions per coordinate; H100, session 32 run 1: 1.15x / 1.045x at 64K / 256K tokens).
BUCKET_TABLE = True
TABLE_CELLS = 32
_TABLE_SPAN = 0.9375  # the boundaries' span maps to this part of [0, 1] (the rest: margins)
_MAGIC = 0x4B400000  # bits of 1.5 * 2**23: adding it leaves round(v) in the low bits, v < 2**22
_MAGIC_BITS = tl.constexpr(_MAGIC)
# the whole lookup as inline PTX ($1 = y, $2 = s, $3 = o, $4 = the table's address less 8 *
# _MAGIC; $0 = the code): the loads are Triton's otherwise, and Triton moves their addresses to
# a coalesced layout and back through shared memory (static report: 255 registers, spills)
_TABLE_ASM = tl.constexpr(
    "{ .reg .f32 t, b; .reg .b32 v, w; .reg .b64 a; .reg .pred p; "
    "fma.rn.sat.f32 t, $1, $2, $3; fma.rn.f32 t, t, 0f42000000, 0f4B400000; mov.b32 v, t; "
    "mad.wide.u32 a, v, 8, $4; ld.global.nc.v2.f32 {t, b}, [a]; mov.b32 w, t; "
    "setp.gt.f32 p, $1, b; and.b32 $0, w, 255; @p shr.b32 $0, w, 8; }"
)


def _f32(q: Fraction) -> float:
    """``q`` rounded to the nearest fp32, ties to even."""
    c = np.float32(float(q))
    near = (np.nextafter(c, np.float32(-np.inf)), c, np.nextafter(c, np.float32(np.inf)))
    return float(min(near, key=lambda f: (abs(Fraction(float(f)) - q), int(f.view(np.int32)) & 1)))


def _saturated_cell(u: float) -> int:
    """``rne(32 * u)`` of ``u`` clamped to [0, 1] as the kernel computes it (an exact product
    and one rounding of the magic-number sum)."""
    u = min(max(u, 0.0), 1.0) if u == u else 0.0
    return int(np.float32(u * 32.0 + 12582912.0).view(np.int32)) - _MAGIC


def table_cell(y: float, scale: float, offset: float) -> int:
    """The kernel's cell of ``y`` (inline PTX path): ``fma.rn.sat`` rounded exactly once."""
    if not math.isfinite(y):
        return _saturated_cell(0.0 if math.isnan(y) else y)
    exact = Fraction(y) * Fraction(scale) + Fraction(offset)
    return _saturated_cell(math.copysign(math.inf, exact) if abs(exact) >= 2**128 else _f32(exact))


def table_cell_fp64(y: float, scale: float, offset: float) -> int:
    """The cell of ``y`` as the interpreter computes it (numpy has no fma: the product and sum
    in fp64, then rounded to fp32)."""
    with np.errstate(over="ignore"):
        return _saturated_cell(float(np.float32(np.float64(y) * np.float64(scale) + np.float64(offset))))


def _build_bucket_table(boundaries: torch.Tensor) -> tuple[torch.Tensor, float, float] | None:
    vals = boundaries.detach().float().cpu().tolist()
    if not all(math.isfinite(v) for v in vals) or vals[-1] <= vals[0]:
        return None
    scale = float(np.float32(_TABLE_SPAN / (vals[-1] - vals[0])))
    offset = float(np.float32(0.5 - 0.5 * (vals[0] + vals[-1]) * scale))
    cells = [table_cell(v, scale, offset) for v in vals]
    if any(a >= b for a, b in zip(cells, cells[1:], strict=False)):
        return None  # boundaries closer than a cell (or repeated): the search paths take them
    if any(table_cell_fp64(v, scale, offset) != c for v, c in zip(vals, cells, strict=True)):
        return None  # the interpreter's cells would differ at a boundary
    lo = [sum(c < k for c in cells) for k in range(TABLE_CELLS + 1)]
    bnd = [math.inf] * (TABLE_CELLS + 1)
    for v, c in zip(vals, cells, strict=True):
        bnd[c] = v
    bits = (len(vals) + 1).bit_length() - 1
    lo = torch.tensor(lo)
    # codes of lo[c] and lo[c] + 1 (past the last index only where b[c] = +inf: never taken)
    codes = index_codes(lo, bits) | (index_codes((lo + 1).clamp(max=len(vals)), bits) << 8)
    bnd_bits = torch.tensor(bnd, dtype=torch.float32).view(torch.int32).long()
    words = torch.stack([codes, bnd_bits], 1).to(torch.int32)
    return words.to(boundaries.device), scale, offset


def bucket_table(boundaries: torch.Tensor) -> tuple[torch.Tensor, float, float] | None:
    """The cell table of ``boundaries`` (see ``BUCKET_TABLE``): ``(words, s, o)`` with
    ``words`` int32 ``[33, 2]`` on the boundaries' device (entry ``c``: the codes of ``lo[c]``
    and ``lo[c] + 1`` in bits 0-7 and 8-15, the fp32 bits of ``b[c]``), or None where two
    boundaries would share a cell. Built once per boundaries tensor (a device read) and
    remembered; while a CUDA graph is being captured an unseen tensor gets None (the search
    paths need no table)."""
    return per_codebook(boundaries, "bucket table", _build_bucket_table, while_capturing=lambda b: None)


@triton.jit
def _bucketize_table(y, tab_ptr, scale, offset, USE_ASM: tl.constexpr):
    """The code of ``torch.bucketize(y, boundaries)`` through the cell table of
    :func:`bucket_table`."""
    if USE_ASM:
        base = tab_ptr.to(tl.int64) - 8 * _MAGIC_BITS
        idx = tl.inline_asm_elementwise(
            _TABLE_ASM, "=r,f,f,f,l", [y, scale, offset, base], dtype=tl.int32, is_pure=True, pack=1
        )
    else:
        if _INTERPRET_DOT:  # numpy has no fma: see table_cell_fp64 (checked against it on the host)
            u = (y.to(tl.float64) * scale + offset).to(tl.float32)
        else:
            u = tl.fma(y, scale, offset)
        u = tl.minimum(tl.where(u > 0.0, u, 0.0), 1.0)  # NaN -> 0, like fma.rn.sat
        v = (u * 32.0 + 12582912.0).to(tl.int32, bitcast=True)
        entry = tab_ptr + 2 * (v - _MAGIC_BITS)
        codes = tl.load(entry)
        b = tl.load(entry + 1).to(tl.float32, bitcast=True)
        idx = tl.where(y > b, codes >> 8, codes & 255)
    return idx


@triton.jit
def _bucketize4_symmetric(y, bnd_ptr, USE_ASM: tl.constexpr):
    """:func:`_bucketize4` for symmetric boundaries (``b[14-i] == -b[i]``, so ``b[7] == 0``;
    Lloyd-Max boundaries are): with ``a = |y|`` and ``k`` the number of positive boundaries
    below it, the index is ``8 + k`` for ``y > 0`` and ``7 - k`` otherwise (code ``8 + k`` and
    ``k``: the sign bit over the magnitude's rank, ``turboquant.packing``), ``k`` counted
    non-strictly there (``b < y`` for ``y < 0`` is ``-b > |y|``). Both counts are one strict
    integer comparison of the bits (non-negative floats order as integers) with the bits of
    ``a`` plus one ulp for ``y <= 0``: exact on ties. Three comparisons and four selects per
    element; NaN gives 0 like the linear count. ``USE_ASM``: the same steps as one inline-PTX
    block (``_BUCKET4_SYM_ASM``)."""
    bits = (bnd_ptr + 8).to(tl.pointer_type(tl.int32))
    b8, b9, b10, b11 = tl.load(bits), tl.load(bits + 1), tl.load(bits + 2), tl.load(bits + 3)
    b12, b13, b14 = tl.load(bits + 4), tl.load(bits + 5), tl.load(bits + 6)
    if USE_ASM:
        idx = tl.inline_asm_elementwise(
            _BUCKET4_SYM_ASM,
            "=r,f,r,r,r,r,r,r,r",
            [y, b8, b9, b10, b11, b12, b13, b14],
            dtype=tl.int32,
            is_pure=True,
            pack=1,
        )
    else:
        pos = y > 0
        a = y.to(tl.int32, bitcast=True) & 0x7FFFFFFF
        a = tl.where(pos, a, a + 1)
        c4 = a > b11
        c2 = a > tl.where(c4, b13, b9)
        c1 = a > tl.where(c4, tl.where(c2, b14, b12), tl.where(c2, b10, b8))
        k = tl.where(c4, 4, 0) | tl.where(c2, 2, 0) | tl.where(c1, 1, 0)
        idx = k | tl.where(pos, 8, 0)
    return idx


@triton.jit
def _load_row_block(x_ptr, blk, n_rows, H, sx_t, sx_h, sx_d, offs_k, D: tl.constexpr, BLOCK_R: tl.constexpr):
    """Rows ``[blk * BLOCK_R, (blk + 1) * BLOCK_R)`` of the ``[T * H, D]`` input (zeros past
    ``n_rows``)."""
    rows = blk * BLOCK_R + tl.arange(0, BLOCK_R)
    t = (rows // H).to(tl.int64)
    h = rows % H
    return tl.load(
        x_ptr + t[:, None] * sx_t + h[:, None] * sx_h + offs_k[None, :] * sx_d,
        mask=(rows < n_rows)[:, None] & (offs_k[None, :] < D),
        other=0.0,
    )


# a launch configuration to use instead of the autotuner's, e.g. ``{"BLOCK_R": 64, "num_warps":
# 8, "num_stages": 1, "maxnreg": 128}`` (scripts/compress_ab.py); None: autotuned (large
# writes) or the first config (small ones)
LAUNCH_CONFIG: dict | None = None
_FIRST = COMPRESS_CONFIGS[0]
TUNE_ROWS = 65536  # writes of at least this many rows go through the autotuner
_SMALL_LAUNCH = dict(_FIRST.kwargs, num_warps=_FIRST.num_warps, num_stages=_FIRST.num_stages)
_TUNED: dict[tuple, dict] = {}  # the autotuner's pick per device and kernel variant


def _prune_configs(configs, named_args, **kwargs):
    """The register-capped configs only for the sign piece (``SIGNS``), the variant they were
    measured on: with three pieces (QR, ~190 registers) a cap of 128 spills, and the autotuner
    once picked it anyway (H100, session 34: 636.6 µs against 513.5 at 256K tokens)."""
    return [c for c in configs if kwargs.get("SIGNS") or c.maxnreg is None]


@triton.autotune(
    configs=COMPRESS_CONFIGS,
    prune_configs_by={"early_config_prune": _prune_configs},
    key=[
        "D",
        "BITS",
        "IN_KIND",
        "SYMMETRIC",
        "TABLE",
        "WORDS3",
        "BF16_PIECES",
        "SIGNS",
        "USE_ASM",
        "PREFETCH",
    ],
)
@triton.jit
def _compress_kernel(
    x_ptr,
    rot_ptr,
    bnd_ptr,
    packed_ptr,
    norms_ptr,
    slot_ptr,
    tab_ptr,
    tab_scale,
    tab_offset,
    rot_scale,
    n_rows,
    H,
    sx_t,
    sx_h,
    sx_d,
    sp_pg,
    sp_t,
    sp_h,
    sp_b,
    sn_pg,
    sn_t,
    sn_h,
    D: tl.constexpr,
    BLOCK_D: tl.constexpr,
    CHUNK: tl.constexpr,
    BITS: tl.constexpr,
    GSIZE: tl.constexpr,
    GBYTES: tl.constexpr,
    IN_KIND: tl.constexpr,
    HAS_SLOTS: tl.constexpr,
    SYMMETRIC: tl.constexpr,
    TABLE: tl.constexpr,
    WORDS3: tl.constexpr,
    BF16_PIECES: tl.constexpr,
    SIGNS: tl.constexpr,
    USE_ASM: tl.constexpr,
    PREFETCH: tl.constexpr,
    PAGE: tl.constexpr,
    BLOCK_R: tl.constexpr,
):
    # Persistent grid: each program walks row blocks, so the next block's loads overlap this
    # block's math (software pipelining). With one column chunk (D <= 128) the Pi operands are
    # loaded and split once per program, before the loop.
    n_blocks = tl.cdiv(n_rows, BLOCK_R)
    offs_k = tl.arange(0, BLOCK_D)
    ONE_CHUNK: tl.constexpr = CHUNK >= BLOCK_D
    PERMUTE: tl.constexpr = (D == BLOCK_D) and (CHUNK % 32 == 0)
    if ONE_CHUNK:
        p0_all, p1_all, p2_all = _rotation_tile(rot_ptr, 0, offs_k, D, CHUNK, IN_KIND, PERMUTE, SIGNS)
    step = tl.num_programs(0)
    if PREFETCH:  # the first block's rows; each iteration loads the next block's before its math
        x_next = _load_row_block(x_ptr, tl.program_id(0), n_rows, H, sx_t, sx_h, sx_d, offs_k, D, BLOCK_R)
    for blk in tl.range(tl.program_id(0), n_blocks, step):
        rows = blk * BLOCK_R + tl.arange(0, BLOCK_R)
        row_ok = rows < n_rows
        t = (rows // H).to(tl.int64)
        h = rows % H
        if PREFETCH:
            x = x_next
            x_next = _load_row_block(x_ptr, blk + step, n_rows, H, sx_t, sx_h, sx_d, offs_k, D, BLOCK_R)
        else:
            x = _load_row_block(x_ptr, blk, n_rows, H, sx_t, sx_h, sx_d, offs_k, D, BLOCK_R)
        xf = x.to(tl.float32)
        norm = tl.sqrt(tl.sum(xf * xf, axis=1))
        inv = 1.0 / tl.maximum(norm, 1.1754943508222875e-38)  # zero vector -> y = 0, like the reference

        if HAS_SLOTS:
            t_out = tl.load(slot_ptr + t, mask=row_ok, other=-1)
            row_ok = row_ok & (t_out >= 0)
        else:
            t_out = t
        # output row t_out is row t_out % PAGE of page t_out // PAGE (PAGE = 1: row t_out)
        pg, r = t_out // PAGE, t_out % PAGE
        out_row = packed_ptr + pg * sp_pg + r * sp_t + h * sp_h
        tl.store(norms_ptr + pg * sn_pg + r * sn_t + h * sn_h, norm, mask=row_ok)

        NG: tl.constexpr = CHUNK // GSIZE  # packing groups per chunk
        for c0 in tl.static_range(0, D, CHUNK):
            cols = c0 + tl.arange(0, CHUNK)
            if ONE_CHUNK:
                p0, p1, p2 = p0_all, p1_all, p2_all
            else:
                p0, p1, p2 = _rotation_tile(rot_ptr, c0, offs_k, D, CHUNK, IN_KIND, PERMUTE, SIGNS)
            if SIGNS:  # Pi = c * signs: one exact dot, then the norm and c in one scale
                y = dot(x, p0) * (inv * rot_scale)[:, None]
            else:
                y = _rotate(x, p0, p1, p2, IN_KIND, BF16_PIECES) * inv[:, None]
            # torch.bucketize(y, boundaries), the number of boundaries strictly below y, as its
            # sign-magnitude code (turboquant.packing)
            if TABLE:
                idx = _bucketize_table(y, tab_ptr, tab_scale, tab_offset, USE_ASM)
            elif BITS == 4 and SYMMETRIC:
                idx = _bucketize4_symmetric(y, bnd_ptr, USE_ASM)
            elif BITS == 4:
                idx = _bucketize4(y, bnd_ptr)
            else:
                idx = tl.zeros((BLOCK_R, CHUNK), dtype=tl.int32)
                for i in tl.static_range((1 << BITS) - 1):
                    idx += (y > tl.load(bnd_ptr + i)).to(tl.int32)
                idx = tl.where(idx < (1 << (BITS - 1)), idx ^ ((1 << (BITS - 1)) - 1), idx)
            idx = _coordinate_order(idx, BLOCK_R, CHUNK, PERMUTE)
            # little-endian bit stream: a group of GSIZE indices is one word (bit ranges disjoint)
            if GSIZE == 2:  # 4 bits: the pairs of neighbouring columns, which one thread holds
                lo, hi = tl.split(tl.reshape(idx, (BLOCK_R, NG, 2)))
                word = lo | (hi << BITS)
            else:
                shifted = idx << ((cols % GSIZE) * BITS)[None, :]
                word = tl.sum(tl.reshape(shifted, (BLOCK_R, NG, GSIZE)), axis=2)
            grp = c0 // GSIZE + tl.arange(0, NG)
            if D == BLOCK_D:  # masked by row only: the stores vectorize
                ok = tl.broadcast_to(row_ok[:, None], (BLOCK_R, NG))
            else:
                ok = row_ok[:, None] & (grp[None, :] * GSIZE < D)
            if WORDS3:
                # 3 bits: four consecutive 24-bit groups (which one thread holds in accumulator
                # order) are 12 bytes, stored as three int32 words rather than 12 single bytes
                ga, gb = tl.split(tl.reshape(word, (BLOCK_R, NG // 4, 2, 2)))  # groups 4q+2a, 4q+2a+1
                g0, g2 = tl.split(ga)
                g1, g3 = tl.split(gb)
                quad = (c0 // 32) * 3 + 3 * tl.arange(0, NG // 4)
                words = out_row.to(tl.pointer_type(tl.int32))[:, None] + quad[None, :]
                quad_ok = tl.broadcast_to(row_ok[:, None], (BLOCK_R, NG // 4))
                tl.store(words, g0 | (g1 << 24), mask=quad_ok)
                tl.store(words + 1, (g1 >> 8) | (g2 << 16), mask=quad_ok)
                tl.store(words + 2, (g2 >> 16) | (g3 << 8), mask=quad_ok)
            else:
                for k in tl.static_range(GBYTES):
                    tl.store(
                        out_row[:, None] + (grp[None, :] * GBYTES + k) * sp_b,
                        ((word >> (8 * k)) & 0xFF).to(tl.uint8),
                        mask=ok,
                    )


@functools.cache
def _max_programs(device: torch.device) -> int:
    """Programs of a persistent grid: a few per multiprocessor (any number under the interpreter)."""
    if device.type != "cuda":
        return 1 << 30
    return 4 * torch.cuda.get_device_properties(device).multi_processor_count


def _validate_codebook_vec(name: str, t: object, n: int, device: torch.device) -> torch.Tensor:
    check_tensor(name, t, ndim=1, dtypes=(torch.float32,), device=device)
    if t.shape[0] != n:
        raise ValueError(f"{name}: expected {n} entries, got {t.shape[0]}")
    return t.contiguous()


def _sign_scale(rotation: torch.Tensor) -> float | None:
    mag = rotation.abs()
    c = mag.flatten()[0]
    return float(c) if bool((c > 0) & (mag == c).all()) else None  # one device sync


def sign_scale(rotation: torch.Tensor) -> float | None:
    """``c`` when every entry of ``rotation`` is ``+c`` or ``-c`` (the randomized Hadamard),
    else None. Read once per rotation tensor and in-place version (a device sync), then
    remembered; while a CUDA graph is being captured an unseen rotation gets None (the
    three-piece path is always right)."""
    return per_codebook(rotation, "sign scale", _sign_scale, while_capturing=lambda r: None)


def _check_rotation(rotation: object, d: int, device: torch.device) -> torch.Tensor:
    check_tensor("rotation", rotation, ndim=2, dtypes=(torch.float32,), device=device)
    if tuple(rotation.shape) != (d, d):
        raise ValueError(f"rotation: expected shape ({d}, {d}), got {tuple(rotation.shape)}")
    return rotation.contiguous()


def tq4_compress(
    x: torch.Tensor,
    rotation: torch.Tensor,
    boundaries: torch.Tensor,
    *,
    bits: int = 4,
    out_packed: torch.Tensor | None = None,
    out_norms: torch.Tensor | None = None,
    slot_mapping: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused TurboQuant compress: norm + rotate + quantize + pack, one kernel.

    Args:
        x: ``[..., D]`` fp16/bf16/fp32, ``D`` in (64, 96, 128, 256); any strides when 3-D.
        rotation: fp32 ``(D, D)`` ``Pi`` (``y = x @ Pi.T``).
        boundaries: fp32 ``(2**bits - 1,)`` sorted Lloyd-Max boundaries.
        bits: 2, 3 or 4.
        out_packed, out_norms: optional outputs. Without ``slot_mapping``: shapes
            ``[..., D*bits/8]`` uint8 and ``[...]`` fp32 (as returned). With
            ``slot_mapping``, required: views ``[T_out, H, D*bits/8]`` and ``[T_out, H]``, or
            paged views ``[num_pages, P, H, D*bits/8]`` and ``[num_pages, P, H]`` in which
            output row ``s`` is ``[s // P, s % P]`` (any strides, e.g. into a paged pool).
        slot_mapping: optional int64 ``[T]`` for ``x`` of shape ``[T, H, D]``: input row ``t``
            goes to output row ``slot_mapping[t]``; negative entries are skipped. Entries must
            be ``< T_out`` (``num_pages * P``; not checked: that would need a device sync).

    Returns:
        ``(packed, norms)``: uint8 ``[..., D*bits/8]`` and fp32 ``[...]`` (the ``out_*``
        tensors when given).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    check_tensor("x", x, dtypes=tuple(_IN_KIND))
    if x.dim() < 1:
        raise ValueError("x: expected a tensor of rank >= 1, got a scalar")
    d = check_head_dim(x.shape[-1], SUPPORTED_HEAD_DIMS, name="x.shape[-1] (head_dim)")
    check_bits("bits", bits, SUPPORTED_BITS)
    dev = x.device
    rotation = _check_rotation(rotation, d, dev)
    boundaries = _validate_codebook_vec("boundaries", boundaries, 2**bits - 1, dev)
    nbytes = d * bits // 8

    if slot_mapping is not None:
        check_tensor("slot_mapping", slot_mapping, ndim=1, dtypes=(torch.int64,), device=dev)
        if x.dim() != 3 or x.shape[0] != slot_mapping.shape[0]:
            raise ValueError(
                f"x: with slot_mapping of shape {tuple(slot_mapping.shape)} expected x of shape "
                f"[T={slot_mapping.shape[0]}, H, D], got {tuple(x.shape)}"
            )
        if out_packed is None or out_norms is None:
            raise ValueError(
                "slot_mapping needs out_packed [T_out, H, nbytes] and out_norms [T_out, H] "
                "(or paged views [num_pages, P, H, nbytes] and [num_pages, P, H])"
            )
        check_tensor("out_packed", out_packed, dtypes=(torch.uint8,), device=dev)
        check_tensor("out_norms", out_norms, dtypes=(torch.float32,), device=dev)
        h = x.shape[1]
        if (
            out_packed.dim() not in (3, 4)
            or tuple(out_packed.shape[-2:]) != (h, nbytes)
            or tuple(out_norms.shape) != tuple(out_packed.shape[:-1])
        ):
            raise ValueError(
                f"out_packed/out_norms: expected shapes [T_out, {h}, {nbytes}] and [T_out, {h}], or "
                f"[num_pages, P, {h}, {nbytes}] and [num_pages, P, {h}]; got "
                f"{tuple(out_packed.shape)} and {tuple(out_norms.shape)}"
            )
        x3, result = x, (out_packed, out_norms)
        p4, n4 = out_packed, out_norms
        if out_packed.dim() == 3:  # 3-D outputs as pages of one row
            p4, n4 = out_packed[:, None], out_norms[:, None]
    else:
        lead = tuple(x.shape[:-1])
        if out_packed is None:
            out_packed = torch.empty(*lead, nbytes, dtype=torch.uint8, device=dev)
        if out_norms is None:
            out_norms = torch.empty(lead, dtype=torch.float32, device=dev)
        check_tensor("out_packed", out_packed, dtypes=(torch.uint8,), device=dev)
        check_tensor("out_norms", out_norms, dtypes=(torch.float32,), device=dev)
        if tuple(out_packed.shape) != lead + (nbytes,) or tuple(out_norms.shape) != lead:
            raise ValueError(
                f"out_packed/out_norms: expected shapes {lead + (nbytes,)} and {lead}, got "
                f"{tuple(out_packed.shape)} and {tuple(out_norms.shape)}"
            )
        result = (out_packed, out_norms)
        if x.dim() == 3:
            x3, p4, n4 = x, out_packed.unsqueeze(1), out_norms.unsqueeze(1)
        else:
            try:
                x3 = x.reshape(-1, 1, d)
                p4 = out_packed.view(-1, 1, 1, nbytes)
                n4 = out_norms.view(-1, 1, 1)
            except RuntimeError as err:
                raise ValueError(
                    f"out_packed/out_norms: need strides that allow a flat view ({err})"
                ) from err

    n_rows = x3.shape[0] * x3.shape[1]
    if n_rows == 0:
        return result
    gsize, gbytes = group_size(bits)
    block_d = triton.next_power_of_2(d)
    grid = lambda meta: (min(triton.cdiv(n_rows, meta["BLOCK_R"]), _max_programs(dev)),)  # noqa: E731
    # 2-bit indices keep the linear count: three comparisons beat the table's lookup (H100,
    # session 32 run 4: 456 against 530 µs at 256K tokens in GPU time; 3-bit 1058 against 1027)
    table = bucket_table(boundaries) if BUCKET_TABLE and bits >= 3 else None
    tab, tab_scale, tab_offset = table if table is not None else (boundaries, 1.0, 0.0)
    rot_scale = sign_scale(rotation) if SIGN_ROTATION and x.dtype != torch.float32 else None
    constants = dict(
        D=d,
        BLOCK_D=block_d,
        CHUNK=min(block_d, 16384 // block_d),  # output columns per dot: Pi tiles of <= 64 KB
        BITS=bits,
        GSIZE=gsize,
        GBYTES=gbytes,
        IN_KIND=_IN_KIND[x.dtype],
        HAS_SLOTS=slot_mapping is not None,
        # Lloyd-Max boundaries are symmetric (checked once per boundaries tensor)
        SYMMETRIC=bits == 4 and table is None and is_symmetric(boundaries),
        TABLE=table is not None,
        # 3-bit rows of 48 bytes written as int32 words (4-byte aligned rows only)
        WORDS3=bits == 3
        and d == 128
        and PACK3_WORDS
        and p4.data_ptr() % 4 == 0
        and all(st % 4 == 0 for st in p4.stride()[:3])
        and p4.stride(3) == 1,
        BF16_PIECES=BF16_PIECES,
        SIGNS=rot_scale is not None,
        USE_ASM=BUCKET_ASM and not INTERPRET,
        PREFETCH=PREFETCH_ROWS,
        PAGE=p4.shape[1],  # p4/n4: [pages, rows per page, H, ...] (1 row per page unless paged views)
    )
    # Only large writes are tuned, once per kernel variant (the autotuner's key); after that,
    # and for small writes (decode steps, the first config), the kernel is launched directly:
    # the autotuner's wrapper costs as much host time as the launch itself (H100, session 32:
    # ~35 µs per call, which a lone call's CUDA-event timing counts).
    tuned_key = None
    if LAUNCH_CONFIG is not None:
        launch = LAUNCH_CONFIG
    elif n_rows < TUNE_ROWS:
        launch = _SMALL_LAUNCH
    else:
        tuned_key = (dev, *(constants[k] for k in _compress_kernel.keys))
        launch = _TUNED.get(tuned_key)
    args = (x3, rotation, boundaries, p4, n4, slot_mapping if slot_mapping is not None else n4)
    args += (
        tab,
        tab_scale,
        tab_offset,
        rot_scale or 1.0,
        n_rows,
        x3.shape[1],
        *x3.stride(),
        *p4.stride(),
        *n4.stride(),
    )
    if launch is None:
        _compress_kernel[grid](*args, **constants)
        best = _compress_kernel.best_config
        _TUNED[tuned_key] = dict(best.kwargs, num_warps=best.num_warps, num_stages=best.num_stages)
        if best.maxnreg is not None:
            _TUNED[tuned_key]["maxnreg"] = best.maxnreg
    else:
        _compress_kernel.fn[grid](*args, **constants, **launch)
    return result


def tq4_compress_reference(
    x: torch.Tensor, rotation: torch.Tensor, boundaries: torch.Tensor, *, bits: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain-torch :func:`tq4_compress` (the spec): same math as ``TurboQuantMSE.quantize_packed``."""
    from ..packing import pack_indices

    x32 = x.float()
    norms = torch.linalg.vector_norm(x32, dim=-1)
    unit = x32 / norms.clamp_min(torch.finfo(torch.float32).tiny).unsqueeze(-1)
    idx = torch.bucketize(unit @ rotation.T, boundaries).to(torch.uint8)
    return pack_indices(idx, bits), norms


@triton.autotune(configs=DECOMPRESS_CONFIGS, key=["D", "BITS"])
@triton.jit
def _decompress_kernel(
    packed_ptr,
    norms_ptr,
    cent_ptr,
    out_ptr,
    n_rows,
    sp_r,
    sn_r,
    so_r,
    D: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BITS: tl.constexpr,
    BLOCK_R: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (rows[:, None] < n_rows) & (offs_d[None, :] < D)
    idx = load_indices(packed_ptr + rows[:, None].to(tl.int64) * sp_r, offs_d[None, :], mask, BITS)
    norm = tl.load(norms_ptr + rows.to(tl.int64) * sn_r, mask=rows < n_rows, other=0.0)
    y = tl.load(cent_ptr + idx) * norm[:, None]
    tl.store(
        out_ptr + rows[:, None].to(tl.int64) * so_r + offs_d[None, :],
        y.to(out_ptr.dtype.element_ty),
        mask=mask,
    )


def tq4_decompress(
    packed: torch.Tensor,
    norms: torch.Tensor,
    centroids: torch.Tensor,
    *,
    head_dim: int,
    dtype: torch.dtype = torch.float16,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fused unpack + centroid gather + norm scale, in the rotated space (no inverse rotation).

    Args:
        packed: uint8 ``[..., head_dim*bits/8]`` (bits 2, 3, 4 inferred from the width).
        norms: fp32 ``[...]`` (or ``[..., 1]``).
        centroids: fp32 ``(2**bits,)``.
        head_dim: 64, 96, 128 or 256.
        dtype: output dtype (fp16, bf16, fp32).
        out: optional ``[..., head_dim]`` output of ``dtype`` with a flat row view.

    Returns:
        ``norms * centroids[idx]`` of shape ``[..., head_dim]``.
    """
    check_head_dim(head_dim, SUPPORTED_HEAD_DIMS)
    check_tensor("packed", packed, dtypes=(torch.uint8,))
    if packed.dim() < 1:
        raise ValueError("packed: expected a tensor of rank >= 1, got a scalar")
    dev = packed.device
    check_tensor("norms", norms, dtypes=(torch.float32,), device=dev)
    check_tensor("centroids", centroids, ndim=1, dtypes=(torch.float32,), device=dev)
    bits = infer_bits(packed, head_dim, centroids)
    if dtype not in _IN_KIND:
        raise TypeError(f"dtype: expected one of (float16, bfloat16, float32), got {dtype}")
    lead = tuple(packed.shape[:-1])
    if tuple(norms.shape) == lead + (1,):
        norms = norms.squeeze(-1)
    if tuple(norms.shape) != lead:
        raise ValueError(
            f"norms: expected shape {lead} (packed without its last dim), got {tuple(norms.shape)}"
        )
    if out is None:
        out = torch.empty(*lead, head_dim, dtype=dtype, device=dev)
    check_tensor("out", out, dtypes=(dtype,), device=dev)
    if tuple(out.shape) != lead + (head_dim,):
        raise ValueError(f"out: expected shape {lead + (head_dim,)}, got {tuple(out.shape)}")
    p2 = packed.reshape(-1, packed.shape[-1])
    if p2.stride(-1) != 1:
        p2 = p2.contiguous()
    n1 = norms.reshape(-1)
    try:
        o2 = out.view(-1, head_dim)
    except RuntimeError as err:
        raise ValueError(f"out: needs strides that allow a flat [-1, {head_dim}] view ({err})") from err
    if o2.stride(-1) != 1:
        raise ValueError("out: the last dimension must be contiguous")
    n_rows = p2.shape[0]
    if n_rows == 0:
        return out
    grid = lambda meta: (triton.cdiv(n_rows, meta["BLOCK_R"]),)  # noqa: E731
    _decompress_kernel[grid](
        p2,
        n1,
        code_table(centroids),  # the packed codes index it directly
        o2,
        n_rows,
        p2.stride(0),
        n1.stride(0),
        o2.stride(0),
        D=head_dim,
        BLOCK_D=triton.next_power_of_2(head_dim),
        BITS=bits,
    )
    return out


def tq4_decompress_reference(
    packed: torch.Tensor,
    norms: torch.Tensor,
    centroids: torch.Tensor,
    *,
    head_dim: int,
    dtype: torch.dtype = torch.float16,
) -> torch.Tensor:
    """Plain-torch :func:`tq4_decompress`: ``norms * centroids[unpack(packed)]`` in ``dtype``."""
    from ..packing import unpack_indices

    bits = packed.shape[-1] * 8 // head_dim
    if norms.dim() == packed.dim():
        norms = norms.squeeze(-1)
    idx = unpack_indices(packed, bits, head_dim)
    return (centroids[idx.long()] * norms.unsqueeze(-1)).to(dtype)
