"""FlashAttention forward in Triton, over 16-bit or TurboQuant-compressed K/V.

One kernel, ``_attn_fwd``, serves the three public entry points: ``K_BITS``/``V_BITS`` are 0
for a dense 16-bit tensor, or 2/3/4 for packed indices + fp32 norms that are decompressed
tile by tile in registers (unpack, centroid gather, norm scale) and never written back to
global memory. ``triton_flash_attention`` (here) is the dense case; the compressed cases live
in :mod:`turboquant.triton.flash_attention_tq4`.

Features: online softmax in fp32 (exp2 domain), GQA without repeating K/V (query head ``h``
reads KV head ``h // (H_q / H_kv)``), causal masking with queries aligned to the *end* of the
keys (``q_len <= kv_len``: decode and chunked prefill, as Hugging Face does), causal block
skipping, an additive mask ``[B or 1, 1 or H_q, Q, K]``. Rows whose keys are all masked out
return zeros.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ..packing import code_order
from ..validation import check_head_dim, check_tensor
from .codebook_memo import code_table, is_symmetric, per_codebook
from .compress import INTERPRET, SUPPORTED_HEAD_DIMS, dot
from .decode import _dequant4_sym, _interleave8

ATTN_DTYPES = (torch.float16, torch.bfloat16)
_INTERPRET_TILE = tl.constexpr(INTERPRET)
# the register lookup's values leave the lookup as fp16 pairs (decode._SYM4_PAIR_ASM); False
# pairs single halves afterwards (bench_kernels' `[...,halves]` rows). Static report (Triton
# 3.6, sm_90a) at the winning config (BLOCK_M 64, BLOCK_N 128, 4 warps): 1814 -> 1687 loop
# instructions per tile; H200: 1.01-1.03x, same outputs (session 14). The asm stays pure here
# (``_dequant4_sym``'s PAIR 1): the impure one the decode kernels take (decode.PAIR_OPAQUE)
# gives this kernel 1640 instead of 1687 loop instructions but 140 instead of 12 bytes of
# spills, and measured slower on an H200 (session 19, 8K: 2716 against 2601 µs; 16K: 8875
# against 8444).
PAIR_LOOKUP = True
# causal launches list the programs heads first (every head's last query block, then every
# head's second-to-last, ...), so the longest programs of all heads start first; False: query
# blocks first within each head (the order before session 37; A/B in its docs/results)
HEADS_FIRST = False
LOG2E = 1.4426950408889634

# Autotune configs, in one place (BLOCK_M, BLOCK_N, num_warps, num_stages). The interpreter
# gets one small config (tests stay fast). 256-wide heads get their own, smaller tiles.
if INTERPRET:
    ATTN_CONFIGS = [triton.Config({"BLOCK_M": 16, "BLOCK_N": 16}, num_warps=4)]
    ATTN_CONFIGS_D256 = ATTN_CONFIGS
else:
    ATTN_CONFIGS = [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
        for bm, bn, w, s in [
            (128, 64, 8, 3),
            (128, 64, 8, 2),
            (128, 128, 8, 2),
            (128, 32, 8, 3),
            (128, 64, 4, 3),
            (64, 64, 4, 3),
            (64, 128, 4, 2),
            (64, 32, 4, 2),
            (16, 64, 4, 3),
        ]
    ]
    ATTN_CONFIGS_D256 = [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
        for bm, bn, w, s in [(64, 32, 4, 2), (64, 64, 8, 2), (16, 32, 4, 1)]
    ]


def _prune_configs(configs, named_args, **kwargs):
    # tiles no taller than the queries (decode gets 16-row tiles, prefill 64 or 128)
    args = {**named_args, **kwargs}
    q_bucket = args["Q_BUCKET"]
    if args["BLOCK_D"] >= 256:
        configs = ATTN_CONFIGS_D256
    keep = [
        c
        for c in configs
        if c.kwargs["BLOCK_M"] <= max(q_bucket, 16) and (c.kwargs["BLOCK_M"] >= 64 or q_bucket < 64)
    ]
    return keep or configs[-1:]


@triton.jit
def _load_bytes(ptrs, offs_n, offs_g, KV_LEN, NG: tl.constexpr, MASK_N: tl.constexpr, MASK_G: tl.constexpr):
    """uint8 loads as int32, masked only where needed (unmasked loads vectorize)."""
    if MASK_N and MASK_G:
        b = tl.load(ptrs, mask=(offs_n[:, None] < KV_LEN) & (offs_g[None, :] < NG), other=0)
    elif MASK_N:
        b = tl.load(ptrs, mask=(offs_n[:, None] < KV_LEN), other=0)
    elif MASK_G:
        b = tl.load(ptrs, mask=(offs_g[None, :] < NG), other=0)
    else:
        b = tl.load(ptrs)
    return b.to(tl.int32)


@triton.jit
def _codebook_tile(
    base,
    offs_n,
    sn,
    cb_ptr,
    KV_LEN,
    D: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BITS: tl.constexpr,
    MASK_N: tl.constexpr,
    DTYPE: tl.constexpr,
    PAIR: tl.constexpr,
):
    """Decompress ``[BLOCK_N, BLOCK_D]`` codebook values ``cb[idx]`` of packed rows
    ``base + n * sn`` (bytes contiguous) in registers.

    The bytes of each packing group (2, 4 or 8 indices in 1, 1 or 3 bytes) are read as one
    coalesced tile, each index position of the group becomes its own "plane" tile, the planes
    are interleaved back into coordinate order with ``tl.join`` and looked up in the codebook.
    Padded coordinates (``D < BLOCK_D``) get ``cb[0]``; callers zero them on the query side.

    An int32 ``cb_ptr`` selects the register lookup (4 bits, symmetric codebook, ``D ==
    BLOCK_D``; see :func:`register_lookup_table`): rows are read as int32 words of 8 indices
    and mapped by the decode kernel's ``_SYM4_ASM`` (no memory access per value); under the
    interpreter the same words go through a gather from the codebook copy after the table."""
    if cb_ptr.dtype.element_ty == tl.int32:
        tile = _register_tile(base, offs_n, sn, cb_ptr, KV_LEN, D, BLOCK_N, MASK_N, DTYPE, PAIR)
    else:
        tile = _gather_tile(base, offs_n, sn, cb_ptr, KV_LEN, D, BLOCK_D, BLOCK_N, BITS, MASK_N)
    return tile


@triton.jit
def _register_tile(
    base,
    offs_n,
    sn,
    cb_ptr,
    KV_LEN,
    D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    MASK_N: tl.constexpr,
    DTYPE: tl.constexpr,
    PAIR: tl.constexpr,
):
    """4-bit rows as int32 words through the register table (see :func:`_codebook_tile`;
    ``PAIR``: the lookup's values leave it as fp16 pairs, see ``decode._dequant4_sym``)."""
    offs_w = tl.arange(0, D // 8)
    words = (base + offs_n[:, None] * sn).to(tl.pointer_type(tl.int32)) + offs_w[None, :]
    if MASK_N:
        w = tl.load(words, mask=offs_n[:, None] < KV_LEN, other=0)
    else:
        w = tl.load(words)
    if _INTERPRET_TILE:
        cb = (cb_ptr + 4).to(tl.pointer_type(DTYPE))
        return _interleave8(
            tl.load(cb + (w & 0xF)),
            tl.load(cb + ((w >> 4) & 0xF)),
            tl.load(cb + ((w >> 8) & 0xF)),
            tl.load(cb + ((w >> 12) & 0xF)),
            tl.load(cb + ((w >> 16) & 0xF)),
            tl.load(cb + ((w >> 20) & 0xF)),
            tl.load(cb + ((w >> 24) & 0xF)),
            tl.load(cb + ((w >> 28) & 0xF)),
            BLOCK_N,
            D,
        )
    else:
        t2, t3 = tl.load(cb_ptr), tl.load(cb_ptr + 1)
        t6, t7 = tl.load(cb_ptr + 2), tl.load(cb_ptr + 3)
        return _dequant4_sym(w, t2, t3, t6, t7, D, BLOCK_N, PAIR).to(DTYPE, bitcast=True)


@triton.jit
def _gather_tile(
    base,
    offs_n,
    sn,
    cb_ptr,
    KV_LEN,
    D: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BITS: tl.constexpr,
    MASK_N: tl.constexpr,
):
    """Unpack index planes and gather the codebook per value (see :func:`_codebook_tile`)."""
    GSIZE: tl.constexpr = 8 if BITS == 3 else 8 // BITS
    NG: tl.constexpr = D // GSIZE
    offs_g = tl.arange(0, BLOCK_D // GSIZE)
    MASK_G: tl.constexpr = D != BLOCK_D
    M: tl.constexpr = (1 << BITS) - 1
    if BITS == 3:
        ptrs = base + offs_n[:, None] * sn + offs_g[None, :] * 3
        w = _load_bytes(ptrs, offs_n, offs_g, KV_LEN, NG, MASK_N, MASK_G)
        w |= _load_bytes(ptrs + 1, offs_n, offs_g, KV_LEN, NG, MASK_N, MASK_G) << 8
        w |= _load_bytes(ptrs + 2, offs_n, offs_g, KV_LEN, NG, MASK_N, MASK_G) << 16
        # join(a, b)[..., t] = (a, b)[t]; three joins flatten to position 4*t1 + 2*t2 + t3
        lo = tl.join(tl.join(w & M, (w >> 12) & M), tl.join((w >> 6) & M, (w >> 18) & M))
        hi = tl.join(tl.join((w >> 3) & M, (w >> 15) & M), tl.join((w >> 9) & M, (w >> 21) & M))
        idx = tl.join(lo, hi)
    else:
        w = _load_bytes(
            base + offs_n[:, None] * sn + offs_g[None, :], offs_n, offs_g, KV_LEN, NG, MASK_N, MASK_G
        )
        if BITS == 4:
            idx = tl.join(w & M, w >> 4)
        else:
            idx = tl.join(tl.join(w & M, (w >> 4) & M), tl.join((w >> 2) & M, w >> 6))
    # the lookup comes last: the MMA operand is a (gather) load, which every Triton lowers well
    return tl.load(cb_ptr + tl.reshape(idx, (BLOCK_N, BLOCK_D)))


@triton.jit
def _load_tile(
    base,
    nbase,
    cb_ptr,
    offs_n,
    offs_d,
    sn,
    sd,
    snn,
    KV_LEN,
    TRANS: tl.constexpr,
    D: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BITS: tl.constexpr,
    BOUNDARY: tl.constexpr,
    DTYPE: tl.constexpr,
    PAIR: tl.constexpr,
):
    """One K or V tile: ``[BLOCK_N, BLOCK_D]``, or ``[BLOCK_D, BLOCK_N]`` with ``TRANS`` (K^T),
    and the per-key scale (the fp32 norm of compressed rows; unused when dense). Loads are
    masked only where the tile crosses the end of the keys or D is padded."""
    if BITS == 0:
        if TRANS:
            n2, d2 = offs_n[None, :], offs_d[:, None]
        else:
            n2, d2 = offs_n[:, None], offs_d[None, :]
        if BOUNDARY or D != BLOCK_D:
            tile = tl.load(base + n2 * sn + d2 * sd, mask=(n2 < KV_LEN) & (d2 < D), other=0.0)
        else:
            tile = tl.load(base + n2 * sn + d2 * sd)
        scale = tl.full(offs_n.shape, 1.0, tl.float32)
    else:
        tile = _codebook_tile(
            base, offs_n, sn, cb_ptr, KV_LEN, D, BLOCK_D, BLOCK_N, BITS, BOUNDARY, DTYPE, PAIR
        )
        if TRANS:
            tile = tl.trans(tile)
        if BOUNDARY:
            scale = tl.load(nbase + offs_n * snn, mask=offs_n < KV_LEN, other=0.0)
        else:
            scale = tl.load(nbase + offs_n * snn)
    return tile, scale


@triton.jit
def _attn_inner(
    acc,
    l_i,
    m_i,
    q,
    lo,
    hi,
    offs_m,
    offs_d,
    causal_off,
    k_base,
    v_base,
    kn_base,
    vn_base,
    kc_ptr,
    vc_ptr,
    mask_base,
    skn,
    skd,
    svn,
    svd,
    sknn,
    svnn,
    smm,
    smn,
    KV_LEN,
    qk_scale,
    D: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    K_BITS: tl.constexpr,
    V_BITS: tl.constexpr,
    HAS_MASK: tl.constexpr,
    BOUNDARY: tl.constexpr,
    IS_CAUSAL: tl.constexpr,
    DTYPE: tl.constexpr,
    PAIR: tl.constexpr,
):
    """Online-softmax update over key blocks ``[lo, hi)``. ``BOUNDARY`` blocks need the
    causal / sequence-end masks; the others are fully visible."""
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        offs_n = start_n + tl.arange(0, BLOCK_N)
        kt, kscale = _load_tile(
            k_base,
            kn_base,
            kc_ptr,
            offs_n,
            offs_d,
            skn,
            skd,
            sknn,
            KV_LEN,
            True,
            D,
            BLOCK_D,
            BLOCK_N,
            K_BITS,
            BOUNDARY,
            DTYPE,
            PAIR,
        )
        if K_BITS == 0:
            qk = dot(q, kt) * qk_scale
        else:
            qk = dot(q, kt) * (kscale * qk_scale)[None, :]
        if HAS_MASK:
            am = tl.load(
                mask_base + offs_m[:, None] * smm + offs_n[None, :] * smn,
                mask=(offs_n < KV_LEN)[None, :],
                other=0.0,
            )
            am = am.to(tl.float32)
            # HF masks use finfo.min, which overflows to -inf once scaled by log2(e): clamp so
            # such rows stay finite (uniform, as in eager attention); true -inf stays -inf
            qk += tl.where(am == float("-inf"), am, tl.maximum(am, -2.0e38) * 1.4426950408889634)
        if BOUNDARY:
            keep = (offs_n < KV_LEN)[None, :]
            if IS_CAUSAL:
                keep = keep & (offs_n[None, :] <= offs_m[:, None] + causal_off)
            qk = tl.where(keep, qk, float("-inf"))
        m_ij = tl.maximum(m_i, tl.max(qk, 1))
        m_safe = tl.where(m_ij == float("-inf"), 0.0, m_ij)  # fully masked so far: avoid inf - inf
        p = tl.math.exp2(qk - m_safe[:, None])
        alpha = tl.math.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, 1)
        v, vscale = _load_tile(
            v_base,
            vn_base,
            vc_ptr,
            offs_n,
            offs_d,
            svn,
            svd,
            svnn,
            KV_LEN,
            False,
            D,
            BLOCK_D,
            BLOCK_N,
            V_BITS,
            BOUNDARY,
            DTYPE,
            PAIR,
        )
        if V_BITS != 0:
            p = p * vscale[None, :]
        acc = dot(p.to(DTYPE), v, acc * alpha[:, None])
        m_i = m_ij
    return acc, l_i, m_i


@triton.autotune(
    configs=ATTN_CONFIGS,
    key=["Q_BUCKET", "KV_BUCKET", "BLOCK_D", "K_BITS", "V_BITS", "IS_CAUSAL", "HAS_MASK", "PAIR"],
    prune_configs_by={"early_config_prune": _prune_configs},
)
@triton.jit
def _attn_fwd(
    q_ptr,
    k_ptr,
    v_ptr,
    kn_ptr,
    vn_ptr,
    kc_ptr,
    vc_ptr,
    mask_ptr,
    o_ptr,
    sqb,
    sqh,
    sqm,
    sqd,
    skb,
    skh,
    skn,
    skd,
    svb,
    svh,
    svn,
    svd,
    sknb,
    sknh,
    sknn,
    svnb,
    svnh,
    svnn,
    smb,
    smh,
    smm,
    smn,
    sob,
    soh,
    som,
    sod,
    H_Q,
    GROUP,
    Q_LEN,
    KV_LEN,
    sm_scale,
    Q_BUCKET,
    KV_BUCKET,
    D: tl.constexpr,
    BLOCK_D: tl.constexpr,
    K_BITS: tl.constexpr,
    V_BITS: tl.constexpr,
    IS_CAUSAL: tl.constexpr,
    HAS_MASK: tl.constexpr,
    PAIR: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HEADS_FIRST: tl.constexpr = False,
):
    if HEADS_FIRST:  # grid (heads, query blocks): see the module's HEADS_FIRST
        start_m = tl.num_programs(1) - 1 - tl.program_id(1)
        pid_bh = tl.program_id(0)
    else:
        start_m = tl.program_id(0)
        if IS_CAUSAL:  # longest query blocks (most keys) first: better tail balance
            start_m = tl.num_programs(0) - 1 - start_m
        pid_bh = tl.program_id(1)
    off_b = (pid_bh // H_Q).to(tl.int64)
    off_h = (pid_bh % H_Q).to(tl.int64)
    off_kv = off_h // GROUP
    DTYPE = q_ptr.dtype.element_ty

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    q = tl.load(
        q_ptr + off_b * sqb + off_h * sqh + offs_m[:, None] * sqm + offs_d[None, :] * sqd,
        mask=(offs_m[:, None] < Q_LEN) & (offs_d[None, :] < D),
        other=0.0,
    )
    k_base = k_ptr + off_b * skb + off_kv * skh
    v_base = v_ptr + off_b * svb + off_kv * svh
    kn_base = kn_ptr + off_b * sknb + off_kv * sknh
    vn_base = vn_ptr + off_b * svnb + off_kv * svnh
    mask_base = mask_ptr + off_b * smb + off_h * smh

    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    qk_scale = sm_scale * 1.4426950408889634

    # Blocks [0, full_end) are visible to every row of this query block; [full_end, hi) need
    # masks (causal diagonal and/or the ragged end of the keys); blocks past hi are skipped.
    causal_off = KV_LEN - Q_LEN
    full_end = (KV_LEN // BLOCK_N) * BLOCK_N
    hi = KV_LEN
    if IS_CAUSAL:
        full_end = tl.minimum(full_end, (start_m * BLOCK_M + causal_off + 1) // BLOCK_N * BLOCK_N)
        hi = tl.minimum(KV_LEN, start_m * BLOCK_M + BLOCK_M + causal_off)
    acc, l_i, m_i = _attn_inner(
        acc,
        l_i,
        m_i,
        q,
        0,
        full_end,
        offs_m,
        offs_d,
        causal_off,
        k_base,
        v_base,
        kn_base,
        vn_base,
        kc_ptr,
        vc_ptr,
        mask_base,
        skn,
        skd,
        svn,
        svd,
        sknn,
        svnn,
        smm,
        smn,
        KV_LEN,
        qk_scale,
        D,
        BLOCK_D,
        BLOCK_N,
        K_BITS,
        V_BITS,
        HAS_MASK,
        False,
        IS_CAUSAL,
        DTYPE,
        PAIR,
    )
    acc, l_i, m_i = _attn_inner(
        acc,
        l_i,
        m_i,
        q,
        full_end,
        hi,
        offs_m,
        offs_d,
        causal_off,
        k_base,
        v_base,
        kn_base,
        vn_base,
        kc_ptr,
        vc_ptr,
        mask_base,
        skn,
        skd,
        svn,
        svd,
        sknn,
        svnn,
        smm,
        smn,
        KV_LEN,
        qk_scale,
        D,
        BLOCK_D,
        BLOCK_N,
        K_BITS,
        V_BITS,
        HAS_MASK,
        True,
        IS_CAUSAL,
        DTYPE,
        PAIR,
    )
    l_i = tl.where(l_i == 0.0, 1.0, l_i)
    out = acc / l_i[:, None]
    tl.store(
        o_ptr + off_b * sob + off_h * soh + offs_m[:, None] * som + offs_d[None, :] * sod,
        out.to(o_ptr.dtype.element_ty),
        mask=(offs_m[:, None] < Q_LEN) & (offs_d[None, :] < D),
    )


# --------------------------------------------------------------------------- host side


def check_device(name: str, t: torch.Tensor) -> None:
    """Kernels run on CUDA tensors, or on CPU tensors under ``TRITON_INTERPRET=1``."""
    if t.device.type != "cuda" and not (INTERPRET and t.device.type == "cpu"):
        raise ValueError(
            f"{name}: expected a CUDA tensor (or a CPU tensor with TRITON_INTERPRET=1), got one on {t.device}"
        )


def check_query(q: object) -> torch.Tensor:
    check_tensor("q", q, ndim=4, dtypes=ATTN_DTYPES)
    check_device("q", q)
    check_head_dim(q.shape[-1], SUPPORTED_HEAD_DIMS, name="q.shape[-1] (head_dim)")
    return q


def check_kv_shape(name: str, t: torch.Tensor, q: torch.Tensor, last: int | None = None) -> None:
    """``t`` is ``[B, H_kv, S, last]`` with ``B`` of ``q`` and ``H_q`` a multiple of ``H_kv``."""
    if t.dim() != 4 or t.shape[0] != q.shape[0] or (last is not None and t.shape[-1] != last):
        want = f"[{q.shape[0]}, H_kv, S, {last if last is not None else 'n'}]"
        raise ValueError(f"{name}: expected shape {want}, got {tuple(t.shape)}")
    if t.shape[1] == 0 or q.shape[1] % t.shape[1] != 0:
        raise ValueError(f"{name}: query heads ({q.shape[1]}) must be a multiple of KV heads ({t.shape[1]})")


def check_norms(name: str, norms: object, like: torch.Tensor) -> torch.Tensor:
    """fp32 norms ``[B, H_kv, S]`` (``[B, H_kv, S, 1]`` accepted) matching ``like``'s leading dims."""
    check_tensor(name, norms, ndim=(3, 4), dtypes=(torch.float32,), device=like.device)
    if norms.dim() == 4:
        if norms.shape[-1] != 1:
            raise ValueError(
                f"{name}: expected shape [B, H_kv, S] or [B, H_kv, S, 1], got {tuple(norms.shape)}"
            )
        norms = norms.squeeze(-1)
    if tuple(norms.shape) != tuple(like.shape[:3]):
        raise ValueError(f"{name}: expected shape {tuple(like.shape[:3])}, got {tuple(norms.shape)}")
    return norms


def prepare_mask(attention_mask: object, q: torch.Tensor, kv_len: int) -> torch.Tensor | None:
    """Additive float mask broadcastable as ``[B, H_q, Q, K]`` (bool masks: True = attend)."""
    if attention_mask is None:
        return None
    check_tensor("attention_mask", attention_mask, ndim=4, device=q.device)
    b, h, ql = q.shape[0], q.shape[1], q.shape[2]
    mb, mh, mq, mk = attention_mask.shape
    if mb not in (1, b) or mh not in (1, h) or (mq, mk) != (ql, kv_len):
        raise ValueError(
            f"attention_mask: expected shape [{b} or 1, {h} or 1, {ql}, {kv_len}], "
            f"got {tuple(attention_mask.shape)}"
        )
    if attention_mask.dtype == torch.bool:
        attention_mask = torch.zeros((), dtype=torch.float32, device=q.device).masked_fill(
            ~attention_mask, float("-inf")
        )
    elif not attention_mask.dtype.is_floating_point:
        raise TypeError(
            f"attention_mask: expected a float (additive) or bool mask, got {attention_mask.dtype}"
        )
    return attention_mask.expand(b, h, ql, kv_len)


def register_lookup_table(centroids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """int32 ``[12]``: the register table of a symmetric 4-bit codebook (sorted ``centroids``)
    in ``dtype`` (words 0-3: low bytes of the positive entries ``c[8..11]``, ``c[12..15]``, then
    their high bytes, as ``_SYM4_ASM`` takes them), followed by the 16 entries in ``dtype`` in
    code order (the interpreter's gather; ``turboquant.packing``). Built with device ops, no
    host sync."""
    c = code_order(centroids).to(dtype).contiguous()  # entries 8..15 stay where they were
    bits = c.view(torch.int16).to(torch.int64) & 0xFFFF
    pos = bits[8:].view(2, 4)  # entries 8-11 and 12-15
    shift = torch.arange(4, device=c.device) * 8
    lo = ((pos & 0xFF) << shift).sum(1)
    hi = ((pos >> 8) << shift).sum(1)
    words = torch.cat([lo, hi])
    words = torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)
    return torch.cat([words, c.view(torch.int32)])


def _codebook_arg(centroids, bits: int, q: torch.Tensor, register_lookup: bool):
    """What the kernel's ``kc_ptr``/``vc_ptr`` get: the register table (int32) where the
    register lookup applies, else the codebook in the query dtype and code order (gathered per
    value)."""
    d = q.shape[-1]
    if register_lookup and bits == 4 and d == triton.next_power_of_2(d) and is_symmetric(centroids):
        # built once per codebook tensor and dtype, not per call
        dtype = q.dtype
        return per_codebook(centroids, ("register_table", dtype), lambda c: register_lookup_table(c, dtype))
    return code_table(centroids, q.dtype)


def launch_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    kv_len: int,
    sm_scale: float | None,
    is_causal: bool,
    attention_mask: torch.Tensor | None,
    k_norms: torch.Tensor | None = None,
    v_norms: torch.Tensor | None = None,
    k_centroids: torch.Tensor | None = None,
    v_centroids: torch.Tensor | None = None,
    k_bits: int = 0,
    v_bits: int = 0,
    register_lookup: bool = False,
) -> torch.Tensor:
    """Launch ``_attn_fwd`` on validated inputs (K/V dense, or packed with norms + centroids).
    ``register_lookup``: 4-bit symmetric codebooks through the register table instead of
    per-value gathers (the compressed entry points default to it)."""
    b, hq, ql, d = q.shape
    if is_causal and ql > kv_len:
        raise ValueError(
            f"is_causal=True needs q_len <= kv_len (queries are aligned to the end of the keys), "
            f"got q_len {ql} > kv_len {kv_len}"
        )
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(d)
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    if ql == 0:
        return out
    mask = prepare_mask(attention_mask, q, kv_len)
    dummy = q  # placeholder pointer for absent tensors (never read: constexpr flags)
    kn = k_norms if k_norms is not None else dummy.new_zeros(1, 1, 1, dtype=torch.float32)
    vn = v_norms if v_norms is not None else dummy.new_zeros(1, 1, 1, dtype=torch.float32)
    m = mask if mask is not None else dummy
    heads_first = HEADS_FIRST and bool(is_causal)
    if heads_first:
        grid = lambda meta: (b * hq, triton.cdiv(ql, meta["BLOCK_M"]))  # noqa: E731
    else:
        grid = lambda meta: (triton.cdiv(ql, meta["BLOCK_M"]), b * hq)  # noqa: E731
    _attn_fwd[grid](
        q,
        k,
        v,
        kn,
        vn,
        # codebooks as tables in the query dtype: the tile lookups yield MMA operands directly
        _codebook_arg(k_centroids, k_bits, q, register_lookup) if k_centroids is not None else kn,
        _codebook_arg(v_centroids, v_bits, q, register_lookup) if v_centroids is not None else vn,
        m,
        out,
        *q.stride(),
        *k.stride(),
        *v.stride(),
        *kn.stride()[:3],
        *vn.stride()[:3],
        *(m.stride() if mask is not None else (0, 0, 0, 0)),
        *out.stride(),
        hq,
        hq // k.shape[1],
        ql,
        kv_len,
        float(sm_scale),
        min(triton.next_power_of_2(ql), 128),  # autotune buckets: query and key lengths
        min(max(triton.next_power_of_2(kv_len), 1024), 16384),
        D=d,
        BLOCK_D=triton.next_power_of_2(d),
        K_BITS=k_bits,
        V_BITS=v_bits,
        IS_CAUSAL=bool(is_causal),
        HAS_MASK=mask is not None,
        PAIR=1 if PAIR_LOOKUP else 0,  # the pure asm: see the note at PAIR_LOOKUP
        HEADS_FIRST=heads_first,
    )
    return out


def triton_flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    sm_scale: float | None = None,
    is_causal: bool = False,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """FlashAttention forward (Triton) with GQA, causal masking and an additive mask.

    Args:
        q: ``[B, H_q, Q, D]`` fp16/bf16, ``D`` in (64, 96, 128, 256); any strides.
        k, v: ``[B, H_kv, K, D]``, same dtype and device, ``H_q`` a multiple of ``H_kv``.
        sm_scale: softmax scale, default ``1/sqrt(D)``.
        is_causal: causal mask with queries aligned to the end of the keys (needs ``Q <= K``).
        attention_mask: optional additive float mask (or bool, True = attend) of shape
            ``[B or 1, H_q or 1, Q, K]``.

    Returns:
        ``[B, H_q, Q, D]`` in the dtype of ``q`` (contiguous).
    """
    check_query(q)
    d = q.shape[-1]
    for name, t in (("k", k), ("v", v)):
        check_tensor(name, t, ndim=4, dtypes=(q.dtype,), device=q.device)
        check_kv_shape(name, t, q, last=d)
    if k.shape != v.shape:
        raise ValueError(f"k, v: expected equal shapes, got {tuple(k.shape)} and {tuple(v.shape)}")
    return launch_attention(
        q, k, v, kv_len=k.shape[2], sm_scale=sm_scale, is_causal=is_causal, attention_mask=attention_mask
    )


def flash_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    sm_scale: float | None = None,
    is_causal: bool = False,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Plain-torch attention in fp32 (the spec of :func:`triton_flash_attention`).

    GQA by repeating K/V heads, causal mask aligned to the end of the keys, additive (or bool)
    mask; rows with every key masked return zeros. Output in the dtype of ``q``.
    """
    d = q.shape[-1]
    group = q.shape[1] // k.shape[1]
    kf = k.float().repeat_interleave(group, dim=1)
    vf = v.float().repeat_interleave(group, dim=1)
    scores = (q.float() @ kf.transpose(-1, -2)) * (sm_scale if sm_scale is not None else 1.0 / math.sqrt(d))
    ql, kl = q.shape[2], k.shape[2]
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, float("-inf"))
        else:
            scores = scores + attention_mask.float()
    if is_causal:
        keep = torch.ones(ql, kl, dtype=torch.bool, device=q.device).tril(kl - ql)
        scores = scores.masked_fill(~keep, float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # all-masked rows -> zeros
    return (probs @ vf).to(q.dtype)
