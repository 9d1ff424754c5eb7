"""Bit packing: exact round trips, exact byte counts, the documented bit order and codes."""

import pytest
import torch

from turboquant import TurboQuantMSE, code_order, index_codes, pack_indices, packed_nbytes, unpack_indices


def _code(v: int, bits: int) -> int:
    # sign-magnitude, from its definition: upper half as it is, lower half counted down from
    # the middle
    half = 1 << (bits - 1)
    return v if v >= half else half - 1 - v


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
    # Independent bit-by-bit construction of the little-endian stream of codes.
    stream = [(_code(v, bits) >> k) & 1 for v in idx for k in range(bits)]
    stream += [0] * (-len(stream) % 8)
    return [sum(bit << k for k, bit in enumerate(stream[i : i + 8])) for i in range(0, len(stream), 8)]


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 8])
def test_bit_order_matches_the_documented_stream(bits):
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 2**bits, (37,), generator=gen).to(torch.uint8)
    assert pack_indices(idx, bits).tolist() == _reference_pack(idx.tolist(), bits)


def test_three_bit_crosses_byte_boundaries():
    idx = torch.tensor([2, 1, 0, 4, 5, 6, 7, 3], dtype=torch.uint8)  # codes 1, 2, 3, 4, 5, 6, 7, 0
    # 1 | 2<<3 | 3<<6 = 209; (3>>2) | 4<<1 | 5<<4 | (6&1)<<7 = 88; (6>>1) | 7<<2 | 0<<5 = 31
    assert pack_indices(idx, 3).tolist() == [209, 88, 31]
    assert pack_indices(torch.tensor([4, 12], dtype=torch.uint8), 4).tolist() == [0xC3]  # codes 3, 12


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 8])
def test_index_codes_are_their_own_inverse(bits):
    idx = torch.arange(2**bits).to(torch.uint8)
    codes = index_codes(idx, bits)
    assert codes.tolist() == [_code(v, bits) for v in range(2**bits)]
    assert torch.equal(index_codes(codes, bits), idx)
    table = torch.arange(2**bits, dtype=torch.float32) * 0.5 - 3.0
    assert torch.equal(code_order(table)[codes.long()], table)  # entry code(i) is table[i]


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_codes_of_a_lloyd_max_codebook_are_sign_and_magnitude(bits):
    """For the symmetric Lloyd-Max codebooks the top bit of a code is the centroid's sign (set:
    positive) and the low bits rank its magnitude, smallest first: what the register lookups
    rely on."""
    c = TurboQuantMSE(128, bits).centroids
    table = code_order(c)
    half = 2 ** (bits - 1)
    assert bool((table[half:] > 0).all()) and bool((table[:half] < 0).all())
    assert torch.equal(table[:half], -table[half:])
    assert bool((table[half:].diff() > 0).all())


def test_bad_input():
    with pytest.raises(TypeError, match="uint8"):
        pack_indices(torch.zeros(8, dtype=torch.int64), 4)
    with pytest.raises(ValueError, match="expected one of"):
        pack_indices(torch.zeros(8, dtype=torch.uint8), 9)
    with pytest.raises(ValueError, match="last dimension"):
        unpack_indices(torch.zeros(2, 5, dtype=torch.uint8), 4, 128)
