"""Triton kernels of turboquant; every kernel sits beside its plain-torch ``*_reference``.

- :mod:`.compress`: ``tq4_compress`` / ``tq4_decompress`` (fused norm + rotate + quantize +
  pack, and unpack + gather + scale), bits 2, 3, 4, head_dim 64, 96, 128, 256.
- :mod:`.flash_attention`: ``triton_flash_attention`` (dense FlashAttention forward, GQA,
  causal, additive mask).
- :mod:`.flash_attention_tq4`: ``triton_flash_attention_tq4`` (compressed K) and
  ``triton_flash_attention_tq4_kv`` (compressed K and V), decompressing tiles in registers.
- :mod:`.fused_qk`: ``fused_qk_scores`` (legacy Q·Kᵀ from packed keys).
- :mod:`.decode`: ``tq_decode`` / ``tq_paged_decode`` (decode attention over compressed caches).
"""

from .compress import tq4_compress, tq4_compress_reference, tq4_decompress, tq4_decompress_reference
from .flash_attention import flash_attention_reference, triton_flash_attention
from .flash_attention_tq4 import (
    flash_attention_tq4_kv_reference,
    flash_attention_tq4_reference,
    triton_flash_attention_tq4,
    triton_flash_attention_tq4_kv,
)
from .fused_qk import fused_qk_scores, fused_qk_scores_reference

_DECODE_NAMES = ("tq_decode", "tq_decode_reference", "tq_paged_decode", "tq_paged_decode_reference")


def __getattr__(name: str):
    # the decode kernels load on first use, so the other kernels import without them
    if name in _DECODE_NAMES:
        from . import decode

        return getattr(decode, name)
    raise AttributeError(f"module 'turboquant.triton' has no attribute {name!r}")


__all__ = [
    "flash_attention_reference",
    "flash_attention_tq4_kv_reference",
    "flash_attention_tq4_reference",
    "fused_qk_scores",
    "fused_qk_scores_reference",
    "tq4_compress",
    "tq4_compress_reference",
    "tq4_decompress",
    "tq4_decompress_reference",
    "tq_decode",
    "tq_decode_reference",
    "tq_paged_decode",
    "tq_paged_decode_reference",
    "triton_flash_attention",
    "triton_flash_attention_tq4",
    "triton_flash_attention_tq4_kv",
]
