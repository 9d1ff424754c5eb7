"""Lloyd-Max codebooks and rotations against closed forms and the paper's figures."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from turboquant import LloydMaxCodebook, random_rotation, solve_lloyd_max

# Exact Lloyd-Max distortion E||x - x_hat||^2 of a unit vector at d=128 (DESIGN.md); the
# paper rounds them to 0.36, 0.117, 0.03, 0.009.
EXACT_D128 = {1: 0.361, 2: 0.116, 3: 0.0340, 4: 0.0093}


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_distortion_matches_exact_lloyd_max_and_paper_bound(bits):
    cb = LloydMaxCodebook(128, bits)
    assert cb.distortion == pytest.approx(EXACT_D128[bits], rel=0.03)
    assert cb.distortion < math.sqrt(3) * math.pi / 2 * 4.0**-bits


@pytest.mark.parametrize("bits", [1, 3, 8])
@pytest.mark.parametrize("d", [2, 5, 128])
def test_sorted_symmetric_midpoint_boundaries(d, bits):
    c, b = solve_lloyd_max(d, bits)
    assert c.shape == (2**bits,) and b.shape == (2**bits - 1,)
    assert c.dtype == torch.float32 and b.dtype == torch.float32
    assert torch.all(c[1:] > c[:-1])
    torch.testing.assert_close(c, -c.flip(0), atol=1e-7, rtol=0)
    torch.testing.assert_close(b, (c[1:] + c[:-1]) / 2, atol=1e-7, rtol=0)
    assert c.abs().max() < 1


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_d3_is_the_uniform_quantizer(bits):
    # d=3: one coordinate of a uniform point on S^2 is uniform on [-1, 1] (Archimedes).
    levels = 2**bits
    c, b = solve_lloyd_max(3, bits)
    expected_c = -1 + (2 * torch.arange(levels, dtype=torch.float64) + 1) / levels
    expected_b = -1 + 2 * torch.arange(1, levels, dtype=torch.float64) / levels
    torch.testing.assert_close(c.double(), expected_c, atol=1e-6, rtol=0)
    torch.testing.assert_close(b.double(), expected_b, atol=1e-6, rtol=0)
    # MSE of a uniform quantizer on [-1, 1] with L cells is (2/L)^2/12 per coordinate.
    assert LloydMaxCodebook(3, bits).distortion == pytest.approx(3 * (2 / levels) ** 2 / 12, rel=1e-5)


def test_centroids_are_conditional_means_by_quadrature():
    # Independent check of the closed-form Beta moments with numerical integration.
    d, bits = 16, 2
    c, b = solve_lloyd_max(d, bits)
    density = lambda t: (1 - t * t) ** ((d - 3) / 2)  # noqa: E731
    edges = [-1.0, *b.double().tolist(), 1.0]
    for i in range(2**bits):
        mass = integrate.quad(density, edges[i], edges[i + 1])[0]
        moment = integrate.quad(lambda t: t * density(t), edges[i], edges[i + 1])[0]
        assert c[i].item() == pytest.approx(moment / mass, abs=1e-6)


def test_deterministic_and_cached():
    a = solve_lloyd_max(64, 3)
    b = solve_lloyd_max(64, 3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_codebook_quantize_dequantize():
    cb = LloydMaxCodebook(128, 2)
    x = torch.tensor([-1.0, -0.05, 0.0, 0.05, 1.0])
    idx = cb.quantize(x)
    assert idx.dtype == torch.uint8
    # Nearest centroid: compare with brute force.
    brute = (x[:, None] - cb.centroids[None]).abs().argmin(-1)
    assert torch.equal(idx.long(), brute)
    torch.testing.assert_close(cb.dequantize(idx), cb.centroids[brute])


@pytest.mark.parametrize("d,bits", [(1, 2), (128, 0), (128, 9)])
def test_bad_codebook_arguments(d, bits):
    with pytest.raises(ValueError, match="expected"):
        solve_lloyd_max(d, bits)
    with pytest.raises(TypeError, match="expected an int"):
        solve_lloyd_max(128, 2.0)


@pytest.mark.parametrize("kind,d", [("qr", 96), ("qr", 3), ("hadamard", 128), ("hadamard", 64)])
def test_rotations_are_orthogonal_fp32_and_seeded(kind, d):
    r = random_rotation(d, seed=7, kind=kind)
    assert r.dtype == torch.float32 and r.shape == (d, d)
    assert r.is_contiguous()  # kernels take it as it is; a transposed layout costs a copy per call
    eye = torch.eye(d, dtype=torch.float64)
    torch.testing.assert_close(r.double() @ r.double().T, eye, atol=1e-6, rtol=0)
    assert torch.equal(r, random_rotation(d, seed=7, kind=kind))
    assert not torch.equal(r, random_rotation(d, seed=8, kind=kind))


def test_qr_rotation_coordinates_follow_the_sphere_law():
    # Rotating one fixed unit vector by many random rotations gives uniform points on the
    # sphere: E[t^2] = 1/d and E[t^4] = 3/(d(d+2)).
    d = 32
    e = torch.zeros(d)
    e[0] = 1
    t = torch.stack([random_rotation(d, seed=s) @ e for s in range(400)]).double()
    assert (t**2).mean().item() == pytest.approx(1 / d, rel=0.05)
    assert (t**4).mean().item() == pytest.approx(3 / (d * (d + 2)), rel=0.15)


def test_bad_rotation_arguments():
    with pytest.raises(ValueError, match="power-of-two"):
        random_rotation(96, kind="hadamard")
    with pytest.raises(ValueError, match="expected one of"):
        random_rotation(64, kind="dct")
    with pytest.raises(TypeError, match="seed"):
        random_rotation(64, seed=np.float32(1))
