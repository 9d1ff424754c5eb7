"""Bit packing: exact round trips, exact byte counts, the documented bit order."""

import pytest
import torch

from turboquant import pack_indices, packed_nbytes, unpack_indices


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize(
    "shape", [(1,), (3,), (7, 13), (2, 3, 128), (5, 96), (2, 1, 257), (0, 128), (2, 0, 96)]
)
def test_round_trip_and_byte_count(bits, shape):
    gen = torch.Generator().manual_seed(bits)
    idx = torch.randint(0, 2**bits, shape, generator=gen).to(torch.uint8)
    packed = pack_indices(idx, bits)
    assert packed.dtype == torch.uint8
    assert packed.shape == (*shape[:-1], (shape[-1] * bits + 7) // 8)
    assert torch.equal(unpack_indices(packed, bits, shape[-1]), idx)


@pytest.mark.parametrize("bits,nbytes", [(1, 16), (2, 32), (3, 48), (4, 64), (8, 128)])
def test_d128_byte_counts(bits, nbytes):
    assert packed_nbytes(128, bits) == nbytes


def _reference_pack(idx: list[int], bits: int) -> list[int]:
    # Independent bit-by-bit construction of the little-endian stream.
    stream = [(v >> k) & 1 for v in idx for k in range(bits)]
    stream += [0] * (-len(stream) % 8)
    return [sum(bit << k for k, bit in enumerate(stream[i : i + 8])) for i in range(0, len(stream), 8)]


@pytest.mark.parametrize("bits", [2, 3, 4, 5])
def test_bit_order_matches_the_documented_stream(bits):
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 2**bits, (37,), generator=gen).to(torch.uint8)
    assert pack_indices(idx, bits).tolist() == _reference_pack(idx.tolist(), bits)


def test_three_bit_crosses_byte_boundaries():
    idx = torch.tensor([1, 2, 3, 4, 5, 6, 7, 0], dtype=torch.uint8)
    # 1 | 2<<3 | 3<<6 = 209; (3>>2) | 4<<1 | 5<<4 | (6&1)<<7 = 88; (6>>1) | 7<<2 | 0<<5 = 31
    assert pack_indices(idx, 3).tolist() == [209, 88, 31]
    assert pack_indices(torch.tensor([3, 12], dtype=torch.uint8), 4).tolist() == [0xC3]


def test_bad_input():
    with pytest.raises(TypeError, match="uint8"):
        pack_indices(torch.zeros(8, dtype=torch.int64), 4)
    with pytest.raises(ValueError, match="expected one of"):
        pack_indices(torch.zeros(8, dtype=torch.uint8), 9)
    with pytest.raises(ValueError, match="last dimension"):
        unpack_indices(torch.zeros(2, 5, dtype=torch.uint8), 4, 128)
