"""TurboQuantMSE / TurboQuantProd against the paper's figures and bounds."""

import math

import pytest
import torch

from turboquant import LloydMaxCodebook, TurboQuantMSE, TurboQuantProd

EXACT_D128 = {1: 0.361, 2: 0.116, 3: 0.0340, 4: 0.0093}


def _unit(n, d, seed=0):
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return x / x.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_mse_distortion_matches_lloyd_max_and_bound(bits):
    x = _unit(8192, 128)
    q = TurboQuantMSE(128, bits)
    idx, norms = q.quantize(x)
    mse = ((x - q.dequantize(idx, norms)) ** 2).sum(-1).mean().item()
    assert mse == pytest.approx(EXACT_D128[bits], rel=0.03)
    assert mse < math.sqrt(3) * math.pi / 2 * 4.0**-bits


def test_hadamard_rotation_also_reaches_the_distortion():
    x = _unit(4096, 128, seed=1)
    q = TurboQuantMSE(128, 3, rotation="hadamard")
    mse = ((x - q.dequantize(*q.quantize(x))) ** 2).sum(-1).mean().item()
    assert mse == pytest.approx(EXACT_D128[3], rel=0.05)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_shapes_dtypes_and_scale_invariance(dtype):
    x = torch.randn(2, 3, 5, 64).to(dtype)
    q = TurboQuantMSE(64, 4)
    idx, norms = q.quantize(x)
    assert idx.shape == x.shape and idx.dtype == torch.uint8
    assert norms.shape == x.shape[:-1] and norms.dtype == torch.float32
    torch.testing.assert_close(norms, x.float().norm(dim=-1))
    # Indices depend only on the direction, the norm is carried exactly.
    idx2, norms2 = q.quantize((x.float() * 1000).to(dtype))
    assert (idx2 == idx).float().mean() > 0.99
    assert q.dequantize(idx, norms, dtype).dtype == dtype


def test_zero_vectors_are_exact():
    x = torch.zeros(4, 128)
    x[1] = torch.randn(128)
    q = TurboQuantMSE(128, 3)
    idx, norms = q.quantize(x)
    out = q.dequantize(idx, norms)
    assert torch.equal(out[0], torch.zeros(128)) and torch.equal(out[2:], torch.zeros(2, 128))
    packed, pn = q.quantize_packed(x)
    assert torch.equal(q.dequantize_packed(packed, pn)[0], torch.zeros(128))


def test_packed_round_trip_matches_unpacked():
    x = torch.randn(3, 7, 128)
    q = TurboQuantMSE(128, 3)
    packed, norms = q.quantize_packed(x)
    assert packed.shape == (3, 7, 48)
    idx, norms2 = q.quantize(x)
    torch.testing.assert_close(q.dequantize_packed(packed, norms), q.dequantize(idx, norms2))
    rot = q.dequantize_rotated_packed(packed, norms)
    torch.testing.assert_close(rot @ q.rotation, q.dequantize(idx, norms2), atol=1e-5, rtol=1e-5)


def test_fp32_norms_keep_long_sequences_as_precise_as_one_token():
    # 16K tokens whose norms span 6 orders of magnitude, like real K/V activations: the
    # stored fp32 norm is exact to fp32 rounding for every token, so the relative
    # reconstruction error of token 16384 is the same as that of token 1.
    n, d = 16384, 128
    gen = torch.Generator().manual_seed(3)
    direction = torch.randn(n, d, generator=gen)
    scale = torch.logspace(-2, 4, n)
    x = direction / direction.norm(dim=-1, keepdim=True) * scale[:, None]
    q = TurboQuantMSE(d, 4)
    idx, norms = q.quantize(x)
    exact = x.double().norm(dim=-1)
    assert ((norms.double() - exact).abs() / exact).max() < 2e-7
    # fp16 norms (the trap the seed package hit) would be ~1e-4 off, three orders worse.
    assert ((norms.half().double() - exact).abs() / exact).max() > 1e-4
    rel = ((x - q.dequantize(idx, norms)).norm(dim=-1) / scale).pow(2)
    first, last = rel[:1024].mean().item(), rel[-1024:].mean().item()
    assert first == pytest.approx(EXACT_D128[4], rel=0.1)
    assert last == pytest.approx(first, rel=0.1)
    one_token = ((x[:1] - q.dequantize(*q.quantize(x[:1]))).norm() / scale[0]).pow(2).item()
    assert one_token == pytest.approx(rel[0].item(), rel=1e-4)


def _pair(d, seed=0):
    x = _unit(1, d, seed)[0]
    orth = _unit(1, d, seed + 1)[0]
    orth = orth - (orth @ x) * x
    orth = orth / orth.norm()
    return x, 0.8 * x + 0.6 * orth  # <y, x> = 0.8, ||y|| = 1


@pytest.mark.parametrize("bits", [2, 3])
def test_prod_inner_products_are_unbiased_with_bounded_variance(bits):
    # Randomness is over the quantizer (rotation and QJL matrix): many seeds, fixed x, y.
    d, trials = 64, 600
    x, y = _pair(d)
    est = []
    for s in range(trials):
        q = TurboQuantProd(d, bits, seed=1000 + s)
        est.append(q.inner_product(y[None], q.quantize(x[None]))[0].item())
    est = torch.tensor(est, dtype=torch.float64)
    err = est - 0.8
    stderr = est.std().item() / math.sqrt(trials)
    assert abs(err.mean().item()) < 4 * stderr
    # Theorem 2 of the paper: E|<y,x> - est|^2 <= sqrt(3) pi^2 ||y||^2 / d * 4^-b.
    assert (err**2).mean().item() <= math.sqrt(3) * math.pi**2 / d * 4.0**-bits


def test_mse_only_inner_products_are_biased_at_low_bits():
    # The MSE quantizer shrinks vectors (E[x_hat] = alpha x, alpha < 1): at 2 bits the
    # inner product is biased low, by far more than its standard error.
    d, trials = 64, 300
    x, y = _pair(d)
    est = []
    for s in range(trials):
        q = TurboQuantMSE(d, 2, seed=1000 + s)
        est.append((y @ q.dequantize(*q.quantize(x[None]))[0]).item())
    est = torch.tensor(est, dtype=torch.float64)
    stderr = est.std().item() / math.sqrt(trials)
    assert 0.8 - est.mean().item() > 10 * stderr
    # The shrinkage equals 1 - distortion (E<x, x_hat> = 1 - D for Lloyd-Max cells).
    expected = 0.8 * (1 - LloydMaxCodebook(d, 2).distortion)
    assert est.mean().item() == pytest.approx(expected, abs=4 * stderr + 0.01)


def test_bad_input():
    q = TurboQuantMSE(128, 4)
    with pytest.raises(ValueError, match="last dimension 128"):
        q.quantize(torch.randn(4, 64))
    with pytest.raises(TypeError, match="dtype"):
        q.quantize(torch.ones(4, 128, dtype=torch.int32))
    with pytest.raises(ValueError, match="rank >= 1"):
        q.quantize(torch.tensor(1.0))
    with pytest.raises(ValueError, match="NaN/Inf"):
        q.quantize(torch.full((2, 128), float("nan")))
    with pytest.raises(ValueError, match="NaN/Inf"):
        q.quantize(torch.full((2, 128), float("inf")))
    with pytest.raises(ValueError, match=r"expected one of \(1, 2, 3, 4, 5, 6, 7, 8\), got 0"):
        TurboQuantMSE(128, 0)
    with pytest.raises(ValueError, match="expected one of"):
        TurboQuantProd(128, 1)
    with pytest.raises(TypeError, match="head_dim"):
        TurboQuantMSE("128", 4)
    idx, norms = q.quantize(torch.randn(3, 128))
    with pytest.raises(ValueError, match="norms: expected shape"):
        q.dequantize(idx, norms[:2])
