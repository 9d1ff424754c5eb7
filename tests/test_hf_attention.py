"""AttentionInterface backends on a tiny offline Llama (fp16): Triton FlashAttention against
SDPA, fused compressed attention against the unfused compressed cache, reversible installs.

On CPU the kernels run under TRITON_INTERPRET=1 (slow), so sequences stay short."""

from __future__ import annotations

import os

import pytest
import torch
from transformers import DynamicCache

from turboquant.cache import CompressedDynamicCache, CompressedKVStore
from turboquant.hf import attention as hf_attention
from turboquant.hf import cache_kwargs
from turboquant.hf.attention import (
    install_fused_tq4_kv,
    install_triton_fa,
    triton_fa_forward,
    uninstall_fused_tq4_kv,
)
from turboquant.hf.tiny import build_tiny_llama
from turboquant.quantizer import TurboQuantMSE

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
pytestmark = pytest.mark.skipif(
    not CUDA and os.environ.get("TRITON_INTERPRET") != "1",
    reason="the Triton kernels need CUDA or TRITON_INTERPRET=1",
)
PROMPT = "A person walks into the room, picks up a cup of coffee"
GREEDY = dict(do_sample=False, eos_token_id=None)


@pytest.fixture(scope="module")
def tiny():
    model, tok = build_tiny_llama(seed=2)
    model.to(device=DEVICE, dtype=torch.float16)
    ids = tok(PROMPT, return_tensors="pt").to(DEVICE)
    return model, tok, ids


def _logits(model, **inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def _assert_untouched(model) -> None:
    assert model.config._attn_implementation == "sdpa"
    assert not hasattr(model, "_tq_previous_attn_implementation")
    assert not any(hasattr(m, "_tq4_cache") for m in model.modules())


def test_triton_fa_generates_like_sdpa_and_uninstalls_exactly(tiny):
    model, _, ids = tiny
    before = _logits(model, **ids)
    sdpa_tokens = model.generate(**ids, max_new_tokens=32, **GREEDY)
    install_triton_fa(model)
    try:
        assert model.config._attn_implementation == "triton_fa"
        torch.testing.assert_close(_logits(model, **ids), before, rtol=0, atol=2e-2)
        fa_tokens = model.generate(**ids, max_new_tokens=32, **GREEDY)
    finally:
        uninstall_fused_tq4_kv(model)
    assert torch.equal(fa_tokens, sdpa_tokens)
    _assert_untouched(model)
    assert torch.equal(_logits(model, **ids), before)


def test_fused_tq4_kv_matches_unfused_cache(tiny, monkeypatch):
    model, _, ids = tiny
    before = _logits(model, **ids)
    unfused_cache = CompressedDynamicCache(config=model.config, k_bits=4, v_bits=4)
    unfused = model.generate(**ids, **cache_kwargs(unfused_cache), max_new_tokens=20, **GREEDY)

    import turboquant.triton.decode as decode

    calls = []
    real_decode = decode.tq_decode
    monkeypatch.setattr(decode, "tq_decode", lambda *a, **k: calls.append(1) or real_decode(*a, **k))
    # every step launches the kernels (the CUDA-graph replays are tests/test_decode_graphs.py's)
    cache = CompressedDynamicCache(config=model.config, k_bits=4, v_bits=4, cuda_graphs=False)
    install_fused_tq4_kv(model, cache)
    try:
        assert cache.fused_mode and model.config._attn_implementation == "triton_fa_tq4_kv"
        fused = model.generate(**ids, **cache_kwargs(cache), max_new_tokens=20, **GREEDY)
        # Fused mode kept no dequantized buffer; the compressed tensors are the whole cache.
        rep = cache.storage_report()
        assert rep["working_buffer_bytes"] == 0 and rep["ratio"] > 3.7
        assert len(calls) == 19 * model.config.num_hidden_layers  # every decode step, every layer
    finally:
        uninstall_fused_tq4_kv(model)
    assert torch.equal(fused, unfused)
    assert not cache.fused_mode
    _assert_untouched(model)
    assert torch.equal(_logits(model, **ids), before)


def test_padded_batch(tiny):
    """Left padding: prefill and one padded decode step (mask path) match the references."""
    model, tok, _ = tiny
    batch = tok(["The blue square moves", PROMPT], return_tensors="pt", padding=True, padding_side="left").to(
        DEVICE
    )
    valid = batch.attention_mask.bool()
    step = torch.full((2, 1), 17, device=DEVICE)
    step_mask = torch.cat([batch.attention_mask, torch.ones_like(step)], dim=1)

    def prefill_and_step(cache, install=None):
        if install is not None:
            install(cache)
        try:
            with torch.no_grad():
                a = model(**batch, **cache_kwargs(cache)).logits
                b = model(input_ids=step, attention_mask=step_mask, **cache_kwargs(cache)).logits
        finally:
            uninstall_fused_tq4_kv(model)
        return a[valid], b

    ref = prefill_and_step(DynamicCache(config=model.config))
    fa = prefill_and_step(DynamicCache(config=model.config), lambda c: install_triton_fa(model))
    unfused = prefill_and_step(CompressedDynamicCache(config=model.config))
    fused = prefill_and_step(
        CompressedDynamicCache(config=model.config), lambda c: install_fused_tq4_kv(model, c)
    )
    for got, want in ((fa, ref), (fused, unfused)):
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, rtol=0, atol=2e-2)


def test_fused_with_compressed_kv_store(tiny):
    """The K+V store feeds the same fused path: same tokens as the compressed cache."""
    model, _, ids = tiny
    kw = dict(max_new_tokens=6, **GREEDY)
    want = model.generate(
        **ids, **cache_kwargs(CompressedDynamicCache(config=model.config, k_bits=4, v_bits=3)), **kw
    )
    store = CompressedKVStore(TurboQuantMSE(128, 4), v_quantizer=TurboQuantMSE(128, 3))
    install_fused_tq4_kv(model, store)
    try:
        got = model.generate(**ids, **cache_kwargs(store), **kw)
    finally:
        uninstall_fused_tq4_kv(model)
    assert torch.equal(got, want)


def test_bad_inputs(tiny):
    model, _, _ = tiny
    with pytest.raises(TypeError, match="PreTrainedModel"):
        install_triton_fa(torch.nn.Linear(4, 4))
    with pytest.raises(TypeError, match="PreTrainedModel"):
        uninstall_fused_tq4_kv("model")
    with pytest.raises(ValueError, match="k_bits"):
        install_fused_tq4_kv(model, CompressedDynamicCache(k_bits=8, v_bits=4))
    with pytest.raises(TypeError, match="CompressedDynamicCache or CompressedKVStore"):
        install_fused_tq4_kv(model, object())
    with pytest.raises(ValueError, match="v_quantizer"):
        install_fused_tq4_kv(model, CompressedKVStore(TurboQuantMSE(128, 4)))
    with pytest.raises(ValueError, match="share the rotation"):
        install_fused_tq4_kv(model, CompressedKVStore(TurboQuantMSE(128, 4), TurboQuantMSE(128, 4, seed=1)))
    _assert_untouched(model)  # failed installs leave nothing behind
    fp32, _ = build_tiny_llama(num_hidden_layers=1)
    with pytest.raises(ValueError, match="float16/bfloat16"):
        install_triton_fa(fp32.to(DEVICE))
    odd, _ = build_tiny_llama(num_hidden_layers=1, head_dim=80)
    with pytest.raises(ValueError, match="head_dim"):
        install_triton_fa(odd.to(device=DEVICE, dtype=torch.float16))
    q = torch.zeros(1, 4, 2, 128, dtype=torch.float16, device=DEVICE)
    kv = torch.zeros(1, 2, 2, 128, dtype=torch.float16, device=DEVICE)
    attn = model.model.layers[0].self_attn
    with pytest.raises(ValueError, match="dropout"):
        triton_fa_forward(attn, q, kv, kv, None, dropout=0.1)
    with pytest.raises(ValueError, match="softcap"):
        hf_attention.triton_fa_tq4_kv_forward(attn, q, kv, kv, None, softcap=30.0)
