"""The storage calculator: bytes of a TurboQuant KV cache against a 16-bit one.

One token of one KV head stores, for K and for V, ``ceil(d*bits/8)`` bytes of packed indices
plus a 4-byte fp32 norm (docs/ARCHITECTURE.md). With d=128: K4/V4 → 136 bytes against 512 for
bf16 (3.76×), K3/V3 → 104 bytes (4.92×), K4/V3 → 120 bytes (4.27×).
"""

from __future__ import annotations

from .packing import packed_nbytes
from .validation import check_head_dim

NORM_BYTES = 4  # fp32: fp16 norms flip logits after ~10K tokens x 36 layers


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected an int >= 0, got {value!r}")
    return value


def record_bytes(head_dim: int, bits: int) -> int:
    """Bytes of one vector (one token, one head, K or V): packed indices + fp32 norm."""
    check_head_dim(head_dim)
    return packed_nbytes(head_dim, bits) + NORM_BYTES


def token_bytes(head_dim: int, k_bits: int, v_bits: int, num_kv_heads: int = 1) -> int:
    """Bytes of one token's compressed K and V over ``num_kv_heads`` heads."""
    _check_count("num_kv_heads", num_kv_heads)
    return num_kv_heads * (record_bytes(head_dim, k_bits) + record_bytes(head_dim, v_bits))


def baseline_token_bytes(head_dim: int, num_kv_heads: int = 1, dtype_bytes: int = 2) -> int:
    """Bytes of one token's uncompressed K and V (16-bit by default)."""
    check_head_dim(head_dim)
    _check_count("num_kv_heads", num_kv_heads)
    if dtype_bytes not in (1, 2, 4):
        raise ValueError(f"dtype_bytes: expected 1, 2 or 4, got {dtype_bytes!r}")
    return 2 * num_kv_heads * head_dim * dtype_bytes


def compression_ratio(head_dim: int, k_bits: int, v_bits: int, dtype_bytes: int = 2) -> float:
    """16-bit bytes / TurboQuant bytes for K+V (independent of heads, layers and tokens)."""
    return baseline_token_bytes(head_dim, 1, dtype_bytes) / token_bytes(head_dim, k_bits, v_bits)


def kv_cache_bytes(
    num_tokens: int,
    num_layers: int,
    num_kv_heads: int,
    head_dim: int,
    k_bits: int | None = None,
    v_bits: int | None = None,
    dtype_bytes: int = 2,
) -> int:
    """Total KV-cache bytes of a model for ``num_tokens`` tokens (per sequence).

    With ``k_bits``/``v_bits`` left ``None`` it is the uncompressed cache.
    """
    _check_count("num_tokens", num_tokens)
    _check_count("num_layers", num_layers)
    if (k_bits is None) != (v_bits is None):
        raise ValueError(f"k_bits and v_bits: give both or neither, got {k_bits!r} and {v_bits!r}")
    if k_bits is None:
        per_token = baseline_token_bytes(head_dim, num_kv_heads, dtype_bytes)
    else:
        per_token = token_bytes(head_dim, k_bits, v_bits, num_kv_heads)
    return num_tokens * num_layers * per_token


def max_context_tokens(
    memory_bytes: int,
    num_layers: int,
    num_kv_heads: int,
    head_dim: int,
    k_bits: int | None = None,
    v_bits: int | None = None,
    dtype_bytes: int = 2,
) -> int:
    """How many tokens of KV cache fit in ``memory_bytes`` (per sequence)."""
    _check_count("memory_bytes", memory_bytes)
    per_token = kv_cache_bytes(1, num_layers, num_kv_heads, head_dim, k_bits, v_bits, dtype_bytes)
    return memory_bytes // per_token if per_token else 0
