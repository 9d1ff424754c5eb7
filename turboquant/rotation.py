"""Seeded random orthogonal rotations.

Two kinds, both exactly orthogonal up to fp32 rounding:

* ``"qr"``: a Haar-random orthogonal matrix, the Q factor of a seeded Gaussian matrix with
  the signs of R's diagonal folded in (without that correction QR output is not uniform).
* ``"hadamard"``: ``H · diag(s) / sqrt(d)`` with ``H`` the Sylvester Hadamard matrix and ``s``
  seeded random signs; cheaper to apply (O(d log d)), for power-of-two ``d`` only.
"""

from __future__ import annotations

from functools import cache

import torch

from .validation import check_head_dim

ROTATION_KINDS = ("qr", "hadamard")


@cache
def _rotation_cpu(d: int, seed: int, kind: str) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if kind == "qr":
        g = torch.randn(d, d, generator=gen, dtype=torch.float64)
        q, r = torch.linalg.qr(g)
        q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    else:
        h = torch.ones(1, 1, dtype=torch.float64)
        while h.shape[0] < d:
            h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
        signs = torch.randint(0, 2, (d,), generator=gen).to(torch.float64) * 2 - 1
        q = h * signs.unsqueeze(0) / d**0.5
    # row-major: LAPACK's Q comes column-major, and a transposed layout made every kernel
    # launch that takes the rotation copy it first (tq4_compress: a 64 KB copy per call)
    return q.to(torch.float32).contiguous()


def random_rotation(
    d: int, seed: int = 42, kind: str = "qr", device: torch.device | str | None = None
) -> torch.Tensor:
    """Return the seeded orthogonal rotation ``Pi`` of shape ``(d, d)``, fp32.

    A vector is rotated as ``y = x @ Pi.T`` and rotated back as ``x = y @ Pi``. The result
    depends only on ``(d, seed, kind)`` (cached), so keys and values share it.
    """
    check_head_dim(d)
    if kind not in ROTATION_KINDS:
        raise ValueError(f"kind: expected one of {ROTATION_KINDS}, got {kind!r}")
    if kind == "hadamard" and d & (d - 1):
        raise ValueError(f"kind='hadamard' needs a power-of-two head_dim, got {d}; use kind='qr'")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {seed!r}")
    rot = _rotation_cpu(d, seed, kind)
    return rot.to(device) if device is not None else rot.clone()
