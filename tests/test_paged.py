"""Paged TurboQuant pool: layout arithmetic, slot-mapping writes, gathers, clear errors."""

import pytest
import torch

from turboquant.paged import (
    PagedKVLayout,
    allocate_pool,
    check_block_tables,
    check_pool,
    gather_kv,
    write_kv,
    write_kv_reference,
)
from turboquant.quantizer import TurboQuantMSE
from turboquant.storage import token_bytes

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def test_layout_arithmetic_d128():
    lay = PagedKVLayout(num_kv_heads=1, head_dim=128)
    assert (lay.k_record, lay.v_record, lay.bytes_per_token) == (68, 68, 136)
    lay8 = PagedKVLayout(8, 128, 4, 4)
    assert lay8.bytes_per_token == 8 * 136 == token_bytes(128, 4, 4, 8)
    # a page of 16 tokens: [K indices, 8 heads x 16 tokens x 64 B | K norms 8 x 16 x 4 B | V's]
    assert lay8.page_offsets(16) == (0, 8192, 8704, 16896)
    assert lay8.page_bytes(16) == 16 * 1088 == 16896 + 512
    lay3 = PagedKVLayout(8, 128, 3, 3)
    assert (lay3.k_record, lay3.bytes_per_token) == (52, 8 * 104)
    mixed = PagedKVLayout(4, 128, 4, 3)
    assert mixed.bytes_per_token == token_bytes(128, 4, 3, 4) == 4 * 120
    assert mixed.page_offsets(2) == (0, 4 * 2 * 64, 4 * 2 * 68, 4 * 2 * 68 + 4 * 2 * 48)
    assert mixed.page_offsets(2)[3] + 4 * 2 * 4 == mixed.page_bytes(2)


def _slot_bytes(pool, lay, slot):
    """The bytes of one slot cut out of the pool by the layout's definition (module docstring
    of turboquant.paged), independently of its views: K indices [H, kb], K norms fp32 [H],
    V indices [H, vb], V norms [H]."""
    page, row = divmod(int(slot), pool.shape[1])
    p, h = pool.shape[1], lay.num_kv_heads
    data = pool[page].reshape(-1).cpu()
    kb, vb = lay.k_packed_bytes, lay.v_packed_bytes
    k_rows = torch.stack([data[(i * p + row) * kb :][:kb] for i in range(h)])
    k_norms = torch.stack([data[h * p * kb + (i * p + row) * 4 :][:4] for i in range(h)])
    v0 = h * p * (kb + 4)
    v_rows = torch.stack([data[v0 + (i * p + row) * vb :][:vb] for i in range(h)])
    v_norms = torch.stack([data[v0 + h * p * vb + (i * p + row) * 4 :][:4] for i in range(h)])
    return k_rows, k_norms.view(torch.float32)[:, 0], v_rows, v_norms.view(torch.float32)[:, 0]


@pytest.mark.parametrize("k_bits, v_bits, h, bs", [(4, 4, 3, 4), (3, 2, 2, 16)])
def test_pages_hold_the_quantizers_records(k_bits, v_bits, h, bs):
    """Every slot's bytes, found by the layout's definition, are the quantizers' packed records."""
    torch.manual_seed(2)
    d = 64
    lay = PagedKVLayout(h, d, k_bits, v_bits)
    kq, vq = _quantizers(d, k_bits, v_bits)
    pool = allocate_pool(5, bs, lay, DEV)
    slots = torch.randperm(5 * bs, device=DEV)[:11]
    key, value = torch.randn(2, 11, h, d, device=DEV)
    write_kv_reference(pool, lay, key, value, slots, kq, vq)
    k_packed, k_norms = kq.quantize_packed(key)
    v_packed, v_norms = vq.quantize_packed(value)
    for t, slot in enumerate(slots.tolist()):
        kr, kn, vr, vn = _slot_bytes(pool, lay, slot)
        assert torch.equal(kr, k_packed[t].cpu()) and torch.equal(vr, v_packed[t].cpu())
        assert torch.equal(kn, k_norms[t].cpu()) and torch.equal(vn, v_norms[t].cpu())
    # nothing else was written
    assert int((pool != 0).sum()) <= 11 * lay.bytes_per_token


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_kv_heads=0, head_dim=128), "num_kv_heads"),
        (dict(num_kv_heads=2, head_dim=128, k_bits=5), "k_bits"),
        (dict(num_kv_heads=2, head_dim=128, v_bits=8), "v_bits"),
        (dict(num_kv_heads=2, head_dim=20, k_bits=3, v_bits=4), "multiple of 32"),
        (dict(num_kv_heads=2, head_dim=1), "head_dim"),
    ],
)
def test_layout_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PagedKVLayout(**kwargs)


def test_layout_and_pool_errors():
    lay = PagedKVLayout(2, 64)
    with pytest.raises(ValueError, match="power of two"):
        lay.page_offsets(24)
    with pytest.raises(ValueError, match="power of two"):
        lay.page_bytes(24)
    with pytest.raises(ValueError, match="power of two"):
        allocate_pool(4, 12, lay)
    pool = allocate_pool(3, 16, lay)
    assert pool.shape == (3, 16, 2 * 72) and pool.dtype == torch.uint8 and not pool.any()
    other = PagedKVLayout(2, 64, 3, 3)
    with pytest.raises(ValueError, match="bytes per token but the layout"):
        check_pool(pool, other)


def _quantizers(d, k_bits, v_bits):
    return TurboQuantMSE(d, k_bits).to(DEV), TurboQuantMSE(d, v_bits, seed=7).to(DEV)


@pytest.mark.parametrize("k_bits, v_bits", [(4, 4), (3, 2)])
def test_write_gather_roundtrip(k_bits, v_bits):
    torch.manual_seed(0)
    d, h, bs = 64, 2, 16
    lay = PagedKVLayout(h, d, k_bits, v_bits)
    kq, vq = _quantizers(d, k_bits, v_bits)
    pool = allocate_pool(6, bs, lay, DEV)
    length = 40
    table = torch.tensor([5, 0, 3, 1], dtype=torch.int32, device=DEV)
    t = torch.arange(length, device=DEV)
    slots = table.long()[t // bs] * bs + t % bs
    key = torch.randn(length, h, d, device=DEV, dtype=torch.float16)
    value = torch.randn(length, h, d, device=DEV, dtype=torch.float16)
    write_kv_reference(pool, lay, key, value, slots, kq, vq)
    # blocks 2 and 4 are unused and stay zero
    assert not pool[[2, 4]].any()

    k_rot, v_rot = gather_kv(pool, lay, table, length, kq, vq)
    idx, norms = kq.quantize(key)
    torch.testing.assert_close(k_rot, kq.dequantize_rotated(idx, norms).transpose(0, 1))
    k_orig, v_orig = gather_kv(pool, lay, table, length, kq, vq, rotated=False)
    torch.testing.assert_close(k_orig, kq.dequantize(idx, norms).transpose(0, 1))
    idx_v, norms_v = vq.quantize(value)
    torch.testing.assert_close(v_orig, vq.dequantize(idx_v, norms_v).transpose(0, 1))
    # the reconstruction is close to the input (the quantizer's distortion)
    rel = ((v_orig.transpose(0, 1) - value.float()).norm() / value.float().norm()).item()
    assert rel < {2: 0.4, 4: 0.12}[v_bits]


def test_write_skips_padding_and_checks_slots():
    d, h = 64, 1
    lay = PagedKVLayout(h, d)
    kq, vq = _quantizers(d, 4, 4)
    pool = allocate_pool(2, 16, lay, DEV)
    x = torch.randn(3, h, d, device=DEV)
    write_kv_reference(pool, lay, x, x, torch.tensor([4, -1, 9], device=DEV), kq, vq)
    written = [s for s in range(32) if any(part.any() for part in _slot_bytes(pool, lay, s))]
    assert written == [4, 9]
    with pytest.raises(ValueError, match="slot_mapping: expected slots < num_blocks"):
        write_kv_reference(pool, lay, x, x, torch.tensor([0, 1, 32], device=DEV), kq, vq)
    with pytest.raises(ValueError, match="bits=3"):
        k3 = TurboQuantMSE(d, 3).to(DEV)
        write_kv_reference(pool, lay, x, x, torch.tensor([0, 1, 2], device=DEV), k3, vq)
    with pytest.raises(ValueError, match=r"key: expected shape \[T, 1, 64\]"):
        write_kv_reference(pool, lay, x.view(3, 1, 1, 64), x, torch.tensor([0, 1, 2], device=DEV), kq, vq)


def test_write_kv_kernel_matches_reference():
    """The fused compress kernel writes the same records through strided views of the pool."""
    torch.manual_seed(1)
    d, h, bs = 64, 2, 16
    lay = PagedKVLayout(h, d, 4, 3)
    kq, vq = _quantizers(d, 4, 3)
    fused, ref = allocate_pool(4, bs, lay, DEV), allocate_pool(4, bs, lay, DEV)
    key = torch.randn(24, h, d, device=DEV, dtype=torch.bfloat16)
    value = torch.randn(24, h, d, device=DEV, dtype=torch.bfloat16)
    slots = torch.randperm(64, device=DEV)[:24]
    slots[5] = -1
    write_kv(fused, lay, key, value, slots, kq, vq)
    write_kv_reference(ref, lay, key, value, slots, kq, vq)
    table = torch.arange(4, dtype=torch.int32, device=DEV)
    pairs = zip(gather_kv(fused, lay, table, 64, kq, vq), gather_kv(ref, lay, table, 64, kq, vq), strict=True)
    for a, b in pairs:
        # indices may differ only where a rotated coordinate sits on a codebook boundary
        mismatch = ((a - b).abs() > 1e-4 * b.abs().amax()).float().mean().item()
        assert mismatch < 0.01
    kept = set(slots[slots >= 0].tolist())
    assert not any(part.any() for s in range(64) if s not in kept for part in _slot_bytes(fused, lay, s))


def test_block_table_errors():
    lay = PagedKVLayout(1, 64)
    kq, vq = _quantizers(64, 4, 4)
    pool = allocate_pool(4, 16, lay, DEV)
    row = torch.tensor([0, 7, 1], dtype=torch.int32, device=DEV)
    gather_kv(pool, lay, row, 16, kq, vq)  # entry 1 unused at length 16
    with pytest.raises(ValueError, match=r"block_table\[0, 1\] = 7 is out of range: the pool has 4 blocks"):
        gather_kv(pool, lay, row, 17, kq, vq)
    with pytest.raises(ValueError, match="beyond the block table's capacity"):
        gather_kv(pool, lay, row, 49, kq, vq)
    with pytest.raises(ValueError, match=r"seq_lens\[1\] = -1"):
        check_block_tables(torch.zeros(2, 2, dtype=torch.int32), torch.tensor([3, -1]), 4, 16)
    with pytest.raises(ValueError, match="out of range"):
        check_block_tables(torch.tensor([[0, -1]], dtype=torch.int32), torch.tensor([20]), 4, 16)
