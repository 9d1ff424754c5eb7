"""CompressedDynamicCache and CompressedKVStore on a tiny offline Llama (fp32, no kernels)."""

from __future__ import annotations

import warnings

import pytest
import torch
from transformers import DynamicCache, Qwen2Config, Qwen2ForCausalLM

from turboquant import cache as cache_module
from turboquant.cache import CompressedDynamicCache, CompressedKVStore, _PackedStream, _use_compress_kernel
from turboquant.hf import cache_kwarg_for, cache_kwargs
from turboquant.hf.tiny import build_tiny_llama
from turboquant.quantizer import TurboQuantMSE
from turboquant.storage import baseline_token_bytes, token_bytes
from turboquant.triton.compress import tq4_compress

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
PROMPT = "A person walks into the room, picks up a cup of coffee"
GREEDY = dict(do_sample=False, eos_token_id=None)


def _expected_packed(q, x):
    """What the cache stores for ``x`` [B, H, S, D]: the fused compress kernel's output on CUDA
    (``_use_compress_kernel``), ``quantize_packed`` elsewhere."""
    if _use_compress_kernel(x, q):
        b, h, n, d = x.shape
        packed, norms = tq4_compress(x.reshape(b * h, n, d), q.rotation, q.boundaries, bits=q.bits)
        return packed.view(b, h, n, -1), norms.view(b, h, n)
    return q.quantize_packed(x)


@pytest.fixture(scope="module")
def tiny():
    model, tok = build_tiny_llama(seed=2)
    model.to(DEVICE)
    ids = tok(PROMPT, return_tensors="pt").to(DEVICE)
    return model, tok, ids


@pytest.fixture(scope="module")
def baseline(tiny):
    model, _, ids = tiny
    return model.generate(**ids, max_new_tokens=24, **GREEDY)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()


def test_8bit_greedy_identical_to_baseline(tiny, baseline):
    model, _, ids = tiny
    cache = CompressedDynamicCache(config=model.config, k_bits=8, v_bits=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = model.generate(**ids, **cache_kwargs(cache), max_new_tokens=24, **GREEDY)
    assert out.shape[1] - ids.input_ids.shape[1] == 24
    assert torch.equal(out, baseline)
    # the cache was used (not silently dropped under a keyword generate does not know) ...
    assert cache.get_seq_length() == out.shape[1] - 1
    # ... and handed over under the keyword this transformers wants (no deprecation warning)
    assert not [w for w in caught if "past_key_values" in str(w.message)]


@pytest.mark.parametrize(
    "version, kwarg",
    [
        ("5.17.0", "past_key_values"),
        ("5.23.1", "past_key_values"),
        ("5.24.0", "cache"),
        ("5.25.0.dev0", "cache"),
        ("6.0.0", "cache"),
    ],
)
def test_cache_kwarg_by_transformers_version(version, kwarg):
    assert cache_kwarg_for(version) == kwarg


def test_4bit_kv_cosine_and_token_agreement(tiny, baseline, record_property):
    model, _, ids = tiny
    n = ids.input_ids.shape[1]
    cache = CompressedDynamicCache(config=model.config, k_bits=4, v_bits=4)
    out = model.generate(**ids, **cache_kwargs(cache), max_new_tokens=24, **GREEDY)
    agree = (out[0, n:] == baseline[0, n:]).float().mean().item()
    record_property("token_agreement_k4v4", agree)
    print(f"K4/V4 token agreement with baseline over 24 tokens: {agree:.2%}")
    # Per-layer K/V against the exact cache, on the same token sequence.
    exact, comp = (
        DynamicCache(config=model.config),
        CompressedDynamicCache(config=model.config, k_bits=4, v_bits=4),
    )
    with torch.no_grad():
        model(baseline, **cache_kwargs(exact))
        model(baseline, **cache_kwargs(comp))
    for i in range(model.config.num_hidden_layers):
        assert _cos(comp.layers[i].keys, exact.layers[i].keys) >= 0.99
        assert _cos(comp.layers[i].values, exact.layers[i].values) >= 0.99


# With fp32 norms at d=128: K4/V4 136 B/token/head (3.76x), K4/V3 120 B (4.27x: 4.4x is out of
# reach with 4-byte norms, 512/4.4 < 120), K3/V3 104 B (4.92x).
@pytest.mark.parametrize("k_bits,v_bits,min_ratio", [(4, 4, 3.7), (4, 3, 4.25), (3, 3, 4.9)])
def test_storage_ratio_from_real_tensors(tiny, k_bits, v_bits, min_ratio):
    model, _, ids = tiny
    cache = CompressedDynamicCache(config=model.config, k_bits=k_bits, v_bits=v_bits)
    with torch.no_grad():
        model(**ids, **cache_kwargs(cache))
    cfg = model.config
    s, layers, heads = ids.input_ids.shape[1], cfg.num_hidden_layers, cfg.num_key_value_heads
    rep = cache.storage_report()
    # Independent count: the storage calculator's per-token bytes.
    assert rep["compressed_bytes"] == s * layers * token_bytes(128, k_bits, v_bits, heads)
    assert rep["baseline_bytes"] == s * layers * baseline_token_bytes(128, heads)
    assert cache.nbytes() == rep["compressed_bytes"]
    assert rep["ratio"] >= min_ratio
    # The working buffer is reported apart (fp32 model here), and disappears in fused mode.
    assert rep["working_buffer_bytes"] >= 2 * layers * heads * s * 128 * 4
    cache.fused_mode = True
    assert cache.storage_report()["working_buffer_bytes"] == 0


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_packed_layout_and_fp32_norms(bits):
    cache = CompressedDynamicCache(k_bits=bits, v_bits=bits, seed=7)
    k, v = torch.randn(2, 3, 5, 128, device=DEVICE), torch.randn(2, 3, 5, 128, device=DEVICE)
    cache.update(k, v, 0)
    kp, kn, vp, vn = cache.get_compressed(0)
    assert kp.dtype == vp.dtype == torch.uint8 and tuple(kp.shape) == (2, 3, 5, 128 * bits // 8)
    assert kn.dtype == vn.dtype == torch.float32 and tuple(kn.shape) == (2, 3, 5)
    assert kp.stride(-1) == 1 and kn.stride(-1) == 1
    ref = TurboQuantMSE(128, bits, seed=7).to(DEVICE)
    rp, rn = _expected_packed(ref, k)
    assert torch.equal(kp, rp) and torch.equal(kn, rn)
    torch.testing.assert_close(kn, torch.linalg.vector_norm(k, dim=-1), rtol=1e-6, atol=0)
    kq, vq = cache.get_quantizers(0)
    assert torch.equal(kq.rotation.cpu(), ref.rotation.cpu()) and kq.bits == vq.bits == bits


@pytest.mark.parametrize("bits", [3, 4])
def test_kernel_append_matches_quantizer(bits, monkeypatch):
    # the CUDA append path (fused compress kernel writing into the capacity buffers), forced on
    # here (the interpreter on CPU): a prefill of 5 tokens, then 3 one-token steps, B=2, H=3
    monkeypatch.setattr(cache_module, "_use_compress_kernel", lambda x, q: q.bits in (2, 3, 4))
    cache = CompressedDynamicCache(k_bits=bits, v_bits=bits, seed=3, fused_mode=True)
    ks = [torch.randn(2, 3, n, 128, device=DEVICE) * 4 for n in (5, 1, 1, 1)]
    for k in ks:
        cache.update(k, -k, 0)
    kp, kn, vp, vn = cache.get_compressed(0)
    ref = TurboQuantMSE(128, bits, seed=3).to(DEVICE)
    rp, rn = ref.quantize_packed(torch.cat(ks, dim=2))
    torch.testing.assert_close(kn, rn, rtol=1e-5, atol=0)
    torch.testing.assert_close(vn, rn, rtol=1e-5, atol=0)
    idx, want = ref.unpack(kp).long(), ref.unpack(rp).long()
    # fp32 rounding may move a coordinate that sits on a boundary by one cell, nothing more
    assert (idx - want).abs().max() <= 1 and (idx != want).float().mean() < 1e-3
    assert torch.equal(ref.unpack(vp).long(), 2**bits - 1 - idx)  # -k: the mirrored cells


def test_hadamard_rotation_cache_through_the_kernel(monkeypatch):
    """``rotation="hadamard"``: bf16 K/V through the compress kernel (its sign-piece path) give
    the indices of the Hadamard quantizer; head_dim 96 has no Hadamard rotation."""
    monkeypatch.setattr(cache_module, "_use_compress_kernel", lambda x, q: True)
    cache = CompressedDynamicCache(k_bits=4, v_bits=4, seed=5, rotation="hadamard", fused_mode=True)
    k = (torch.randn(2, 3, 6, 128, device=DEVICE) * 3).to(torch.bfloat16)
    cache.update(k, k, 0)
    kp, kn, _, _ = cache.get_compressed(0)
    ref = TurboQuantMSE(128, 4, seed=5, rotation="hadamard").to(DEVICE)
    assert cache.get_quantizers(0)[0].rotation_kind == "hadamard"
    rp, rn = ref.quantize_packed(k.float())
    torch.testing.assert_close(kn, rn, rtol=1e-5, atol=0)
    idx, want = ref.unpack(kp).long(), ref.unpack(rp).long()
    assert (idx - want).abs().max() <= 1 and (idx != want).float().mean() < 1e-3
    with pytest.raises(ValueError, match="power-of-two"):
        CompressedDynamicCache(rotation="hadamard").update(
            torch.randn(1, 1, 2, 96), torch.randn(1, 1, 2, 96), 0
        )


def test_incremental_dequantization_only_new_tokens(monkeypatch):
    calls = []
    original = _PackedStream.dequantize

    def spy(self, start, end, dtype):
        calls.append((start, end))
        return original(self, start, end, dtype)

    monkeypatch.setattr(_PackedStream, "dequantize", spy)
    cache = CompressedDynamicCache(k_bits=4, v_bits=4)
    k0 = torch.randn(1, 2, 10, 128, device=DEVICE)
    keys, _ = cache.update(k0, k0.clone(), 0)
    first = keys.clone()
    storage = [cache.layers[0].k.packed.data_ptr(), cache.layers[0].keys.data_ptr()]
    calls.clear()
    for step in range(3):
        kn = torch.randn(1, 2, 1, 128, device=DEVICE)
        keys, values = cache.update(kn, kn.clone(), 0)
        assert calls[-2:] == [(10 + step, 11 + step)] * 2  # K and V: one new token each
        assert keys.shape[2] == 11 + step
        assert torch.equal(keys[:, :, :10], first)  # earlier tokens untouched
        q = cache.get_quantizers(0)[0]
        torch.testing.assert_close(keys[:, :, -1:], q.dequantize_packed(*q.quantize_packed(kn)))
    # Written in place into spare capacity: no copy of the cache per decode step.
    assert [cache.layers[0].k.packed.data_ptr(), cache.layers[0].keys.data_ptr()] == storage


def test_per_layer_head_dim_without_config():
    cache = CompressedDynamicCache(k_bits=4, v_bits=3)
    cache.update(torch.randn(1, 2, 4, 64, device=DEVICE), torch.randn(1, 2, 4, 64, device=DEVICE), 0)
    cache.update(torch.randn(1, 1, 4, 256, device=DEVICE), torch.randn(1, 1, 4, 256, device=DEVICE), 1)
    assert [q.head_dim for q in cache.get_quantizers(0)] == [64, 64]
    assert cache.get_compressed(0)[0].shape[-1] == 32 and cache.get_compressed(0)[2].shape[-1] == 24
    assert cache.get_compressed(1)[0].shape[-1] == 128 and cache.get_compressed(1)[2].shape[-1] == 96


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copies_of_a_config_less_cache_grow_on_their_own(how):
    """A deep copy or a pickle of a cache built without a config makes its next layers itself
    (its layer factory holds its own cache, weakly), also after the original is gone, and
    holds the original's tokens."""
    import copy
    import gc
    import pickle

    gen = torch.Generator().manual_seed(0)
    k = torch.randn(1, 2, 3, 64, generator=gen).to(DEVICE)
    v = torch.randn(1, 2, 3, 64, generator=gen).to(DEVICE)
    cache = CompressedDynamicCache(k_bits=4, v_bits=3)
    cache.update(k, v, 0)
    twin = copy.deepcopy(cache) if how == "deepcopy" else pickle.loads(pickle.dumps(cache))
    want = [t.clone() for t in cache.get_compressed(0)]
    del cache
    gc.collect()
    twin.update(k, v, 1)
    assert len(twin.layers) == 2 and twin.get_seq_length(1) == 3
    assert all(torch.equal(a, b) for a, b in zip(twin.get_compressed(0), want, strict=True))
    assert torch.equal(twin.get_compressed(1)[0], want[0]) and torch.equal(twin.get_compressed(1)[3], want[3])


def test_crop_then_continue_matches_fresh_cache(tiny, baseline):
    model, _, _ = tiny
    seq = baseline[:, :20]
    cropped = CompressedDynamicCache(config=model.config, k_bits=4, v_bits=4)
    fresh = CompressedDynamicCache(config=model.config, k_bits=4, v_bits=4)
    with torch.no_grad():
        model(seq, **cache_kwargs(cropped))
        cropped.crop(-5)
        assert cropped.get_seq_length() == 15 and cropped.get_compressed(0)[1].shape[2] == 15
        a = model(seq[:, 15:], **cache_kwargs(cropped)).logits
        fresh_logits = model(seq, **cache_kwargs(fresh)).logits[:, 15:]
    torch.testing.assert_close(a, fresh_logits, rtol=1e-4, atol=1e-4)
    for i in range(model.config.num_hidden_layers):
        kp, kn, vp, vn = cropped.get_compressed(i)
        fkp, fkn, fvp, fvn = fresh.get_compressed(i)
        assert kp.shape == fkp.shape and torch.equal(kp[:, :, :15], fkp[:, :, :15])
        torch.testing.assert_close(kn, fkn, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(vn, fvn, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="negative"):
        cropped.crop(3)
    cropped.reset()
    assert cropped.get_seq_length() == 0


def test_reorder_cache_and_beam_search(tiny):
    model, _, ids = tiny
    cache = CompressedDynamicCache(k_bits=4, v_bits=4)
    k = torch.randn(3, 2, 6, 128, device=DEVICE)
    cache.update(k, -k, 0)
    before = [t.clone() for t in cache.get_compressed(0)]
    keys_before = cache.layers[0].keys.clone()
    beam_idx = torch.tensor([2, 0, 0], device=DEVICE)
    cache.reorder_cache(beam_idx)
    for b, a in zip(before, cache.get_compressed(0), strict=True):
        assert torch.equal(a, b[beam_idx])
    assert torch.equal(cache.layers[0].keys, keys_before[beam_idx])
    # Beam search through generate: 8-bit compressed equals the exact cache.
    kw = dict(max_new_tokens=8, num_beams=2, do_sample=False, eos_token_id=None)
    exact = model.generate(**ids, **kw)
    comp = model.generate(
        **ids, **cache_kwargs(CompressedDynamicCache(config=model.config, k_bits=8, v_bits=8)), **kw
    )
    assert torch.equal(exact, comp)


def test_sliding_window_layers_stay_uncompressed():
    config = Qwen2Config(
        vocab_size=128,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=128,
        use_sliding_window=True,
        sliding_window=6,
        max_window_layers=0,
        layer_types=["sliding_attention", "full_attention"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config).eval().to(DEVICE)
    ids = torch.randint(0, 128, (1, 12), generator=torch.Generator().manual_seed(0)).to(DEVICE)
    cache = CompressedDynamicCache(config=config, k_bits=8, v_bits=8)
    exact = model.generate(ids, max_new_tokens=10, **GREEDY)
    out = model.generate(ids, **cache_kwargs(cache), max_new_tokens=10, **GREEDY)
    assert torch.equal(out, exact)
    assert not cache.is_compressed(0) and cache.is_compressed(1)
    assert cache.layers[0].keys.shape[2] == 5  # the window, uncompressed
    rep = cache.storage_report()
    assert rep["compressed_layers"] == 1 and rep["uncompressed_layers"] == 1
    assert rep["uncompressed_layer_bytes"] == 2 * 5 * 128 * 4
    assert rep["compressed_bytes"] == 21 * token_bytes(128, 8, 8)
    with pytest.raises(ValueError, match="compressed layer"):
        cache.get_compressed(0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="k_bits"):
        CompressedDynamicCache(k_bits=5)
    with pytest.raises(TypeError, match="v_bits"):
        CompressedDynamicCache(v_bits="4")
    with pytest.raises(ValueError, match="rotation"):
        CompressedDynamicCache(rotation="haar")
    with pytest.raises(TypeError, match="PreTrainedConfig"):
        CompressedDynamicCache(config={"num_hidden_layers": 2})
    cache = CompressedDynamicCache()
    cache.update(torch.randn(1, 2, 3, 128), torch.randn(1, 2, 3, 128), 0)
    with pytest.raises(ValueError, match="batch and kv_heads"):
        cache.update(torch.randn(2, 2, 1, 128), torch.randn(2, 2, 1, 128), 0)
    with pytest.raises(ValueError, match="rank 4"):
        cache.update(torch.randn(2, 1, 128), torch.randn(2, 1, 128), 0)
    with pytest.raises(TypeError, match="TurboQuantMSE"):
        CompressedKVStore("not a quantizer")


def test_compressed_kv_store(tiny):
    model, _, ids = tiny
    kq, vq = TurboQuantMSE(128, 4), TurboQuantMSE(128, 3)
    store, exact = CompressedKVStore(kq, v_quantizer=vq), DynamicCache()
    with torch.no_grad():
        a = model(**ids, **cache_kwargs(store)).logits
        b = model(**ids, **cache_kwargs(exact)).logits
    assert isinstance(store, DynamicCache)
    assert torch.equal(a, b)  # attention sees the ordinary 16-bit K/V
    for i in range(model.config.num_hidden_layers):
        packed, norms = store.get_compressed_key(i)
        rp, rn = _expected_packed(kq, exact.layers[i].keys)
        assert torch.equal(packed, rp) and torch.equal(norms, rn) and norms.dtype == torch.float32
        vp, vn = store.get_compressed(i)[2:]
        assert torch.equal(vp, _expected_packed(vq, exact.layers[i].values)[0])
    assert store.rotation_T.shape == (128, 128) and store.centroids.shape == (16,)
    assert store.storage_report()["ratio"] == pytest.approx(512 / (68 + 52))
    store.crop(-2)
    assert store.get_compressed_key(0)[0].shape[2] == ids.input_ids.shape[1] - 2
    k_only = CompressedKVStore(TurboQuantMSE(128, 4))
    k_only.update(torch.randn(1, 2, 3, 128), torch.randn(1, 2, 3, 128), 0)
    with pytest.raises(ValueError, match="v_quantizer"):
        k_only.get_compressed(0)
