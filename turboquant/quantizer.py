"""The TurboQuant vector quantizers (arXiv 2504.19874).

``TurboQuantMSE`` (Algorithm 1): keep ``n = ||x||`` in fp32, rotate the unit vector
``x / n`` by a fixed random orthogonal ``Pi``, and quantize every rotated coordinate with the
Lloyd-Max codebook of the coordinate distribution. Reconstruction: ``n * c[idx] @ Pi``.

``TurboQuantProd`` (Algorithm 2): a ``(b-1)``-bit ``TurboQuantMSE`` plus a 1-bit QJL sketch of
the residual ``r = x - x_mse`` (``sign(S r)`` and ``||r||``, ``S`` a seeded Gaussian
``m × d`` matrix), which makes inner products with any query unbiased:
``<q, x> ≈ <q, x_mse> + ||r|| * sqrt(pi/2) / m * <S q, sign(S r)>``.
"""

from __future__ import annotations

import math

import torch

from .codebook import LloydMaxCodebook
from .packing import pack_indices, packed_nbytes, unpack_indices
from .rotation import random_rotation
from .validation import check_bits, check_finite, check_float_tensor, check_head_dim, check_tensor

SUPPORTED_BITS = tuple(range(1, 9))


class TurboQuantMSE:
    """MSE-optimal TurboQuant quantizer for vectors of ``head_dim`` coordinates.

    Args:
        head_dim: vector length ``d`` (>= 2).
        bits: bits per coordinate, 1..8.
        seed: seed of the rotation (same seed → same rotation, so K and V share it).
        rotation: ``"qr"`` (Haar-random) or ``"hadamard"`` (power-of-two ``d``).

    Attributes:
        rotation: fp32 ``(d, d)`` ``Pi``; ``centroids``: fp32 ``(2**bits,)``;
        boundaries: fp32 ``(2**bits - 1,)``; codebook: the :class:`LloydMaxCodebook`.
    """

    def __init__(self, head_dim: int, bits: int, seed: int = 42, rotation: str = "qr") -> None:
        check_head_dim(head_dim)
        check_bits("bits", bits, SUPPORTED_BITS)
        self.head_dim, self.bits, self.seed, self.rotation_kind = head_dim, bits, seed, rotation
        self.codebook = LloydMaxCodebook(head_dim, bits)
        self.rotation = random_rotation(head_dim, seed, rotation)
        self.centroids = self.codebook.centroids.clone()
        self.boundaries = self.codebook.boundaries.clone()
        self.packed_nbytes = packed_nbytes(head_dim, bits)

    def to(self, device: torch.device | str) -> TurboQuantMSE:
        """Move the rotation and codebook to ``device`` (in place); returns ``self``."""
        self.rotation = self.rotation.to(device)
        self.centroids = self.centroids.to(device)
        self.boundaries = self.boundaries.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return self.rotation.device

    def _check_input(self, x: torch.Tensor, validate: bool) -> None:
        check_float_tensor("x", x, last_dim=self.head_dim)
        if x.device != self.device:
            raise ValueError(
                f"x: expected a tensor on {self.device} (the quantizer's device; call "
                f".to(device)), got one on {x.device}"
            )
        if validate:
            check_finite("x", x)

    def quantize(self, x: torch.Tensor, *, validate: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantize ``x`` of shape ``[..., d]`` (fp16/bf16/fp32).

        Returns ``(idx, norms)``: uint8 ``[..., d]`` indices and fp32 ``[...]`` norms. A zero
        vector gets norm 0 and reconstructs to exactly zero. ``validate=False`` skips the
        NaN/Inf scan (a device sync), for hot paths whose inputs come from a model.
        """
        self._check_input(x, validate)
        x32 = x.float()
        norms = torch.linalg.vector_norm(x32, dim=-1)
        unit = x32 / norms.clamp_min(torch.finfo(torch.float32).tiny).unsqueeze(-1)
        y = unit @ self.rotation.T
        idx = torch.bucketize(y, self.boundaries).to(torch.uint8)
        return idx, norms

    def dequantize_rotated(
        self, idx: torch.Tensor, norms: torch.Tensor, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Reconstruction in the rotated space: ``norms * c[idx]``, ``[..., d]``."""
        y = self.centroids[idx.long()] * norms.unsqueeze(-1)
        return y if dtype is None else y.to(dtype)

    def dequantize(
        self, idx: torch.Tensor, norms: torch.Tensor, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Reconstruct ``x_hat = norms * c[idx] @ Pi``, ``[..., d]``, fp32 unless ``dtype``."""
        check_tensor("idx", idx, dtypes=(torch.uint8,), last_dim=self.head_dim)
        check_tensor("norms", norms, dtypes=(torch.float32,))
        if norms.shape != idx.shape[:-1]:
            raise ValueError(
                f"norms: expected shape {tuple(idx.shape[:-1])} (idx without its last dim), "
                f"got {tuple(norms.shape)}"
            )
        x = self.dequantize_rotated(idx, norms) @ self.rotation
        return x if dtype is None else x.to(dtype)

    def quantize_packed(self, x: torch.Tensor, *, validate: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantize and bit-pack: uint8 ``[..., ceil(d*bits/8)]`` and fp32 norms ``[...]``."""
        idx, norms = self.quantize(x, validate=validate)
        return pack_indices(idx, self.bits), norms

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        """Packed bytes → uint8 indices ``[..., d]``."""
        return unpack_indices(packed, self.bits, self.head_dim)

    def dequantize_packed(
        self, packed: torch.Tensor, norms: torch.Tensor, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Inverse of :meth:`quantize_packed` (original space)."""
        return self.dequantize(self.unpack(packed), norms, dtype)

    def dequantize_rotated_packed(
        self, packed: torch.Tensor, norms: torch.Tensor, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Packed bytes → rotated-space reconstruction ``norms * c[idx]`` (no inverse rotation)."""
        return self.dequantize_rotated(self.unpack(packed), norms, dtype)

    def __repr__(self) -> str:
        return (
            f"TurboQuantMSE(head_dim={self.head_dim}, bits={self.bits}, seed={self.seed}, "
            f"rotation={self.rotation_kind!r})"
        )


class TurboQuantProd:
    """Inner-product TurboQuant: ``(bits-1)``-bit MSE stage + 1-bit QJL residual sketch.

    Args:
        head_dim: vector length ``d``.
        bits: total bits per coordinate, 2..8 (the MSE stage gets ``bits - 1``).
        seed: seed of the rotation; the QJL matrix uses ``seed + 1``.
        qjl_dim: rows ``m`` of the QJL matrix ``S`` (default ``head_dim``).
    """

    def __init__(self, head_dim: int, bits: int, seed: int = 42, qjl_dim: int | None = None) -> None:
        check_bits("bits", bits, range(2, 9))
        self.head_dim, self.bits, self.seed = head_dim, bits, seed
        self.mse = TurboQuantMSE(head_dim, bits - 1, seed)
        self.qjl_dim = head_dim if qjl_dim is None else qjl_dim
        if self.qjl_dim < 1:
            raise ValueError(f"qjl_dim: expected an int >= 1, got {qjl_dim}")
        gen = torch.Generator().manual_seed(seed + 1)
        self.qjl_matrix = torch.randn(self.qjl_dim, head_dim, generator=gen)

    def to(self, device: torch.device | str) -> TurboQuantProd:
        """Move all parameters to ``device`` (in place); returns ``self``."""
        self.mse.to(device)
        self.qjl_matrix = self.qjl_matrix.to(device)
        return self

    def quantize(self, x: torch.Tensor, *, validate: bool = True) -> dict[str, torch.Tensor]:
        """Quantize ``[..., d]``: returns ``indices`` uint8 ``[..., d]``, ``norms`` fp32 ``[...]``,
        ``qjl_signs`` int8 ``[..., m]`` (±1) and ``residual_norms`` fp32 ``[...]``."""
        idx, norms = self.mse.quantize(x, validate=validate)
        residual = x.float() - self.mse.dequantize(idx, norms)
        proj = residual @ self.qjl_matrix.T
        signs = torch.where(proj >= 0, 1, -1).to(torch.int8)
        return {
            "indices": idx,
            "norms": norms,
            "qjl_signs": signs,
            "residual_norms": torch.linalg.vector_norm(residual, dim=-1),
        }

    def dequantize(self, q: dict[str, torch.Tensor]) -> torch.Tensor:
        """MSE-stage reconstruction ``[..., d]`` fp32 (the QJL part only corrects inner products)."""
        return self.mse.dequantize(q["indices"], q["norms"])

    def inner_product(self, query: torch.Tensor, q: dict[str, torch.Tensor]) -> torch.Tensor:
        """Unbiased estimate of ``<query, x>`` for matching leading shapes ``[..., d]`` → ``[...]``."""
        check_float_tensor("query", query, last_dim=self.head_dim)
        query = query.float()
        mse_part = (query * self.dequantize(q)).sum(-1)
        sq = query @ self.qjl_matrix.T
        qjl = (sq * q["qjl_signs"].float()).sum(-1)
        return mse_part + q["residual_norms"] * (math.sqrt(math.pi / 2) / self.qjl_dim) * qjl

    def __repr__(self) -> str:
        return f"TurboQuantProd(head_dim={self.head_dim}, bits={self.bits}, seed={self.seed})"
