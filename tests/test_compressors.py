"""Tensor compressors: shapes, round trips, chunked asymmetric scores in bounded memory."""

import math
import subprocess
import sys

import pytest
import torch

from turboquant import TurboQuantCompressorMSE, TurboQuantCompressorV2


def test_value_compressor_round_trip():
    v = torch.randn(2, 4, 33, 128, dtype=torch.float16)
    comp = TurboQuantCompressorMSE(128, bits=4)
    cv = comp.compress(v)
    assert cv.indices.shape == (2, 4, 33, 128) and cv.norms.shape == (2, 4, 33, 1)
    assert cv.norms.dtype == torch.float32
    out = comp.decompress(cv)
    assert out.dtype == torch.float16 and out.shape == v.shape
    cos = torch.nn.functional.cosine_similarity(out.float(), v.float(), dim=-1)
    assert cos.mean() > 0.99  # 4-bit: 1 - D/2 ~ 0.995


def test_key_compressor_scores_match_independent_estimator():
    gen = torch.Generator().manual_seed(0)
    k = torch.randn(1, 2, 50, 64, generator=gen)
    q = torch.randn(1, 4, 3, 64, generator=gen)  # GQA: 4 query heads on 2 KV heads
    comp = TurboQuantCompressorV2(64, bits=3)
    ck = comp.compress(k)
    assert ck.qjl_signs.shape == (1, 2, 50, 64) and ck.residual_norms.shape == (1, 2, 50, 1)
    scores = comp.asymmetric_attention_scores(q, ck)
    assert scores.shape == (1, 4, 3, 50) and scores.dtype == torch.float32
    # Independent: the quantizer's per-pair estimator, query head h reading KV head h // 2.
    qz = comp.quantizer
    raw = qz.quantize(k)
    for h in range(4):
        kv = {name: t[0, h // 2] for name, t in raw.items()}
        for i in range(3):
            expected = qz.inner_product(q[0, h, i].expand(50, 64), kv)
            torch.testing.assert_close(scores[0, h, i], expected, atol=1e-4, rtol=1e-4)
    # And close to the true logits on average (unbiased, small variance at 3 bits).
    true = (q.reshape(1, 2, 2, 3, 64) @ k.unsqueeze(2).transpose(-1, -2)).reshape(1, 4, 3, 50)
    assert (scores - true).mean().abs() < 0.1
    # Theorem 2 of the paper bounds the error: E err^2 <= sqrt(3) pi^2/d 4^-b ||q||^2 ||k||^2.
    qn = q.reshape(1, 2, 2, 3, 64).norm(dim=-1, keepdim=True) ** 2
    kn = k.unsqueeze(2).norm(dim=-1).unsqueeze(-2) ** 2
    bound = math.sqrt(3) * math.pi**2 / 64 * 4.0**-3 * (qn * kn).reshape(1, 4, 3, 50)
    assert ((scores - true) ** 2).mean() <= bound.mean()


def test_decompress_dtype():
    k = torch.randn(1, 1, 4, 128, dtype=torch.bfloat16)
    comp = TurboQuantCompressorV2(128, bits=4)
    assert comp.decompress(comp.compress(k)).dtype == torch.bfloat16


def test_asymmetric_scores_run_in_bounded_memory():
    # batch 1, 32 heads, q_len 1, kv_len 32768, d 128: a (B, H, Q, K, D) fp32 broadcast
    # would be 512 MiB. Measure the peak RSS growth of the call in a fresh process.
    code = r"""
import resource, torch
from turboquant import TurboQuantCompressorV2
torch.manual_seed(0)
from turboquant.compressors import CompressedKeys
comp = TurboQuantCompressorV2(128, bits=3)
shape = (1, 32, 32768)
ck = CompressedKeys(torch.randint(0, 4, (*shape, 128), dtype=torch.uint8), torch.rand(*shape, 1),
    torch.randint(0, 2, (*shape, 128), dtype=torch.int8) * 2 - 1, torch.rand(*shape, 1))
q = torch.randn(1, 32, 1, 128)
comp.asymmetric_attention_scores(q, CompressedKeys(ck.indices[:, :, :8], ck.norms[:, :, :8],
    ck.qjl_signs[:, :, :8], ck.residual_norms[:, :, :8]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
s = comp.asymmetric_attention_scores(q, ck)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert s.shape == (1, 32, 1, 32768)
print((after - before) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    growth_mib = float(out.stdout.strip().splitlines()[-1])
    assert growth_mib < 300, f"peak memory grew by {growth_mib:.0f} MiB"


def test_bad_input():
    comp = TurboQuantCompressorMSE(128)
    with pytest.raises(ValueError, match="rank 4"):
        comp.compress(torch.randn(4, 128))
    with pytest.raises(ValueError, match="last dimension 128"):
        comp.compress(torch.randn(1, 1, 4, 64))
    kc = TurboQuantCompressorV2(64)
    ck = kc.compress(torch.randn(1, 2, 5, 64))
    with pytest.raises(ValueError, match="multiple of 2 heads"):
        kc.asymmetric_attention_scores(torch.randn(1, 3, 1, 64), ck)
    assert math.isfinite(kc.asymmetric_attention_scores(torch.randn(1, 2, 1, 64), ck).sum().item())
