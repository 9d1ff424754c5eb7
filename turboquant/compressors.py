"""Compressors for KV-cache tensors of shape ``[batch, heads, seq, head_dim]``.

``TurboQuantCompressorV2`` (keys): the two-stage ``TurboQuantProd``, whose
``asymmetric_attention_scores`` estimates ``Q·Kᵀ`` without bias straight from the compressed
keys, in chunks over the key length so memory stays bounded (never a
``(B, H, Q, K, D)`` broadcast). ``TurboQuantCompressorMSE`` (values): ``TurboQuantMSE`` only,
since values need reconstruction accuracy, not inner products.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .quantizer import TurboQuantMSE, TurboQuantProd
from .validation import check_float_tensor, check_tensor

# Keys per chunk in asymmetric_attention_scores: bounds the fp32 working set to about
# _CHUNK_ELEMENTS elements per intermediate.
_CHUNK_ELEMENTS = 1 << 24


@dataclass
class CompressedKeys:
    """Compressed keys: ``indices`` uint8 ``(B, H, S, D)``, ``norms`` fp32 ``(B, H, S, 1)``,
    ``qjl_signs`` int8 ``(B, H, S, m)``, ``residual_norms`` fp32 ``(B, H, S, 1)``."""

    indices: torch.Tensor
    norms: torch.Tensor
    qjl_signs: torch.Tensor
    residual_norms: torch.Tensor
    original_dtype: torch.dtype = torch.float16


@dataclass
class CompressedValues:
    """Compressed values: ``indices`` uint8 ``(B, H, S, D)``, ``norms`` fp32 ``(B, H, S, 1)``."""

    indices: torch.Tensor
    norms: torch.Tensor
    original_dtype: torch.dtype = torch.float16


def _check_kv(name: str, x: torch.Tensor, head_dim: int) -> None:
    check_float_tensor(name, x, last_dim=head_dim)
    check_tensor(name, x, ndim=4)


class TurboQuantCompressorV2:
    """Key compressor with unbiased attention scores (TurboQuantProd, ``bits`` in total)."""

    def __init__(self, head_dim: int, bits: int = 3, seed: int = 42) -> None:
        self.quantizer = TurboQuantProd(head_dim, bits, seed)
        self.head_dim, self.bits = head_dim, bits

    def compress(self, keys: torch.Tensor) -> CompressedKeys:
        """Compress keys ``(B, H, S, D)``."""
        _check_kv("keys", keys, self.head_dim)
        self.quantizer.to(keys.device)
        q = self.quantizer.quantize(keys)
        return CompressedKeys(
            indices=q["indices"],
            norms=q["norms"].unsqueeze(-1),
            qjl_signs=q["qjl_signs"],
            residual_norms=q["residual_norms"].unsqueeze(-1),
            original_dtype=keys.dtype,
        )

    def decompress(self, compressed: CompressedKeys) -> torch.Tensor:
        """MSE-stage reconstruction ``(B, H, S, D)`` in the original dtype."""
        mse = self.quantizer.mse
        return mse.dequantize(compressed.indices, compressed.norms.squeeze(-1), compressed.original_dtype)

    def asymmetric_attention_scores(self, query: torch.Tensor, compressed: CompressedKeys) -> torch.Tensor:
        """Unbiased ``Q·Kᵀ`` logits (unscaled) from compressed keys.

        Args:
            query: ``(B, H_q, Q, D)``; ``H_q`` a multiple of the keys' heads (GQA).
            compressed: from :meth:`compress`, ``(B, H_kv, K, ·)``.

        Returns:
            fp32 ``(B, H_q, Q, K)``. Works in chunks of keys, so besides the output only
            ``O(chunk · D)`` fp32 temporaries exist.
        """
        _check_kv("query", query, self.head_dim)
        b, hq, nq, d = query.shape
        bk, hkv, nk, _ = compressed.indices.shape
        if bk != b or hq % hkv:
            raise ValueError(
                f"query: expected batch {bk} and a multiple of {hkv} heads (the keys'), "
                f"got shape {tuple(query.shape)}"
            )
        group = hq // hkv
        mse, s = self.quantizer.mse, self.quantizer.qjl_matrix
        # Queries of one KV group become extra rows: (B, H_kv, group*Q, D).
        qg = query.float().reshape(b, hkv, group * nq, d)
        sq = qg @ s.T  # (B, H_kv, group*Q, m), computed once
        # <q, n c[idx] Pi> = <q Pi^T, n c[idx]>: rotate the queries once, never the keys.
        q_rot = qg @ mse.rotation.T
        scale = math.sqrt(math.pi / 2) / self.quantizer.qjl_dim
        out = torch.empty(b, hkv, group * nq, nk, dtype=torch.float32, device=query.device)
        chunk = max(1, _CHUNK_ELEMENTS // max(1, b * hkv * d))
        for start in range(0, nk, chunk):
            sl = slice(start, start + chunk)
            k_rot = mse.dequantize_rotated(compressed.indices[:, :, sl], compressed.norms[:, :, sl, 0])
            scores = q_rot @ k_rot.transpose(-1, -2)
            qjl = sq @ compressed.qjl_signs[:, :, sl].float().transpose(-1, -2)
            out[..., sl] = scores + qjl * (scale * compressed.residual_norms[:, :, sl, 0]).unsqueeze(-2)
        return out.reshape(b, hq, nq, nk)


class TurboQuantCompressorMSE:
    """Value compressor: TurboQuantMSE at ``bits`` per coordinate."""

    def __init__(self, head_dim: int, bits: int = 3, seed: int = 42) -> None:
        self.quantizer = TurboQuantMSE(head_dim, bits, seed)
        self.head_dim, self.bits = head_dim, bits

    def compress(self, values: torch.Tensor) -> CompressedValues:
        """Compress values ``(B, H, S, D)``."""
        _check_kv("values", values, self.head_dim)
        self.quantizer.to(values.device)
        idx, norms = self.quantizer.quantize(values)
        return CompressedValues(indices=idx, norms=norms.unsqueeze(-1), original_dtype=values.dtype)

    def decompress(self, compressed: CompressedValues) -> torch.Tensor:
        """Reconstruct values ``(B, H, S, D)`` in the original dtype."""
        return self.quantizer.dequantize(
            compressed.indices, compressed.norms.squeeze(-1), compressed.original_dtype
        )
