"""vLLM-shaped batches over the paged pool: kernel path vs the plain-torch reference.

Mixed batches (decodes, chunked prefill, fresh prefill, ragged lengths, GQA, page size 16) go
through :func:`paged_attention_forward` (write_kv + paged decode kernel + fused FlashAttention
on scratch) and :func:`paged_attention_reference` (torch writes, fp32 attention on the
dequantized cache); outputs and the written pools must agree.
"""

import pytest
import torch

from turboquant.paged import PagedKVLayout, allocate_pool, write_kv_reference
from turboquant.paged_batch import paged_attention_forward, paged_attention_reference
from turboquant.quantizer import TurboQuantMSE

DEV = "cuda" if torch.cuda.is_available() else "cpu"
BLOCK = 16
H_KV, H_Q, D = 2, 4, 64


def make_batch(cached, q_lens, *, k_bits=4, v_bits=4, num_blocks=24, seed=0, pool_index=0):
    """A pool holding each sequence's ``cached`` tokens (scattered pages) plus the new tokens.

    ``pool_index=1`` returns the second pool of a two-layer buffer (a view with a nonzero
    storage offset, as vLLM hands its layers).
    """
    gen = torch.Generator().manual_seed(seed)
    layout = PagedKVLayout(H_KV, D, k_bits, v_bits)
    kq, vq = TurboQuantMSE(D, k_bits).to(DEV), TurboQuantMSE(D, v_bits).to(DEV)
    pool = torch.stack([allocate_pool(num_blocks, BLOCK, layout, DEV)] * 2)[pool_index]
    b = len(cached)
    max_blocks = max(-(-(c + q) // BLOCK) for c, q in zip(cached, q_lens, strict=True))
    perm = torch.randperm(num_blocks, generator=gen)[: b * max_blocks]
    table = perm.view(b, max_blocks).to(torch.int32).to(DEV)

    def slots(row, start, stop):
        t = torch.arange(start, stop, device=DEV)
        return table[row].long()[t // BLOCK] * BLOCK + t % BLOCK

    for row, c in enumerate(cached):
        if c:
            kv = torch.randn(2, c, H_KV, D, generator=gen).to(DEV)
            write_kv_reference(pool, layout, kv[0], kv[1], slots(row, 0, c), kq, vq)
    t = sum(q_lens)
    q = torch.randn(t, H_Q, D, generator=gen).to(DEV, torch.float16)
    k = torch.randn(t, H_KV, D, generator=gen).to(DEV, torch.float16)
    v = torch.randn(t, H_KV, D, generator=gen).to(DEV, torch.float16)
    pairs = list(zip(cached, q_lens, strict=True))
    kwargs = dict(
        slot_mapping=torch.cat([slots(r, c, c + n) for r, (c, n) in enumerate(pairs)]),
        block_table=table,
        seq_lens=torch.tensor([c + n for c, n in pairs], dtype=torch.int32, device=DEV),
        query_start_loc=torch.tensor(
            [0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32, device=DEV
        ),
        k_quantizer=kq,
        v_quantizer=vq,
    )
    return (q, k, v), pool, layout, kwargs


def run_both(cached, q_lens, forward_kwargs=(), **batch_kwargs):
    (q, k, v), pool, layout, kw = make_batch(cached, q_lens, **batch_kwargs)
    ref_pool = pool.clone()
    out = paged_attention_forward(q, k, v, pool, layout, **kw, **dict(forward_kwargs))
    ref = paged_attention_reference(q, k, v, ref_pool, layout, **kw)
    return out, ref, pool, ref_pool


def assert_close(out, ref, pool, ref_pool):
    assert out.shape == ref.shape and out.dtype == ref.dtype
    # fp16 rounding of the rotated operands and outputs; outputs are O(1)
    torch.testing.assert_close(out.float(), ref.float(), atol=1.5e-2, rtol=1.5e-2)
    # The fused compress kernel and the torch quantizer may round a coordinate lying on a
    # bucket boundary differently: only a handful of bytes may differ.
    assert (pool != ref_pool).float().mean().item() < 2e-3


@pytest.mark.parametrize("bits", [(4, 4), (3, 2)])
def test_mixed_batch_matches_reference(bits):
    # decode | chunked prefill (cached 16, 7 new) | fresh prefill | decode: decodes not in front,
    # so the decode rows are gathered by index; ragged lengths, GQA 4/2.
    out, ref, pool, ref_pool = run_both([20, 16, 0, 33], [1, 7, 9, 1], k_bits=bits[0], v_bits=bits[1])
    assert_close(out, ref, pool, ref_pool)


def test_decodes_first_and_long_prefill_through_decode_rows():
    # vLLM's order (decodes first: sliced, not gathered); the chunked prefill's context (25 keys)
    # exceeds max_scratch_tokens, so its tokens become rows of the single decode launch.
    out, ref, pool, ref_pool = run_both([5, 30, 14], [1, 1, 11], forward_kwargs={"max_scratch_tokens": 24})
    assert_close(out, ref, pool, ref_pool)


def test_decode_only_sync_free_path_on_an_offset_pool():
    # max_query_len=1: one write + one decode launch, no host reads (validate=False); the pool is
    # the second layer of a shared buffer (nonzero storage offset), as in vLLM.
    out, ref, pool, ref_pool = run_both(
        [3, 17, 40],
        [1, 1, 1],
        forward_kwargs={"max_query_len": 1, "max_seq_len": 41, "validate": False},
        pool_index=1,
    )
    assert_close(out, ref, pool, ref_pool)


def test_prefill_on_an_offset_pool_writes_only_its_own_layer():
    (q, k, v), pool, layout, kw = make_batch([16], [5], pool_index=1)
    base = pool._base if pool._base is not None else pool
    other = base[0].clone()
    ref_pool = pool.clone()
    out = paged_attention_forward(q, k, v, pool, layout, **kw)
    ref = paged_attention_reference(q, k, v, ref_pool, layout, **kw)
    assert torch.equal(base[0], other), "write_kv touched another layer's pages"
    assert_close(out, ref, pool, ref_pool)


def test_output_buffer_and_padding_rows():
    # T = 6 tokens, the last one padding (slot -1, beyond query_start_loc[-1]): left untouched.
    (q, k, v), pool, layout, kw = make_batch([8, 0], [1, 4])
    pad = lambda x: torch.cat([x, x[:1]])  # noqa: E731
    kw_pad = dict(kw, slot_mapping=torch.cat([kw["slot_mapping"], kw["slot_mapping"].new_tensor([-1])]))
    ref_pool = pool.clone()
    buf = torch.full((6, H_Q, D), 7.0, dtype=torch.float16, device=DEV)
    res = paged_attention_forward(pad(q), pad(k), pad(v), pool, layout, out=buf, **kw_pad)
    ref = paged_attention_reference(q, k, v, ref_pool, layout, **kw)
    assert res is buf and bool((buf[5] == 7.0).all())
    torch.testing.assert_close(buf[:5].float(), ref.float(), atol=1.5e-2, rtol=1.5e-2)


def test_validation_errors():
    (q, k, v), pool, layout, kw = make_batch([4, 4], [1, 2])
    with pytest.raises(ValueError, match="multiple of the 2 KV heads"):
        paged_attention_forward(q[:, :3], k, v, pool, layout, **kw)
    with pytest.raises(TypeError, match="query"):
        paged_attention_forward(q.float(), k.float(), v.float(), pool, layout, **kw)
    with pytest.raises(ValueError, match="query_start_loc: expected 3"):
        paged_attention_forward(q, k, v, pool, layout, **dict(kw, query_start_loc=kw["query_start_loc"][:2]))
    with pytest.raises(ValueError, match="T == B"):
        paged_attention_forward(q, k, v, pool.clone(), layout, max_query_len=1, **kw)
    with pytest.raises(ValueError, match="shorter than its 2 new tokens"):
        paged_attention_forward(
            q, k, v, pool.clone(), layout, **dict(kw, seq_lens=kw["seq_lens"].new_tensor([5, 1]))
        )
    with pytest.raises(ValueError, match="same rotation"):
        paged_attention_forward(
            q, k, v, pool, layout, **dict(kw, v_quantizer=TurboQuantMSE(D, 4, seed=7).to(DEV))
        )
    with pytest.raises(ValueError, match="max_scratch_tokens"):
        paged_attention_forward(q, k, v, pool, layout, max_scratch_tokens=0, **kw)
    with pytest.raises(ValueError, match="pool"):
        paged_attention_forward(q, k, v, pool[:, :, :-4], layout, **kw)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_decode_only_path_replays_in_a_cuda_graph():
    # The decode-only path (max_query_len=1, validate=False) must have no host syncs: capture
    # it once, then replay with new inputs copied into the same buffers.
    (q, k, v), pool, layout, kw = make_batch([3, 17, 40], [1, 1, 1])
    out = torch.empty_like(q)
    step = lambda: paged_attention_forward(  # noqa: E731
        q, k, v, pool, layout, max_query_len=1, max_seq_len=48, validate=False, out=out, **kw
    )
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up: autotuning and compilation happen outside the capture
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    for x in (q, k, v):
        x.copy_(torch.randn_like(x))
    ref_pool = pool.clone()
    graph.replay()
    torch.cuda.synchronize()
    ref = paged_attention_reference(q, k, v, ref_pool, layout, **kw)
    assert_close(out, ref, pool, ref_pool)
