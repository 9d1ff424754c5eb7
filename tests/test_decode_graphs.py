"""The CUDA-graph decode step (turboquant/decode_graphs.py).

On CPU the graph bodies run eagerly under TRITON_INTERPRET=1 (``capture=False``): that checks
the device-state logic (slot-mapped appends at the device position, lengths on the device,
attention over the whole capacity, re-seeding after crop, new buffers after growth) against
the ordinary cache path. On a GPU the graphs are captured and replayed for real."""

from __future__ import annotations

import os
import weakref

import pytest
import torch

import turboquant.cache as cache_module
from turboquant.cache import CompressedDynamicCache
from turboquant.decode_graphs import DecodeGraphs
from turboquant.hf import cache_kwargs
from turboquant.hf.attention import install_fused_tq4_kv, uninstall_fused_tq4_kv
from turboquant.hf.tiny import build_tiny_llama
from turboquant.triton.decode import tq_decode

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
pytestmark = pytest.mark.skipif(
    not CUDA and os.environ.get("TRITON_INTERPRET") != "1",
    reason="the Triton kernels need CUDA or TRITON_INTERPRET=1",
)
B, H_KV, H_Q, D = 2, 2, 8, 128


@pytest.fixture
def kernel_appends(monkeypatch):
    """Both paths compress with tq4_compress (on CPU the cache would use the torch quantizer,
    whose bytes can differ from the kernel's at a boundary tie)."""
    monkeypatch.setattr(cache_module, "_use_compress_kernel", lambda x, q: True)


def _layer(prompt: torch.Tensor, v: torch.Tensor) -> cache_module.CompressedLayer:
    cache = CompressedDynamicCache(k_bits=4, v_bits=4, fused_mode=True, cuda_graphs=False)
    cache.update(prompt, v, 0)
    return cache.layers[0]


def _step_inputs(gen: torch.Generator, dtype=torch.float16):
    k = torch.randn(B, H_KV, 1, D, generator=gen).to(DEVICE, dtype)
    v = torch.randn(B, H_KV, 1, D, generator=gen).to(DEVICE, dtype)
    q = torch.randn(B, H_Q, 1, D, generator=gen).to(DEVICE, dtype)
    return q, k, v


def _reference_decode(layer, q: torch.Tensor) -> torch.Tensor:
    kq, vq = layer.k.quantizer, layer.v.quantizer
    kp, kn, vp, vn = layer.compressed()
    return tq_decode(q, kp, kn, vp, vn, kq.rotation, kq.centroids, vq.centroids, sm_scale=0.1)


def test_graph_bodies_match_the_cache_path(kernel_appends):
    """Appends through DecodeGraphs write the bytes the ordinary append writes, and its
    attention over the capacity with device lengths matches tq_decode over the valid views,
    across a crop (device position re-seeded) and a capacity growth (new buffers)."""
    gen = torch.Generator().manual_seed(0)
    prompt_k = torch.randn(B, H_KV, 56, D, generator=gen).to(DEVICE, torch.float16)
    prompt_v = torch.randn(B, H_KV, 56, D, generator=gen).to(DEVICE, torch.float16)
    ref, got = _layer(prompt_k, prompt_v), _layer(prompt_k, prompt_v)
    graphs = DecodeGraphs(got, capture=CUDA)
    got.decode_graphs = graphs
    assert got.k.packed.shape[2] == 64  # capacity of 56 tokens: 64 * ceil(63 / 64)
    first_buffer = weakref.ref(got.k.packed)
    for step in range(16):
        if step == 3:  # drop 3 tokens from both: the device position follows the host length
            ref.crop(-3)
            got.crop(-3)
        q, k, v = _step_inputs(gen)
        ref.update(k, v)
        appended = graphs.append(k, v)
        if not appended:  # the buffers are full: the layer grows them and appends eagerly
            assert got.k.length == got.k.packed.shape[2]
            got.k.append(k)
            got.v.append(v)
        assert torch.equal(got.compressed()[0], ref.compressed()[0])
        assert torch.equal(got.compressed()[1], ref.compressed()[1])
        assert torch.equal(got.compressed()[2], ref.compressed()[2])
        want = _reference_decode(ref, q)
        out = graphs.attend(q, 0.1)
        if not appended:
            assert out is None  # not a graph step: the caller runs tq_decode
            continue
        torch.testing.assert_close(out, want, rtol=0, atol=2e-3)
    assert got.k.length == ref.k.length == 56 - 3 + 16
    assert got.k.packed.shape[2] == 128  # the growth happened and later steps used the new buffers
    assert first_buffer() is None  # the graphs do not keep the replaced buffers alive
    if CUDA:
        # one capture of each half per buffer set (prompt buffers, then the grown ones); the
        # 16 steps: one eager append at the growth, one eager step after each capture
        assert graphs.captures == 4 and graphs.replays == 2 * (16 - 1 - 2)


def test_graph_append_declines_what_it_cannot_take():
    gen = torch.Generator().manual_seed(1)
    prompt = torch.randn(B, H_KV, 4, D, generator=gen).to(DEVICE, torch.float16)
    layer = _layer(prompt, prompt)
    graphs = DecodeGraphs(layer, capture=False)
    two = torch.randn(B, H_KV, 2, D, generator=gen).to(DEVICE, torch.float16)
    assert not graphs.append(two, two)  # more than one token
    q, k, v = _step_inputs(gen)
    assert graphs.attend(q, None) is None  # nothing appended through the graphs yet
    layer.k.append(k)  # an append outside the graphs: they do not serve this step
    layer.v.append(v)
    assert graphs.attend(q, None) is None


@pytest.mark.parametrize("new_tokens", [12])
def test_fused_generate_with_graphs_matches_without(kernel_appends, new_tokens):
    """A tiny Llama generates the same tokens with the graphed decode step as without it."""
    model, tok = build_tiny_llama(seed=2, num_hidden_layers=2)
    model.to(device=DEVICE, dtype=torch.float16)
    ids = tok("A person walks into the room, picks up a cup", return_tensors="pt").to(DEVICE)
    runs = {}
    for graphs in (False, True):
        cache = CompressedDynamicCache(config=model.config, cuda_graphs=graphs)
        if not CUDA and graphs:  # CPU: the graph bodies, eagerly (the cache only captures on CUDA)
            for layer in cache.layers:
                layer.decode_graphs = DecodeGraphs(layer, capture=False)
                layer._graphs = lambda x, layer=layer: layer.decode_graphs
        install_fused_tq4_kv(model, cache)
        try:
            runs[graphs] = model.generate(
                **ids, **cache_kwargs(cache), max_new_tokens=new_tokens, do_sample=False, eos_token_id=None
            )
        finally:
            uninstall_fused_tq4_kv(model)
        if graphs:
            for layer in cache.layers:
                g = layer.decode_graphs
                assert g is not None and g.synced_len == layer.k.length  # every step went through them
                if CUDA:
                    assert g.captures == 2 and g.replays == 2 * (new_tokens - 2)
    assert torch.equal(runs[True], runs[False])


def test_failed_capture_warns_and_keeps_decoding(kernel_appends, monkeypatch):
    """A capture that fails leaves a warning and eager bodies; the results stay right."""
    import turboquant.decode_graphs as decode_graphs

    def refuse(body, device):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(decode_graphs, "_capture", refuse)
    gen = torch.Generator().manual_seed(2)
    prompt = torch.randn(B, H_KV, 8, D, generator=gen).to(DEVICE, torch.float16)
    ref, got = _layer(prompt, prompt), _layer(prompt, prompt)
    graphs = DecodeGraphs(got, capture=True)
    for step in range(3):
        q, k, v = _step_inputs(gen)
        ref.update(k, v)
        if step == 0:
            with pytest.warns(RuntimeWarning, match="capture of the decode step failed"):
                assert graphs.append(k, v)
        else:
            assert graphs.append(k, v)
        assert torch.equal(got.compressed()[0], ref.compressed()[0])
        torch.testing.assert_close(graphs.attend(q, 0.1), _reference_decode(ref, q), rtol=0, atol=2e-3)
    assert not graphs.capture and graphs.captures == 0 and graphs.append_graph is None


def test_graph_steps_follow_a_beam_reorder(kernel_appends):
    """``reorder_cache`` (beam search) replaces the buffers: the graphs start over on the
    reordered cache and keep matching the ordinary path."""
    gen = torch.Generator().manual_seed(3)
    prompt_k = torch.randn(B, H_KV, 10, D, generator=gen).to(DEVICE, torch.float16)
    prompt_v = torch.randn(B, H_KV, 10, D, generator=gen).to(DEVICE, torch.float16)
    ref, got = _layer(prompt_k, prompt_v), _layer(prompt_k, prompt_v)
    graphs = DecodeGraphs(got, capture=CUDA)
    swap = torch.tensor([1, 0], device=DEVICE)
    for step in range(6):
        if step == 3:
            ref.reorder_cache(swap)
            got.reorder_cache(swap)
        q, k, v = _step_inputs(gen)
        ref.update(k, v)
        if not graphs.append(k, v):
            got.k.append(k)
            got.v.append(v)
        for mine, theirs in zip(got.compressed(), ref.compressed(), strict=True):
            assert torch.equal(mine, theirs)
        out = graphs.attend(q, 0.1)
        if out is not None:
            torch.testing.assert_close(out, _reference_decode(ref, q), rtol=0, atol=2e-3)
    assert graphs.synced_len == got.k.length  # the last steps went through the graphs again


def test_capture_holds_off_the_cyclic_collector(monkeypatch):
    """``_capture`` runs its body with Python's cyclic collector off (a collection inside a
    capture that frees an old CUDAGraph destroys a graph mid-capture, which CUDA refuses) and
    turns it back on after, also when the body fails. CUDA's pieces are stand-ins here, so this
    runs on CPU; the GPU test below provokes the collection for real."""
    import contextlib
    import gc

    import turboquant.decode_graphs as decode_graphs

    class FakeGraph:
        def capture_begin(self, capture_error_mode):
            assert capture_error_mode == "thread_local"

        def capture_end(self):
            pass

    class FakeStream:
        def wait_stream(self, other):
            pass

    seen = []
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "device", lambda d: contextlib.nullcontext())
    assert gc.isenabled()
    graph, result = decode_graphs._capture(lambda: seen.append(gc.isenabled()) or "out", "cuda")
    assert isinstance(graph, FakeGraph) and result == "out" and seen == [False] and gc.isenabled()

    def fails():
        seen.append(gc.isenabled())
        raise RuntimeError("capture failed")

    with pytest.raises(RuntimeError, match="capture failed"):
        decode_graphs._capture(fails, "cuda")
    assert seen == [False, False] and gc.isenabled()
    gc.disable()  # a caller that had it off keeps it off
    try:
        decode_graphs._capture(lambda: None, "cuda")
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("with_config", [False, True])
def test_a_dropped_cache_frees_its_graphs_without_the_collector(kernel_appends, with_config):
    """No reference cycles in a fused cache with decode graphs (layer <-> DecodeGraphs, cache
    <-> its layer factory): dropping the cache frees its layers and graphs at once (and with
    them the graphs' memory), not at some later collection."""
    import gc

    config = build_tiny_llama(seed=2, num_hidden_layers=2)[0].config if with_config else None
    cache = CompressedDynamicCache(config=config, k_bits=4, v_bits=4, fused_mode=True, cuda_graphs=False)
    gen = torch.Generator().manual_seed(4)
    prompt = torch.randn(B, H_KV, 4, D, generator=gen).to(DEVICE, torch.float16)
    cache.update(prompt, prompt, 0)
    layer = cache.layers[0]
    layer.decode_graphs = DecodeGraphs(layer, capture=False)
    q, k, v = _step_inputs(gen)
    assert layer.decode_graphs.append(k, v) and layer.decode_graphs.layer is layer
    refs = [weakref.ref(x) for x in (cache, layer, layer.decode_graphs)]
    gc.disable()
    try:
        del cache, layer
        assert [r() for r in refs] == [None, None, None]
    finally:
        gc.enable()


@pytest.mark.skipif(not CUDA, reason="captures CUDA graphs")
def test_capture_survives_garbage_holding_old_graphs(kernel_appends):
    """Session 29's H100 failure, provoked: garbage that only the cyclic collector frees (a
    cycle holding a captured CUDAGraph) appears while the attend half is captured, with the
    collector set to run at every allocation. The capture must not fail (it used to warn
    'capture of the decode step failed' and leave the layer on eager steps)."""
    import gc
    import warnings

    old = torch.cuda.CUDAGraph()
    x = torch.zeros(4, device=DEVICE)
    with torch.cuda.graph(old):
        x.add_(1)
    gen = torch.Generator().manual_seed(5)
    prompt = torch.randn(B, H_KV, 8, D, generator=gen).to(DEVICE, torch.float16)
    ref, got = _layer(prompt, prompt), _layer(prompt, prompt)
    graphs = DecodeGraphs(got, capture=True)
    body = graphs._attend_body

    keep = [old]

    def body_making_garbage():
        if torch.cuda.is_current_stream_capturing() and keep:
            junk = [keep.pop()]
            junk.append(junk)  # a cycle: freed only by the cyclic collector
            del junk
            for _ in range(50):  # container allocations: each may start a collection
                _ = [[], {}]
        return body()

    graphs._attend_body = body_making_garbage
    del old
    thresholds = gc.get_threshold()
    gc.set_threshold(1, 1, 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            for _ in range(3):
                q, k, v = _step_inputs(gen)
                ref.update(k, v)
                assert graphs.append(k, v)
                out = graphs.attend(q, 0.1)
                torch.testing.assert_close(out, _reference_decode(ref, q), rtol=0, atol=2e-3)
    finally:
        gc.set_threshold(*thresholds)
    gc.collect()
    assert graphs.capture and graphs.captures == 2 and graphs.replays == 4
