"""Attention over the paged TurboQuant pool for one vLLM-shaped batch (no vllm import).

A batch is a flat list of ``T`` new tokens from ``B`` sequences, in vLLM's varlen form:
``query_start_loc`` ``[B+1]`` delimits each sequence's new tokens, ``seq_lens`` ``[B]`` counts
each sequence's tokens *including* the new ones, ``block_table`` ``[B, max_blocks]`` maps its
token ``t`` to page ``block_table[b, t // block_size]``, and ``slot_mapping`` ``[T]`` gives the
pool slot of each new token (negative = padding, skipped). The new tokens of a sequence are its
last ``q_len`` positions, so attention is causal with the queries aligned to the end of the keys.

:func:`paged_attention_forward` does, in order:

1. write the new K/V into their slots (:func:`turboquant.paged.write_kv`, fused compress);
2. *decode rows* -- every sequence with one new token, plus every token of a prefill whose
   context exceeds ``max_scratch_tokens`` -- in **one** launch of the paged decode kernel
   (:func:`turboquant.triton.decode.tq_paged_decode`), which reads the compressed pages
   directly: row ``r`` attends to the first ``row_len[r]`` tokens of its sequence;
3. every other prefill / chunked-prefill sequence through the fused FlashAttention kernel on a
   bounded scratch: its pages are decompressed in the rotated space (``gather_kv``, at most
   ``max_scratch_tokens`` tokens), the queries rotated (``q @ Pi.T``), attention runs causal
   (``triton_flash_attention``) and the output is rotated back (``@ Pi``).

Host synchronisation (what CUDA graphs can capture): with ``max_query_len == 1`` (a pure
decode batch, as vLLM's metadata says) the call is one ``write_kv`` and one
``tq_paged_decode`` on the given tensors: no device-to-host copy, no allocation whose size
depends on data. A batch with prefills needs the per-sequence lengths on the host: pass
``query_start_loc_cpu`` / ``seq_lens_cpu`` (vLLM has them) to avoid a device sync; the prefill
path itself allocates scratch per sequence and is not capturable.

:func:`paged_attention_reference` is the plain-torch spec: a torch write of the records, then
per-sequence attention on the dequantized K/V in fp32, in the original space.
"""

from __future__ import annotations

import math

import torch

from .paged import PagedKVLayout, check_pool, gather_kv, write_kv, write_kv_reference
from .validation import check_tensor

ATTN_DTYPES = (torch.float16, torch.bfloat16)
DEFAULT_MAX_SCRATCH_TOKENS = 8192


def _check_batch(
    query,
    key,
    value,
    pool,
    layout,
    slot_mapping,
    block_table,
    seq_lens,
    query_start_loc,
    k_quantizer,
    v_quantizer,
) -> None:
    """Shape/dtype/device checks shared by the kernel path and the reference (no device sync)."""
    check_pool(pool, layout)
    h, d = layout.num_kv_heads, layout.head_dim
    check_tensor("query", query, ndim=3, dtypes=ATTN_DTYPES, device=pool.device, last_dim=d)
    if query.shape[1] % h:
        raise ValueError(
            f"query: expected a multiple of the {h} KV heads as query heads (GQA), "
            f"got shape {tuple(query.shape)}"
        )
    for name, x in (("key", key), ("value", value)):
        check_tensor(name, x, ndim=3, dtypes=(query.dtype,), device=pool.device)
        if tuple(x.shape) != (query.shape[0], h, d):
            raise ValueError(f"{name}: expected shape [{query.shape[0]}, {h}, {d}], got {tuple(x.shape)}")
    index_dtypes = (torch.int32, torch.int64)
    check_tensor("slot_mapping", slot_mapping, ndim=1, dtypes=index_dtypes, device=pool.device)
    check_tensor("block_table", block_table, ndim=2, dtypes=index_dtypes, device=pool.device)
    check_tensor("seq_lens", seq_lens, ndim=1, dtypes=index_dtypes, device=pool.device)
    check_tensor("query_start_loc", query_start_loc, ndim=1, dtypes=index_dtypes, device=pool.device)
    b = seq_lens.shape[0]
    if slot_mapping.shape[0] != query.shape[0]:
        raise ValueError(
            f"slot_mapping: expected {query.shape[0]} entries (one per token), got {slot_mapping.shape[0]}"
        )
    if block_table.shape[0] != b:
        raise ValueError(
            f"block_table: expected {b} rows (one per sequence, as seq_lens), got {block_table.shape[0]}"
        )
    if query_start_loc.shape[0] != b + 1:
        raise ValueError(f"query_start_loc: expected {b + 1} entries (B + 1), got {query_start_loc.shape[0]}")
    for name, q in (("k_quantizer", k_quantizer), ("v_quantizer", v_quantizer)):
        if not hasattr(q, "rotation") or q.rotation.device != pool.device:
            raise ValueError(f"{name}: expected a TurboQuantMSE on {pool.device} (call .to(device))")
    # Attention stays in one rotated space for K and V: both must share Pi.
    if (k_quantizer.seed, k_quantizer.rotation_kind) != (v_quantizer.seed, v_quantizer.rotation_kind):
        raise ValueError(
            "k_quantizer, v_quantizer: expected the same rotation (seed and kind), got "
            f"seed={k_quantizer.seed}/{k_quantizer.rotation_kind!r} and "
            f"seed={v_quantizer.seed}/{v_quantizer.rotation_kind!r}"
        )


def _host_lengths(query_start_loc, seq_lens, query_start_loc_cpu, seq_lens_cpu, num_tokens):
    """Per-sequence ``(q_lens, seq_lens)`` as Python lists (a device sync unless host copies are given)."""
    qsl = (query_start_loc if query_start_loc_cpu is None else query_start_loc_cpu).tolist()
    lens = (seq_lens if seq_lens_cpu is None else seq_lens_cpu).tolist()
    if len(qsl) != len(lens) + 1:
        raise ValueError(f"query_start_loc_cpu: expected {len(lens) + 1} entries, got {len(qsl)}")
    q_lens = [e - s for s, e in zip(qsl[:-1], qsl[1:], strict=True)]
    if qsl[0] != 0 or min(q_lens, default=0) < 0 or qsl[-1] > num_tokens:
        raise ValueError(
            f"query_start_loc: expected a non-decreasing sequence from 0 to at most {num_tokens} "
            f"(the number of tokens), got {qsl}"
        )
    bad = [i for i, (q, n) in enumerate(zip(q_lens, lens, strict=True)) if n < q]
    if bad:
        i = bad[0]
        raise ValueError(
            f"seq_lens[{i}] = {lens[i]} is shorter than its {q_lens[i]} new tokens: seq_lens counts "
            "the cached tokens plus the new ones"
        )
    return qsl, q_lens, lens


def paged_attention_forward(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    pool: torch.Tensor,
    layout: PagedKVLayout,
    *,
    slot_mapping: torch.Tensor,
    block_table: torch.Tensor,
    seq_lens: torch.Tensor,
    query_start_loc: torch.Tensor,
    k_quantizer,
    v_quantizer,
    sm_scale: float | None = None,
    max_query_len: int | None = None,
    max_seq_len: int | None = None,
    query_start_loc_cpu: torch.Tensor | None = None,
    seq_lens_cpu: torch.Tensor | None = None,
    max_scratch_tokens: int = DEFAULT_MAX_SCRATCH_TOKENS,
    validate: bool = True,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Write the batch's new K/V into the paged pool and attend (decode + prefill, mixed).

    Args:
        query: ``[T, H_q, D]`` fp16/bf16, ``H_q`` a multiple of ``H_kv``.
        key, value: ``[T, H_kv, D]``, dtype of ``query``.
        pool: uint8 ``[num_blocks, block_size, layout.bytes_per_token]`` (written in place).
        layout: the pool's :class:`~turboquant.paged.PagedKVLayout`.
        slot_mapping: int32/int64 ``[T]``, pool slot of each new token (< 0: padding, skipped).
        block_table: int32/int64 ``[B, max_blocks]``.
        seq_lens: int32/int64 ``[B]``, tokens of each sequence including the new ones.
        query_start_loc: int32/int64 ``[B + 1]``, token offsets of the sequences in ``query``.
        k_quantizer, v_quantizer: :class:`~turboquant.quantizer.TurboQuantMSE` of the pool's
            K/V bits, on the pool's device, sharing one rotation.
        sm_scale: softmax scale, default ``1/sqrt(D)``.
        max_query_len: longest ``q_len`` of the batch if known on the host; ``1`` selects the
            sync-free decode-only path (requires ``T == B``).
        max_seq_len: an upper bound of ``seq_lens`` known on the host (sizes the decode
            kernel's context splits; default: the block table's capacity).
        query_start_loc_cpu, seq_lens_cpu: host copies for batches with prefills (else read
            from the device tensors: a sync).
        max_scratch_tokens: largest context decompressed for the FlashAttention prefill path;
            longer prefills run through the paged decode kernel, one row per query token.
        validate: let the decode kernel check block ids and lengths against the pool (reads
            them: a device sync); pass ``False`` on hot paths and under CUDA graphs.
        out: optional ``[T, H_q, D]`` output buffer (dtype of ``query``).

    Returns:
        ``[T, H_q, D]`` in the dtype of ``query`` (``out`` when given). Rows of tokens beyond
        ``query_start_loc[-1]`` (padding) are left untouched.
    """
    from .triton.decode import tq_paged_decode
    from .triton.flash_attention import triton_flash_attention

    _check_batch(
        query,
        key,
        value,
        pool,
        layout,
        slot_mapping,
        block_table,
        seq_lens,
        query_start_loc,
        k_quantizer,
        v_quantizer,
    )
    if (
        isinstance(max_scratch_tokens, bool)
        or not isinstance(max_scratch_tokens, int)
        or max_scratch_tokens < 1
    ):
        raise ValueError(f"max_scratch_tokens: expected an int >= 1, got {max_scratch_tokens!r}")
    if out is None:
        out = torch.empty_like(query)
    elif out.shape != query.shape or out.dtype != query.dtype or out.device != query.device:
        raise ValueError(
            f"out: expected a {query.dtype} tensor of shape {tuple(query.shape)} on {query.device}, got "
            f"{out.dtype} {tuple(out.shape)} on {out.device}"
        )
    num_tokens, num_seqs = query.shape[0], seq_lens.shape[0]
    scale = 1.0 / math.sqrt(layout.head_dim) if sm_scale is None else float(sm_scale)
    rotation = k_quantizer.rotation

    def decode(q: torch.Tensor, table: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        return tq_paged_decode(
            q,
            pool,
            layout,
            table.to(torch.int32),
            lens.to(torch.int32),
            rotation,
            k_quantizer.centroids,
            v_quantizer.centroids,
            sm_scale=scale,
            max_seq_len=max_seq_len,
            validate=validate,
        )

    if max_query_len == 1:
        # Pure decode: token b is sequence b's only new token. No host reads, no data-dependent shapes.
        if num_tokens != num_seqs:
            raise ValueError(
                f"max_query_len=1 means one new token per sequence: expected T == B, got T={num_tokens}, "
                f"B={num_seqs}"
            )
        write_kv(pool, layout, key, value, slot_mapping, k_quantizer, v_quantizer)
        if num_tokens:
            out.copy_(decode(query, block_table, seq_lens))
        return out

    qsl, q_lens, lens = _host_lengths(
        query_start_loc, seq_lens, query_start_loc_cpu, seq_lens_cpu, num_tokens
    )
    write_kv(pool, layout, key, value, slot_mapping, k_quantizer, v_quantizer)

    # Decode rows: (token, sequence, how many of the sequence's last keys it must not see).
    rows: list[tuple[int, int, int]] = []
    scratch_seqs: list[int] = []
    for b, (start, q_len, n) in enumerate(zip(qsl[:-1], q_lens, lens, strict=True)):
        if q_len == 1:
            rows.append((start, b, 0))
        elif q_len > 1 and n > max_scratch_tokens:
            rows.extend((start + j, b, q_len - 1 - j) for j in range(q_len))
        elif q_len > 1:
            scratch_seqs.append(b)

    if rows:
        tokens, seqs, hidden = zip(*rows, strict=True)
        if list(tokens) == list(range(len(rows))) and list(seqs) == list(range(len(rows))):
            # vLLM orders decodes first: a prefix of tokens and sequences, so plain slices.
            n = len(rows)
            out[:n] = decode(query[:n], block_table[:n], seq_lens[:n])
        else:
            dev = query.device
            tok = torch.tensor(tokens, dtype=torch.long, device=dev)
            seq = torch.tensor(seqs, dtype=torch.long, device=dev)
            # lengths from the device seq_lens (exact even where the host copy is an upper bound)
            row_lens = seq_lens.index_select(0, seq) - torch.tensor(hidden, dtype=seq_lens.dtype, device=dev)
            out.index_copy_(
                0, tok, decode(query.index_select(0, tok), block_table.index_select(0, seq), row_lens)
            )

    pi = rotation
    for b in scratch_seqs:
        start, q_len, n = qsl[b], q_lens[b], lens[b]
        k_rot, v_rot = gather_kv(pool, layout, block_table[b], n, k_quantizer, v_quantizer, rotated=True)
        q_rot = (query[start : start + q_len].float() @ pi.T).to(query.dtype)  # [q_len, H_q, D]
        o = triton_flash_attention(
            q_rot.transpose(0, 1).unsqueeze(0),
            k_rot.to(query.dtype).unsqueeze(0),
            v_rot.to(query.dtype).unsqueeze(0),
            sm_scale=scale,
            is_causal=True,
        )  # [1, H_q, q_len, D] in the rotated space
        out[start : start + q_len] = (o[0].transpose(0, 1).float() @ pi).to(query.dtype)
    return out


def paged_attention_reference(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    pool: torch.Tensor,
    layout: PagedKVLayout,
    *,
    slot_mapping: torch.Tensor,
    block_table: torch.Tensor,
    seq_lens: torch.Tensor,
    query_start_loc: torch.Tensor,
    k_quantizer,
    v_quantizer,
    sm_scale: float | None = None,
) -> torch.Tensor:
    """Plain-torch spec of :func:`paged_attention_forward` (same arguments and result).

    Writes the records with :func:`~turboquant.paged.write_kv_reference`, then for each
    sequence dequantizes its ``seq_len`` cached tokens to the original space and computes
    causal attention (queries aligned to the end of the keys, GQA by repeating KV heads) in
    fp32. Rows of padding tokens are zero.
    """
    _check_batch(
        query,
        key,
        value,
        pool,
        layout,
        slot_mapping,
        block_table,
        seq_lens,
        query_start_loc,
        k_quantizer,
        v_quantizer,
    )
    write_kv_reference(pool, layout, key, value, slot_mapping, k_quantizer, v_quantizer)
    qsl, q_lens, lens = _host_lengths(query_start_loc, seq_lens, None, None, query.shape[0])
    scale = 1.0 / math.sqrt(layout.head_dim) if sm_scale is None else float(sm_scale)
    group = query.shape[1] // layout.num_kv_heads
    out = torch.zeros(query.shape, dtype=torch.float32, device=query.device)
    for b, (start, q_len, n) in enumerate(zip(qsl[:-1], q_lens, lens, strict=True)):
        if q_len == 0:
            continue
        k, v = gather_kv(pool, layout, block_table[b], n, k_quantizer, v_quantizer, rotated=False)
        k = k.repeat_interleave(group, dim=0)  # [H_q, n, D]
        v = v.repeat_interleave(group, dim=0)
        q = query[start : start + q_len].float().transpose(0, 1)  # [H_q, q_len, D]
        scores = (q @ k.transpose(1, 2)) * scale
        visible = torch.ones(q_len, n, dtype=torch.bool, device=query.device).tril(n - q_len)
        probs = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1)
        out[start : start + q_len] = (probs @ v).transpose(0, 1)
    return out.to(query.dtype)
