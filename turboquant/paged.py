"""The paged TurboQuant KV pool: layout, slot-mapping writes, and plain-torch reads.

One uint8 tensor ``[num_blocks, block_size, bytes_per_token]`` holds the compressed K and V of
every KV head (docs/ARCHITECTURE.md, "Paged pool"). A page (block) of ``P = block_size`` tokens
is *head-major*: the packed K indices of head 0's ``P`` tokens as one run, then head 1's, ...,
then the K norms (fp32, ``[H, P]``), the V indices (``[H, P, D*v_bits/8]``) and the V norms, so
the tile of one KV head, which is what a decode program reads, is one contiguous run per page.
Token ``t`` of a sequence lives in block ``block_table[t // block_size]`` at row
``t % block_size``; a *slot* is ``block_id * block_size + row`` (vLLM's ``slot_mapping``).

This module imports no vllm: the vLLM backend, the paged decode kernel
(:func:`turboquant.triton.decode.tq_paged_decode`) and the tests share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .packing import packed_nbytes
from .storage import NORM_BYTES
from .validation import check_bits, check_float_tensor, check_head_dim, check_tensor

PAGED_BITS = (2, 3, 4)


@dataclass(frozen=True)
class PagedKVLayout:
    """Byte layout of the paged pool's pages (see the module docstring).

    Args:
        num_kv_heads: KV heads stored per token (>= 1).
        head_dim: ``D``; ``D * bits`` must be a multiple of 32 for both bit widths so that every
            record (and so every norm) is 4-byte aligned.
        k_bits, v_bits: bits per coordinate of keys and values, one of 2, 3, 4.
    """

    num_kv_heads: int
    head_dim: int
    k_bits: int = 4
    v_bits: int = 4

    def __post_init__(self) -> None:
        h = self.num_kv_heads
        if isinstance(h, bool) or not isinstance(h, int) or h < 1:
            raise ValueError(f"num_kv_heads: expected an int >= 1, got {self.num_kv_heads!r}")
        check_head_dim(self.head_dim)
        check_bits("k_bits", self.k_bits, PAGED_BITS)
        check_bits("v_bits", self.v_bits, PAGED_BITS)
        for name, bits in (("k_bits", self.k_bits), ("v_bits", self.v_bits)):
            if (self.head_dim * bits) % 32:
                raise ValueError(
                    f"head_dim * {name} must be a multiple of 32 so records stay 4-byte aligned "
                    f"for their fp32 norms; got head_dim={self.head_dim}, {name}={bits}"
                )

    @property
    def k_packed_bytes(self) -> int:
        """Packed index bytes of one K vector: ``D * k_bits / 8``."""
        return packed_nbytes(self.head_dim, self.k_bits)

    @property
    def v_packed_bytes(self) -> int:
        """Packed index bytes of one V vector: ``D * v_bits / 8``."""
        return packed_nbytes(self.head_dim, self.v_bits)

    @property
    def k_record(self) -> int:
        """Bytes of one KV head's K per token (packed indices + fp32 norm)."""
        return self.k_packed_bytes + NORM_BYTES

    @property
    def v_record(self) -> int:
        """Bytes of one KV head's V per token (packed indices + fp32 norm)."""
        return self.v_packed_bytes + NORM_BYTES

    @property
    def bytes_per_token(self) -> int:
        """Bytes of one token in the pool: K indices and norms of all heads, then V's."""
        return self.num_kv_heads * (self.k_record + self.v_record)

    def page_offsets(self, block_size: int) -> tuple[int, int, int, int]:
        """Byte offsets inside a page of ``block_size`` tokens of its four regions: K indices
        ``[H, P, D*k_bits/8]``, K norms fp32 ``[H, P]``, V indices ``[H, P, D*v_bits/8]``, V norms
        ``[H, P]``."""
        hp = self.num_kv_heads * _check_block_size(block_size)
        k_norms = hp * self.k_packed_bytes
        v = k_norms + hp * NORM_BYTES
        v_norms = v + hp * self.v_packed_bytes
        return 0, k_norms, v, v_norms

    def page_bytes(self, block_size: int) -> int:
        """Bytes of one page (block) of ``block_size`` tokens."""
        _check_block_size(block_size)
        return block_size * self.bytes_per_token


def _check_block_size(block_size: object) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size: expected an int >= 1, got {block_size!r}")
    if block_size & (block_size - 1):
        raise ValueError(f"block_size: expected a power of two (the kernels shift by it), got {block_size}")
    return block_size


def allocate_pool(
    num_blocks: int, block_size: int, layout: PagedKVLayout, device: torch.device | str | None = None
) -> torch.Tensor:
    """A zeroed pool: uint8 ``[num_blocks, block_size, layout.bytes_per_token]`` on ``device``."""
    if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
        raise ValueError(f"num_blocks: expected an int >= 1, got {num_blocks!r}")
    _check_block_size(block_size)
    if not isinstance(layout, PagedKVLayout):
        raise TypeError(f"layout: expected a PagedKVLayout, got {type(layout).__name__}")
    return torch.zeros(num_blocks, block_size, layout.bytes_per_token, dtype=torch.uint8, device=device)


def check_pool(pool: object, layout: PagedKVLayout) -> torch.Tensor:
    """Check that ``pool`` is a contiguous uint8 ``[num_blocks, block_size, bytes_per_token]``
    tensor whose last dimension matches ``layout``; returns it."""
    if not isinstance(layout, PagedKVLayout):
        raise TypeError(f"layout: expected a PagedKVLayout, got {type(layout).__name__}")
    check_tensor("pool", pool, ndim=3, dtypes=(torch.uint8,))
    if pool.shape[2] != layout.bytes_per_token:
        raise ValueError(
            f"pool: its pages hold {pool.shape[2]} bytes per token but the layout {layout} needs "
            f"{layout.bytes_per_token}; the pool was allocated for another layout "
            f"(heads, head_dim or bits differ)"
        )
    _check_block_size(pool.shape[1])
    if not pool.is_contiguous():
        raise ValueError("pool: expected a contiguous tensor (kernels address it by byte offsets)")
    return pool


def check_block_tables(
    block_table: torch.Tensor, seq_lens: torch.Tensor, num_blocks: int, block_size: int
) -> None:
    """Value checks of a batch's block tables (reads them: a device sync).

    ``block_table`` int32 ``[B, max_blocks]``, ``seq_lens`` int32 ``[B]``. Every length must lie
    in ``[0, max_blocks * block_size]`` and every block id a sequence uses (its first
    ``ceil(len / block_size)`` entries) in ``[0, num_blocks)``; unused entries are ignored.
    """
    capacity = block_table.shape[1] * block_size
    lens = seq_lens.to(torch.int64).cpu()
    if lens.numel() and (int(lens.min()) < 0 or int(lens.max()) > capacity):
        b = int(torch.nonzero((lens < 0) | (lens > capacity))[0])
        raise ValueError(
            f"seq_lens[{b}] = {int(lens[b])} is beyond the block table's capacity: expected "
            f"0 <= len <= max_blocks * block_size = {block_table.shape[1]} * {block_size} = {capacity}"
        )
    table = block_table.to(torch.int64).cpu()
    used = torch.arange(table.shape[1]).unsqueeze(0) < ((lens + block_size - 1) // block_size).unsqueeze(1)
    bad = used & ((table < 0) | (table >= num_blocks))
    if bool(bad.any()):
        b, p = (int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(
            f"block_table[{b}, {p}] = {int(table[b, p])} is out of range: the pool has "
            f"{num_blocks} blocks (ids 0..{num_blocks - 1}), and sequence {b} of length "
            f"{int(lens[b])} uses its first {int((lens[b] + block_size - 1) // block_size)} entries"
        )


def _check_quantizer(name: str, quantizer: object, layout: PagedKVLayout, bits: int) -> None:
    for attr in ("bits", "head_dim", "rotation", "centroids"):
        if not hasattr(quantizer, attr):
            raise TypeError(f"{name}: expected a TurboQuantMSE, got {type(quantizer).__name__}")
    if quantizer.bits != bits or quantizer.head_dim != layout.head_dim:
        raise ValueError(
            f"{name}: expected a quantizer with head_dim={layout.head_dim}, bits={bits} (the "
            f"layout's), got head_dim={quantizer.head_dim}, bits={quantizer.bits}"
        )


def _check_write_inputs(pool, layout, key, value, slot_mapping, k_quantizer, v_quantizer) -> None:
    check_pool(pool, layout)
    h, d = layout.num_kv_heads, layout.head_dim
    for name, x in (("key", key), ("value", value)):
        check_float_tensor(name, x, last_dim=d)
        if x.dim() != 3 or x.shape[1] != h:
            raise ValueError(f"{name}: expected shape [T, {h}, {d}], got {tuple(x.shape)}")
        if x.device != pool.device:
            raise ValueError(f"{name}: expected a tensor on {pool.device} (the pool's), got {x.device}")
    if key.shape != value.shape:
        raise ValueError(f"value: expected the shape of key {tuple(key.shape)}, got {tuple(value.shape)}")
    check_tensor("slot_mapping", slot_mapping, ndim=1, dtypes=(torch.int64,), device=pool.device)
    if slot_mapping.shape[0] != key.shape[0]:
        raise ValueError(
            f"slot_mapping: expected {key.shape[0]} entries (one per token), got {slot_mapping.shape[0]}"
        )
    _check_quantizer("k_quantizer", k_quantizer, layout, layout.k_bits)
    _check_quantizer("v_quantizer", v_quantizer, layout, layout.v_bits)


def _record_views(pool: torch.Tensor, layout: PagedKVLayout, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Strided views of the pool for K or V: packed uint8 ``[num_blocks, P, H, D*b/8]`` and
    fp32 norms ``[num_blocks, P, H]`` (the pool seen as 4-byte words; every region is 4-byte
    aligned). Dimension 1 is the row in the page, so ``view[slot // P, slot % P]`` is a slot."""
    num_blocks, page, h = pool.shape[0], pool.shape[1], layout.num_kv_heads
    page_bytes = layout.page_bytes(page)
    k, k_norms, v, v_norms = layout.page_offsets(page)
    nbytes, start, norm_start = (
        (layout.k_packed_bytes, k, k_norms) if which == "k" else (layout.v_packed_bytes, v, v_norms)
    )
    flat = pool.view(num_blocks, page_bytes)
    # as_strided takes an absolute storage offset: vLLM hands each layer a view into one buffer
    packed = flat.as_strided(
        (num_blocks, page, h, nbytes), (page_bytes, nbytes, page * nbytes, 1), flat.storage_offset() + start
    )
    words = pool.view(torch.float32).view(num_blocks, page_bytes // 4)
    norms = words.as_strided(
        (num_blocks, page, h), (page_bytes // 4, 1, page), words.storage_offset() + norm_start // 4
    )
    return packed, norms


def _check_slots(slot_mapping: torch.Tensor, num_slots: int) -> None:
    """Slots must be < num_slots; negative slots mark padding tokens (skipped), as in vLLM."""
    if slot_mapping.numel() and int(slot_mapping.max()) >= num_slots:
        raise ValueError(
            f"slot_mapping: expected slots < num_blocks * block_size = {num_slots} (negative = skip), "
            f"got {int(slot_mapping.max())}"
        )


def write_kv_reference(
    pool: torch.Tensor,
    layout: PagedKVLayout,
    key: torch.Tensor,
    value: torch.Tensor,
    slot_mapping: torch.Tensor,
    k_quantizer,
    v_quantizer,
) -> None:
    """Plain-torch :func:`write_kv`: quantize with the quantizers and copy the index and norm bytes.

    ``key``/``value`` ``[T, H_kv, D]`` (fp16/bf16/fp32), ``slot_mapping`` int64 ``[T]``
    (negative entries are skipped). Writes ``pool`` in place.
    """
    _check_write_inputs(pool, layout, key, value, slot_mapping, k_quantizer, v_quantizer)
    _check_slots(slot_mapping, pool.shape[0] * pool.shape[1])
    keep = slot_mapping >= 0
    slots = slot_mapping[keep].long()
    if slots.numel() == 0:
        return
    page = pool.shape[1]
    blk, row = slots // page, slots % page
    for x, quantizer, which in ((key, k_quantizer, "k"), (value, v_quantizer, "v")):
        packed, norms = quantizer.quantize_packed(x[keep], validate=False)  # [T, H, nb], [T, H]
        packed_view, norms_view = _record_views(pool, layout, which)
        packed_view[blk, row] = packed
        norms_view[blk, row] = norms


def write_kv(
    pool: torch.Tensor,
    layout: PagedKVLayout,
    key: torch.Tensor,
    value: torch.Tensor,
    slot_mapping: torch.Tensor,
    k_quantizer,
    v_quantizer,
) -> None:
    """Compress ``key``/``value`` ``[T, H_kv, D]`` into the pool slots ``slot_mapping`` ``[T]``.

    Writes through strided views of the pool with the fused compress kernel
    (:func:`turboquant.triton.compress.tq4_compress`): no temporary records. Negative slots
    (padding tokens) are skipped. No device sync: slots must be < ``num_blocks * block_size``
    (:func:`write_kv_reference` checks that).
    """
    from .triton.compress import tq4_compress

    _check_write_inputs(pool, layout, key, value, slot_mapping, k_quantizer, v_quantizer)
    for x, quantizer, which in ((key, k_quantizer, "k"), (value, v_quantizer, "v")):
        packed, norms = _record_views(pool, layout, which)
        tq4_compress(
            x,
            quantizer.rotation,
            quantizer.boundaries,
            bits=quantizer.bits,
            out_packed=packed,
            out_norms=norms,
            slot_mapping=slot_mapping,
        )


def read_slots(
    pool: torch.Tensor, layout: PagedKVLayout, slots: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Copy the records of ``slots`` (int64 ``[L]``, each < ``num_blocks * block_size``) out of
    the pool: ``(k_packed [L, H, D*kb/8], k_norms fp32 [L, H], v_packed, v_norms)``."""
    check_pool(pool, layout)
    blk, row = slots // pool.shape[1], slots % pool.shape[1]
    k_packed, k_norms = _record_views(pool, layout, "k")
    v_packed, v_norms = _record_views(pool, layout, "v")
    return k_packed[blk, row], k_norms[blk, row], v_packed[blk, row], v_norms[blk, row]


def sequence_slots(block_table_row: torch.Tensor, seq_len: int, block_size: int) -> torch.Tensor:
    """Slots of tokens ``0..seq_len-1`` of one sequence: int64 ``[seq_len]``."""
    t = torch.arange(seq_len, device=block_table_row.device)
    return block_table_row.long()[t // block_size] * block_size + t % block_size


def gather_kv(
    pool: torch.Tensor,
    layout: PagedKVLayout,
    block_table_row: torch.Tensor,
    seq_len: int,
    k_quantizer,
    v_quantizer,
    rotated: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decompress one sequence's pages: returns ``(key, value)``, fp32 ``[H_kv, seq_len, D]``.

    ``block_table_row`` int32/int64 ``[max_blocks]`` on the pool's device. With ``rotated=True``
    the vectors stay in the rotated space (``n * c[idx]``, what attention with a rotated query
    needs); otherwise they are rotated back (``n * c[idx] @ Pi``). For references and
    bounded-scratch prefill.
    """
    check_pool(pool, layout)
    check_tensor(
        "block_table_row", block_table_row, ndim=1, dtypes=(torch.int32, torch.int64), device=pool.device
    )
    _check_quantizer("k_quantizer", k_quantizer, layout, layout.k_bits)
    _check_quantizer("v_quantizer", v_quantizer, layout, layout.v_bits)
    if isinstance(seq_len, bool) or not isinstance(seq_len, int):
        raise TypeError(f"seq_len: expected an int, got {seq_len!r}")
    num_blocks, block_size = pool.shape[0], pool.shape[1]
    check_block_tables(block_table_row.unsqueeze(0), torch.tensor([seq_len]), num_blocks, block_size)
    k_packed, k_norms, v_packed, v_norms = read_slots(
        pool, layout, sequence_slots(block_table_row, seq_len, block_size)
    )
    out = []
    for quantizer, packed, norms in ((k_quantizer, k_packed, k_norms), (v_quantizer, v_packed, v_norms)):
        x = (
            quantizer.dequantize_rotated_packed(packed, norms)
            if rotated
            else quantizer.dequantize_packed(packed, norms)
        )
        out.append(x.transpose(0, 1).contiguous())
    return out[0], out[1]
