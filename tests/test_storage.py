"""The storage calculator against hand-computed byte counts (DESIGN.md)."""

import pytest

from turboquant import (
    baseline_token_bytes,
    compression_ratio,
    kv_cache_bytes,
    max_context_tokens,
    token_bytes,
)


def test_design_figures():
    assert token_bytes(128, 4, 4) == 136 and baseline_token_bytes(128) == 512
    assert compression_ratio(128, 4, 4) == pytest.approx(512 / 136)  # 3.76x
    assert round(compression_ratio(128, 4, 4), 2) == 3.76
    assert token_bytes(128, 3, 3) == 104 and round(compression_ratio(128, 3, 3), 2) == 4.92
    assert token_bytes(128, 2, 2) == 72 and round(compression_ratio(128, 2, 2), 1) == 7.1
    assert token_bytes(128, 4, 3) == 68 + 52
    assert token_bytes(128, 4, 4, num_kv_heads=8) == 8 * 136


def test_model_totals_and_capacity():
    # 36 layers, 8 KV heads, d=128, 11K tokens: 16-bit = 11000*36*8*512 bytes.
    base = kv_cache_bytes(11000, 36, 8, 128)
    tq = kv_cache_bytes(11000, 36, 8, 128, 4, 4)
    assert base == 11000 * 36 * 8 * 512 and tq == 11000 * 36 * 8 * 136
    gib = 1 << 30
    assert max_context_tokens(gib, 36, 8, 128) == gib // (36 * 8 * 512)
    assert max_context_tokens(gib, 36, 8, 128, 4, 4) == gib // (36 * 8 * 136)


def test_bad_input():
    with pytest.raises(ValueError, match="give both or neither"):
        kv_cache_bytes(1, 1, 1, 128, k_bits=4)
    with pytest.raises(ValueError, match="expected one of"):
        token_bytes(128, 9, 4)
    with pytest.raises(ValueError, match="num_kv_heads"):
        token_bytes(128, 4, 4, num_kv_heads=-1)
