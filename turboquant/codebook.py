"""Lloyd-Max codebooks for one coordinate of a uniformly random unit vector.

After a random rotation, each coordinate ``t`` of a unit vector in ``d`` dimensions has the
density ``f(t) ∝ (1 - t²)^((d-3)/2)`` on ``[-1, 1]``; equivalently ``(t + 1) / 2`` follows
``Beta((d-1)/2, (d-1)/2)``. The Lloyd-Max quantizer for that density alternates two exact
steps: boundaries are midpoints of neighbouring centroids, and each centroid is the
conditional mean of its cell, which for a Beta law has a closed form through the regularized
incomplete beta function. No numerical integration is needed.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from scipy import special, stats

from .validation import check_bits, check_head_dim

SUPPORTED_BITS = tuple(range(1, 9))


def _beta_params(d: int) -> float:
    return (d - 1) / 2.0


@cache
def _solve(d: int, bits: int) -> tuple[np.ndarray, np.ndarray, float]:
    a = _beta_params(d)
    levels = 2**bits
    mean_u = 0.5  # a / (a + a)
    # Start from equal-probability cells: robust for every d and bit width.
    edges_u = stats.beta.ppf(np.linspace(0.0, 1.0, levels + 1), a, a)
    edges_u[0], edges_u[-1] = 0.0, 1.0
    for _ in range(10_000):
        p = np.diff(special.betainc(a, a, edges_u))
        first_moment = mean_u * np.diff(special.betainc(a + 1.0, a, edges_u))
        centroids_u = first_moment / np.maximum(p, 1e-300)
        new_inner = 0.5 * (centroids_u[1:] + centroids_u[:-1])
        shift = np.max(np.abs(new_inner - edges_u[1:-1]))
        edges_u[1:-1] = new_inner
        if shift < 1e-13:
            break
    p = np.diff(special.betainc(a, a, edges_u))
    centroids_u = mean_u * np.diff(special.betainc(a + 1.0, a, edges_u)) / np.maximum(p, 1e-300)
    # Symmetrize exactly (the density is symmetric; iteration leaves ~1e-16 asymmetry).
    centroids = 2.0 * centroids_u - 1.0
    centroids = 0.5 * (centroids - centroids[::-1])
    boundaries = 0.5 * (centroids[1:] + centroids[:-1])
    # E[(t - c)^2] per coordinate = E[t^2] - sum_i p_i c_i^2 (centroids are cell means).
    per_coord = 1.0 / d - float(np.sum(p * centroids**2))
    return centroids, boundaries, per_coord * d


def solve_lloyd_max(d: int, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve the Lloyd-Max quantizer for one coordinate of a uniform unit vector in ``d`` dims.

    Args:
        d: vector dimension (>= 2).
        bits: bits per coordinate, 1..8.

    Returns:
        ``(centroids, boundaries)``: fp32 tensors of shape ``(2**bits,)`` and
        ``(2**bits - 1,)``, sorted ascending; boundaries are midpoints of the centroids.
        Deterministic and cached per ``(d, bits)``.
    """
    check_head_dim(d, name="d")
    check_bits("bits", bits, SUPPORTED_BITS)
    centroids, boundaries, _ = _solve(d, bits)
    return (
        torch.tensor(centroids, dtype=torch.float32),
        torch.tensor(boundaries, dtype=torch.float32),
    )


class LloydMaxCodebook:
    """A solved Lloyd-Max codebook for ``(d, bits)``.

    Attributes:
        d, bits: the dimension and bit width it was solved for.
        centroids: fp32 ``(2**bits,)``; boundaries: fp32 ``(2**bits - 1,)``.
        distortion: expected ``||x - x_hat||²`` for a uniform unit vector quantized
            coordinate-wise (after rotation) with this codebook, i.e. ``d`` times the
            per-coordinate mean squared error.
    """

    def __init__(self, d: int, bits: int) -> None:
        self.centroids, self.boundaries = solve_lloyd_max(d, bits)
        self.d, self.bits = d, bits
        self.distortion = _solve(d, bits)[2]

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Map coordinates ``x`` (any shape, float) to uint8 cell indices (same shape)."""
        return torch.bucketize(x.float(), self.boundaries.to(x.device)).to(torch.uint8)

    def dequantize(self, idx: torch.Tensor) -> torch.Tensor:
        """Map uint8 indices back to their fp32 centroids (same shape)."""
        return self.centroids.to(idx.device)[idx.long()]

    def __repr__(self) -> str:
        return f"LloydMaxCodebook(d={self.d}, bits={self.bits}, distortion={self.distortion:.5f})"
