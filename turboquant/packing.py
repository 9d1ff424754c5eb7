"""Bit packing of quantization indices.

One layout everywhere (docs/ARCHITECTURE.md): the codes of a vector's indices form a
little-endian bit stream; code ``j`` occupies stream bits ``[j*b, (j+1)*b)`` and stream bit
``k`` is bit ``k % 8`` of byte ``k // 8``. So 3-bit codes really straddle byte boundaries: 8
of them fill 3 bytes, and d=128 packs to 48 bytes.

**Sign-magnitude codes.** What is stored for index ``i`` (the rank of the centroid in sorted
order) is ``code(i) = i`` for the upper half ``i >= h = 2**(b-1)`` and ``i ^ (h - 1)`` (that
is ``h - 1 - i``) for the lower half: the top bit says which half, the low ``b - 1`` bits
count outward from the middle. For the symmetric Lloyd-Max codebooks the top bit is the sign
and the low bits index the magnitude, which is what the kernels' register lookups take
without arithmetic (the decode kernel's lookup lost a shift, a multiply and two logic ops per
8 indices). ``code`` is its own inverse; :func:`pack_indices` applies it and
:func:`unpack_indices` undoes it, so indices in and out are the sorted ranks as before, and
:func:`code_order` gives the kernels their tables in code order.

Implementation: indices are taken in groups of ``g = 8 / gcd(b, 8)``; one group is exactly
``g*b/8`` whole bytes (at most 56 bits), assembled in an int64 and split into bytes.
"""

from __future__ import annotations

import math

import torch

from .validation import check_bits, check_tensor

SUPPORTED_BITS = tuple(range(1, 9))


def packed_nbytes(d: int, bits: int) -> int:
    """Bytes one vector of ``d`` ``bits``-bit indices packs to: ``ceil(d * bits / 8)``."""
    check_bits("bits", bits, SUPPORTED_BITS)
    return (d * bits + 7) // 8


def _group(bits: int) -> tuple[int, int]:
    g = 8 // math.gcd(bits, 8)
    return g, g * bits // 8


def index_codes(idx: torch.Tensor, bits: int) -> torch.Tensor:
    """The sign-magnitude code of every ``bits``-bit index (see the module docstring); the map
    is its own inverse, so it also turns codes back into indices. Same dtype and device."""
    check_bits("bits", bits, SUPPORTED_BITS)
    half = 1 << (bits - 1)
    return torch.where(idx < half, idx ^ (half - 1), idx)


def code_order(table: torch.Tensor) -> torch.Tensor:
    """A per-index table (``2**bits`` entries along the last dimension, e.g. sorted centroids)
    reordered so that entry ``c`` belongs to the index whose code is ``c``: the lower half
    reversed, the upper half as it is. Device ops only (fine inside a CUDA graph capture)."""
    n = table.shape[-1]
    if n < 2 or n & (n - 1):
        raise ValueError(f"table: expected 2**bits entries (bits >= 1) along the last dimension, got {n}")
    return torch.cat([table[..., : n // 2].flip(-1), table[..., n // 2 :]], -1)


def pack_indices(idx: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack uint8 indices ``[..., d]`` (each < 2**bits) as their codes (:func:`index_codes`)
    into uint8 ``[..., ceil(d*bits/8)]``."""
    check_bits("bits", bits, SUPPORTED_BITS)
    check_tensor("idx", idx, dtypes=(torch.uint8,))
    if idx.dim() == 0:
        raise ValueError("idx: expected a tensor of rank >= 1, got a scalar")
    d = idx.shape[-1]
    nbytes = packed_nbytes(d, bits)
    if bits == 8:
        return index_codes(idx, bits).contiguous()
    g, gbytes = _group(bits)
    pad = (-d) % g
    x = index_codes(idx, bits).to(torch.int64)
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
    x = x.reshape(*idx.shape[:-1], (d + pad) // g, g)
    shifts = torch.arange(g, device=idx.device, dtype=torch.int64) * bits
    word = (x << shifts).sum(-1, keepdim=True)  # disjoint bit ranges: sum == or
    byte_shifts = torch.arange(gbytes, device=idx.device, dtype=torch.int64) * 8
    out = ((word >> byte_shifts) & 0xFF).to(torch.uint8)
    return out.reshape(*idx.shape[:-1], out.shape[-2] * gbytes)[..., :nbytes].contiguous()


def unpack_indices(packed: torch.Tensor, bits: int, d: int) -> torch.Tensor:
    """Inverse of :func:`pack_indices`: uint8 ``[..., ceil(d*bits/8)]`` → uint8 indices
    ``[..., d]`` (the codes decoded)."""
    check_bits("bits", bits, SUPPORTED_BITS)
    check_tensor("packed", packed, dtypes=(torch.uint8,))
    nbytes = packed_nbytes(d, bits)
    if packed.dim() == 0 or packed.shape[-1] != nbytes:
        raise ValueError(
            f"packed: expected last dimension ceil({d}*{bits}/8) = {nbytes}, got shape {tuple(packed.shape)}"
        )
    if bits == 8:
        return index_codes(packed, bits).contiguous()
    g, gbytes = _group(bits)
    ngroups = -(-d // g)
    x = packed.to(torch.int64)
    pad = ngroups * gbytes - nbytes
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
    x = x.reshape(*packed.shape[:-1], ngroups, gbytes)
    byte_shifts = torch.arange(gbytes, device=packed.device, dtype=torch.int64) * 8
    word = (x << byte_shifts).sum(-1, keepdim=True)
    shifts = torch.arange(g, device=packed.device, dtype=torch.int64) * bits
    idx = index_codes(((word >> shifts) & ((1 << bits) - 1)).to(torch.uint8), bits)
    return idx.reshape(*packed.shape[:-1], ngroups * g)[..., :d].contiguous()
