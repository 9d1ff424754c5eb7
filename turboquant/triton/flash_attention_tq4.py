"""FlashAttention over TurboQuant-compressed K (and V), fused: K/V tiles are decompressed in
registers inside the attention loop (unpack bits, gather the ``2**b``-entry codebook, scale
by the fp32 norm) and never materialized in global memory.

Both work in the rotated space: the query is rotated once (``q_rot = q @ Pi.T``), so
``q · k_hat = q_rot · (n_k c[idx_k])``; with compressed V the kernel accumulates
``sum_j p_j n_j c[idx_j]`` and the output is rotated back once (``@ Pi``). The kernel is
``_attn_fwd`` of :mod:`turboquant.triton.flash_attention` with ``K_BITS``/``V_BITS`` set.
K and V bit widths (2, 3, 4) are independent and inferred from the packed widths.
"""

from __future__ import annotations

import torch

from ..validation import check_tensor
from .compress import infer_bits
from .flash_attention import (
    check_kv_shape,
    check_norms,
    check_query,
    flash_attention_reference,
    launch_attention,
)


def _check_packed(name: str, packed: object, q: torch.Tensor) -> torch.Tensor:
    check_tensor(name, packed, ndim=4, dtypes=(torch.uint8,), device=q.device)
    check_kv_shape(name, packed, q)
    if packed.stride(-1) != 1:
        raise ValueError(
            f"{name}: the last (byte) dimension must be contiguous, got strides {packed.stride()}"
        )
    return packed


def _check_codebook(name: str, c: object, q: torch.Tensor) -> torch.Tensor:
    check_tensor(name, c, ndim=1, dtypes=(torch.float32,), device=q.device)
    return c.contiguous()


def _check_rotation(rotation: object, q: torch.Tensor) -> torch.Tensor:
    d = q.shape[-1]
    check_tensor("rotation", rotation, ndim=2, dtypes=(torch.float32,), device=q.device)
    if tuple(rotation.shape) != (d, d):
        raise ValueError(f"rotation: expected shape ({d}, {d}), got {tuple(rotation.shape)}")
    return rotation


def _rotate(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``x @ matrix`` computed in fp32, returned in the dtype of ``x``."""
    return torch.matmul(x.float(), matrix).to(x.dtype)


def triton_flash_attention_tq4(
    q: torch.Tensor,
    k_packed: torch.Tensor,
    k_norms: torch.Tensor,
    centroids: torch.Tensor,
    rotation: torch.Tensor,
    v: torch.Tensor,
    sm_scale: float | None = None,
    is_causal: bool = False,
    attention_mask: torch.Tensor | None = None,
    *,
    register_lookup: bool = True,
) -> torch.Tensor:
    """Fused attention with compressed K and 16-bit V.

    Args:
        q: ``[B, H_q, Q, D]`` fp16/bf16 (original space), ``D`` in (64, 96, 128, 256).
        k_packed: uint8 ``[B, H_kv, K, D*b/8]``, b in (2, 3, 4) inferred from the width.
        k_norms: fp32 ``[B, H_kv, K]`` (or ``[..., 1]``).
        centroids: fp32 ``(2**b,)``; rotation: fp32 ``(D, D)`` ``Pi``.
        v: ``[B, H_kv, K, D]`` in the dtype of ``q``.
        sm_scale, is_causal, attention_mask: as in :func:`triton_flash_attention`.
        register_lookup: 4-bit symmetric codebooks (power-of-two ``D``) through a register
            table (byte permutes) instead of a gather from the codebook per value (default;
            H200, 8K causal: K4/V4 4.23 -> 2.80 ms). ``False`` keeps the gather (A/B timing);
            other widths, ``D = 96`` and asymmetric codebooks always take it.

    Returns:
        ``[B, H_q, Q, D]`` in the dtype of ``q``.
    """
    check_query(q)
    d = q.shape[-1]
    _check_packed("k_packed", k_packed, q)
    k_norms = check_norms("k_norms", k_norms, k_packed)
    centroids = _check_codebook("centroids", centroids, q)
    k_bits = infer_bits(k_packed, d, centroids, "k_packed")
    rotation = _check_rotation(rotation, q)
    check_tensor("v", v, ndim=4, dtypes=(q.dtype,), device=q.device)
    check_kv_shape("v", v, q, last=d)
    if tuple(v.shape[:3]) != tuple(k_packed.shape[:3]):
        raise ValueError(f"v: expected shape {tuple(k_packed.shape[:3]) + (d,)}, got {tuple(v.shape)}")
    q_rot = _rotate(q, rotation.T)
    return launch_attention(
        q_rot,
        k_packed,
        v,
        kv_len=k_packed.shape[2],
        sm_scale=sm_scale,
        is_causal=is_causal,
        attention_mask=attention_mask,
        k_norms=k_norms,
        k_centroids=centroids,
        k_bits=k_bits,
        register_lookup=register_lookup,
    )


def triton_flash_attention_tq4_kv(
    q: torch.Tensor,
    k_packed: torch.Tensor,
    k_norms: torch.Tensor,
    v_packed: torch.Tensor,
    v_norms: torch.Tensor,
    centroids: torch.Tensor,
    rotation: torch.Tensor,
    sm_scale: float | None = None,
    is_causal: bool = False,
    attention_mask: torch.Tensor | None = None,
    *,
    v_centroids: torch.Tensor | None = None,
    register_lookup: bool = True,
) -> torch.Tensor:
    """Fused attention with compressed K and V (Q pre-rotated once, output post-rotated once).

    Args:
        q: ``[B, H_q, Q, D]`` fp16/bf16, ``D`` in (64, 96, 128, 256).
        k_packed, v_packed: uint8 ``[B, H_kv, K, D*b/8]``; K and V widths (b in 2, 3, 4)
            are inferred separately.
        k_norms, v_norms: fp32 ``[B, H_kv, K]`` (or ``[..., 1]``).
        centroids: fp32 ``(2**b_k,)`` K codebook; ``v_centroids`` the V codebook
            (default: ``centroids``). rotation: fp32 ``(D, D)`` ``Pi`` shared by K and V.
        sm_scale, is_causal, attention_mask: as in :func:`triton_flash_attention`.
        register_lookup: as in :func:`triton_flash_attention_tq4`.

    Returns:
        ``[B, H_q, Q, D]`` in the dtype of ``q``.
    """
    check_query(q)
    d = q.shape[-1]
    _check_packed("k_packed", k_packed, q)
    _check_packed("v_packed", v_packed, q)
    if tuple(v_packed.shape[:3]) != tuple(k_packed.shape[:3]):
        raise ValueError(
            f"v_packed: expected leading shape {tuple(k_packed.shape[:3])} (as k_packed), "
            f"got {tuple(v_packed.shape)}"
        )
    k_norms = check_norms("k_norms", k_norms, k_packed)
    v_norms = check_norms("v_norms", v_norms, v_packed)
    centroids = _check_codebook("centroids", centroids, q)
    v_centroids = centroids if v_centroids is None else _check_codebook("v_centroids", v_centroids, q)
    k_bits = infer_bits(k_packed, d, centroids, "k_packed")
    v_bits = infer_bits(v_packed, d, v_centroids, "v_packed")
    rotation = _check_rotation(rotation, q)
    q_rot = _rotate(q, rotation.T)
    out_rot = launch_attention(
        q_rot,
        k_packed,
        v_packed,
        kv_len=k_packed.shape[2],
        sm_scale=sm_scale,
        is_causal=is_causal,
        attention_mask=attention_mask,
        k_norms=k_norms,
        v_norms=v_norms,
        k_centroids=centroids,
        v_centroids=v_centroids,
        k_bits=k_bits,
        v_bits=v_bits,
        register_lookup=register_lookup,
    )
    return _rotate(out_rot, rotation)


def _dequantize(
    packed: torch.Tensor, norms: torch.Tensor, centroids: torch.Tensor, rotation: torch.Tensor
) -> torch.Tensor:
    """Original-space fp32 reconstruction ``(n * c[idx]) @ Pi`` of packed ``[..., D*b/8]``."""
    from ..packing import unpack_indices

    d = rotation.shape[0]
    if norms.dim() == packed.dim():
        norms = norms.squeeze(-1)
    idx = unpack_indices(packed, packed.shape[-1] * 8 // d, d)
    return (centroids[idx.long()] * norms.unsqueeze(-1)) @ rotation


def flash_attention_tq4_reference(
    q, k_packed, k_norms, centroids, rotation, v, sm_scale=None, is_causal=False, attention_mask=None
) -> torch.Tensor:
    """Plain torch: dequantize K to the original space (fp32), then attention math in fp32."""
    k = _dequantize(k_packed, k_norms, centroids, rotation)
    return flash_attention_reference(q, k, v, sm_scale, is_causal, attention_mask)


def flash_attention_tq4_kv_reference(
    q,
    k_packed,
    k_norms,
    v_packed,
    v_norms,
    centroids,
    rotation,
    sm_scale=None,
    is_causal=False,
    attention_mask=None,
    *,
    v_centroids=None,
) -> torch.Tensor:
    """Plain torch: dequantize K and V to the original space (fp32), then attention math in fp32."""
    k = _dequantize(k_packed, k_norms, centroids, rotation)
    v = _dequantize(v_packed, v_norms, centroids if v_centroids is None else v_centroids, rotation)
    return flash_attention_reference(q, k, v, sm_scale, is_causal, attention_mask)
