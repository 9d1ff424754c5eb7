"""Legacy fused ``Q · K^T`` from packed keys (kept small; superseded by the fused attention
kernels, which never write the score matrix).

``scores[b, h, i, j] = scale * n_j * (q_rot[b, h, i] · c[idx_j])`` with ``q_rot = q @ Pi.T``
pre-rotated by the caller, so the kernel never touches the rotation.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..validation import check_tensor
from .codebook_memo import code_table
from .compress import INTERPRET, dot, infer_bits, load_indices
from .flash_attention import check_kv_shape, check_norms, check_query

BLOCK = 16 if INTERPRET else 64


@triton.jit
def _qk_kernel(
    q_ptr,
    kp_ptr,
    kn_ptr,
    c_ptr,
    o_ptr,
    sqb,
    sqh,
    sqm,
    sqd,
    skb,
    skh,
    skn,
    snb,
    snh,
    snn,
    sob,
    soh,
    som,
    son,
    H_Q,
    GROUP,
    Q_LEN,
    KV_LEN,
    scale,
    D: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BITS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    pid_bh = tl.program_id(2)
    off_b = (pid_bh // H_Q).to(tl.int64)
    off_h = (pid_bh % H_Q).to(tl.int64)
    off_kv = off_h // GROUP
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    q = tl.load(
        q_ptr + off_b * sqb + off_h * sqh + offs_m[:, None] * sqm + offs_d[None, :] * sqd,
        mask=(offs_m[:, None] < Q_LEN) & (offs_d[None, :] < D),
        other=0.0,
    )
    mask_n = offs_n < KV_LEN
    kmask = mask_n[None, :] & (offs_d[:, None] < D)
    idx = load_indices(
        kp_ptr + off_b * skb + off_kv * skh + offs_n[None, :] * skn, offs_d[:, None], kmask, BITS
    )
    kt = tl.load(c_ptr + idx).to(q.dtype)
    norms = tl.load(kn_ptr + off_b * snb + off_kv * snh + offs_n * snn, mask=mask_n, other=0.0)
    s = dot(q, kt) * (norms * scale)[None, :]
    tl.store(
        o_ptr + off_b * sob + off_h * soh + offs_m[:, None] * som + offs_n[None, :] * son,
        s,
        mask=(offs_m[:, None] < Q_LEN) & mask_n[None, :],
    )


def fused_qk_scores(
    q_rotated: torch.Tensor,
    packed_indices: torch.Tensor,
    norms: torch.Tensor,
    centroids: torch.Tensor,
    scale: float,
    *,
    n_q_heads: int,
    n_kv_heads: int,
) -> torch.Tensor:
    """Attention scores from pre-rotated queries and packed keys.

    Args:
        q_rotated: ``[B, n_q_heads, Q, D]`` fp16/bf16, already ``q @ Pi.T``.
        packed_indices: uint8 ``[B, n_kv_heads, S, D*b/8]`` (b in 2, 3, 4 inferred).
        norms: fp32 ``[B, n_kv_heads, S]`` (or ``[..., 1]``).
        centroids: fp32 ``(2**b,)``.
        scale: score scale (typically ``1/sqrt(D)``).
        n_q_heads, n_kv_heads: head counts (``n_q_heads`` a multiple of ``n_kv_heads``).

    Returns:
        fp32 scores ``[B, n_q_heads, Q, S]``.
    """
    check_query(q_rotated)
    d = q_rotated.shape[-1]
    check_tensor("packed_indices", packed_indices, ndim=4, dtypes=(torch.uint8,), device=q_rotated.device)
    if q_rotated.shape[1] != n_q_heads or packed_indices.shape[1] != n_kv_heads:
        raise ValueError(
            f"n_q_heads={n_q_heads}, n_kv_heads={n_kv_heads} do not match q_rotated {tuple(q_rotated.shape)} "
            f"and packed_indices {tuple(packed_indices.shape)}"
        )
    check_kv_shape("packed_indices", packed_indices, q_rotated)
    if packed_indices.stride(-1) != 1:
        raise ValueError("packed_indices: the last (byte) dimension must be contiguous")
    norms = check_norms("norms", norms, packed_indices)
    check_tensor("centroids", centroids, ndim=1, dtypes=(torch.float32,), device=q_rotated.device)
    bits = infer_bits(packed_indices, d, centroids, "packed_indices")
    b, hq, ql, _ = q_rotated.shape
    s = packed_indices.shape[2]
    out = torch.empty(b, hq, ql, s, dtype=torch.float32, device=q_rotated.device)
    if out.numel() == 0:
        return out
    grid = (triton.cdiv(ql, BLOCK), triton.cdiv(s, BLOCK), b * hq)
    _qk_kernel[grid](
        q_rotated,
        packed_indices,
        norms,
        code_table(centroids),  # the packed codes index it directly
        out,
        *q_rotated.stride(),
        *packed_indices.stride()[:3],
        *norms.stride(),
        *out.stride(),
        hq,
        hq // n_kv_heads,
        ql,
        s,
        float(scale),
        D=d,
        BLOCK_D=triton.next_power_of_2(d),
        BITS=bits,
        BLOCK_M=BLOCK,
        BLOCK_N=BLOCK,
    )
    return out


def fused_qk_scores_reference(
    q_rotated: torch.Tensor,
    packed_indices: torch.Tensor,
    norms: torch.Tensor,
    centroids: torch.Tensor,
    scale: float,
    *,
    n_q_heads: int,
    n_kv_heads: int,
) -> torch.Tensor:
    """Plain torch: ``scale * q_rot @ (n * c[unpack(packed)]).T`` in fp32, KV heads repeated."""
    from ..packing import unpack_indices

    d = q_rotated.shape[-1]
    if norms.dim() == packed_indices.dim():
        norms = norms.squeeze(-1)
    idx = unpack_indices(packed_indices, packed_indices.shape[-1] * 8 // d, d)
    k_rot = (centroids[idx.long()] * norms.unsqueeze(-1)).repeat_interleave(n_q_heads // n_kv_heads, dim=1)
    return scale * (q_rotated.float() @ k_rot.transpose(-1, -2))
