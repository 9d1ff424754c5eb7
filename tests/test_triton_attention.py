"""FlashAttention kernels (dense, compressed K, compressed K+V) and fused_qk_scores against
their plain-torch references on identical (compressed) inputs.

CPU runs use Triton's interpreter (TRITON_INTERPRET=1); with CUDA the same tests run the
compiled kernels. Bounds: cosine >= 0.9999 and max |out - ref| <= ATOL[dtype] * max(1, max |ref|)
(inputs are N(0, 1)): a few 16-bit roundings (centroids, rotated q, probabilities, output; the
interpreter truncates instead of rounding to nearest, which doubles them).
"""

import math
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from turboquant.packing import index_codes  # noqa: E402
from turboquant.quantizer import TurboQuantMSE  # noqa: E402
from turboquant.triton.flash_attention import (  # noqa: E402
    flash_attention_reference,
    register_lookup_table,
    triton_flash_attention,
)
from turboquant.triton.flash_attention_tq4 import (  # noqa: E402
    flash_attention_tq4_kv_reference,
    flash_attention_tq4_reference,
    triton_flash_attention_tq4,
    triton_flash_attention_tq4_kv,
)
from turboquant.triton.fused_qk import fused_qk_scores, fused_qk_scores_reference  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
ATOL = {torch.float16: 3e-3, torch.bfloat16: 2e-2}
F16, BF16 = torch.float16, torch.bfloat16


def _check(out, ref):
    assert out.shape == ref.shape and out.dtype == ref.dtype
    assert torch.isfinite(out).all()
    cos = torch.nn.functional.cosine_similarity(out.double().flatten(), ref.double().flatten(), dim=0).item()
    err = (out.float() - ref.float()).abs().max().item()
    assert cos >= 0.9999, f"cosine {cos}"
    bound = ATOL[out.dtype] * max(1.0, ref.float().abs().max().item())
    assert err <= bound, f"max abs error {err} > {bound}"


def _qkv(b, hq, hkv, ql, kl, d, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    mk = lambda h, s: torch.randn(b, h, s, d, generator=g).to(DEVICE, dtype)  # noqa: E731
    return mk(hq, ql), mk(hkv, kl), mk(hkv, kl)


def _mask(kind, b, hq, ql, kl):
    g = torch.Generator().manual_seed(1)
    if kind == "float":  # HF-style [B, 1, Q, K] additive mask with padded keys
        m = torch.randn(b, 1, ql, kl, generator=g)
        m[:, :, :, : kl // 3] = torch.finfo(torch.float32).min
        return m.to(DEVICE)
    if kind == "bool":  # per-head boolean mask, True = attend
        return (torch.rand(1, hq, ql, kl, generator=g) > 0.3).to(DEVICE)
    return None


def _compress(x, bits):
    q = TurboQuantMSE(x.shape[-1], bits).to(DEVICE)
    packed, norms = q.quantize_packed(x)
    return q, packed, norms


# (B, H_q, H_kv, Q, K, D, causal, dtype, mask): GQA 1 and 4, decode (Q=1), chunked prefill
# (Q < K), odd lengths, every supported head_dim.
CASES = [
    (1, 4, 1, 17, 33, 64, True, F16, None),
    (2, 2, 2, 1, 17, 128, True, BF16, None),
    (1, 4, 4, 33, 33, 128, True, F16, "float"),
    (1, 4, 1, 5, 17, 96, False, BF16, "bool"),
    (1, 2, 1, 17, 17, 256, True, BF16, None),
    (1, 1, 1, 1, 1, 128, True, F16, None),
]
IDS = [
    f"b{c[0]}-hq{c[1]}-hkv{c[2]}-q{c[3]}-k{c[4]}-d{c[5]}-{'causal' if c[6] else 'full'}"
    f"-{str(c[7])[6:]}-{c[8]}"
    for c in CASES
]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_flash_attention_matches_reference(case):
    b, hq, hkv, ql, kl, d, causal, dtype, mask_kind = case
    q, k, v = _qkv(b, hq, hkv, ql, kl, d, dtype)
    mask = _mask(mask_kind, b, hq, ql, kl)
    out = triton_flash_attention(q, k, v, is_causal=causal, attention_mask=mask)
    _check(out, flash_attention_reference(q, k, v, is_causal=causal, attention_mask=mask))


def test_flash_attention_matches_sdpa_and_strided_inputs():
    q, k, v = _qkv(1, 4, 2, 9, 33, 64, F16)
    qt = q.transpose(1, 2).contiguous().transpose(1, 2)  # [B, H, S, D] view of [B, S, H, D]
    out = triton_flash_attention(qt, k, v, sm_scale=0.2, is_causal=True)
    ref = torch.nn.functional.scaled_dot_product_attention(
        q.float(),
        k.float().repeat_interleave(2, 1),
        v.float().repeat_interleave(2, 1),
        scale=0.2,
        attn_mask=torch.ones(9, 33, dtype=torch.bool, device=DEVICE).tril(33 - 9),
    )
    _check(out, ref.to(F16))


@pytest.mark.parametrize("heads_first", [False, True])
def test_causal_launch_orders_give_the_same_outputs(heads_first, monkeypatch):
    """``flash_attention.HEADS_FIRST`` only reorders the programs: each (head, query block)
    computes the same thing, so both orders give the reference's outputs and each other's
    bits (dense and compressed K/V, causal; 3 query blocks of 16 under the interpreter)."""
    import turboquant.triton.flash_attention as fa

    q, k, v = _qkv(2, 4, 2, 40, 57, 64, BF16)
    qz = TurboQuantMSE(64, 4).to(DEVICE)
    kp, kn = qz.quantize_packed(k.float())
    vp, vn = qz.quantize_packed(v.float())
    kv = (q, kp, kn, vp, vn, qz.centroids, qz.rotation)
    monkeypatch.setattr(fa, "HEADS_FIRST", not heads_first)
    other = (
        triton_flash_attention(q, k, v, is_causal=True),
        triton_flash_attention_tq4_kv(*kv, is_causal=True),
    )
    monkeypatch.setattr(fa, "HEADS_FIRST", heads_first)
    dense = triton_flash_attention(q, k, v, is_causal=True)
    packed = triton_flash_attention_tq4_kv(*kv, is_causal=True)
    _check(dense, flash_attention_reference(q, k, v, is_causal=True))
    _check(packed, flash_attention_tq4_kv_reference(*kv, is_causal=True))
    assert torch.equal(dense, other[0]) and torch.equal(packed, other[1])


def test_flash_attention_fully_masked_rows_are_zero():
    q, k, v = _qkv(1, 2, 1, 3, 17, 64, F16)
    mask = torch.ones(1, 1, 3, 17, dtype=torch.bool, device=DEVICE)
    mask[:, :, 1] = False
    out = triton_flash_attention(q, k, v, attention_mask=mask)
    assert (out[:, :, 1] == 0).all()
    _check(out, flash_attention_reference(q, k, v, attention_mask=mask))


TQ_CASES = [
    # (case index into CASES, k_bits, v_bits)
    (0, 4, 4),
    (0, 3, 2),
    (0, 2, 2),
    (0, 3, 4),
    (1, 2, 3),
    (1, 4, 2),
    (2, 3, 3),
    (3, 4, 3),
    (4, 2, 4),
    (5, 4, 4),
]


@pytest.mark.parametrize("ci,k_bits,v_bits", TQ_CASES, ids=[f"{IDS[c]}-k{kb}v{vb}" for c, kb, vb in TQ_CASES])
def test_flash_attention_tq4_kv_matches_reference(ci, k_bits, v_bits):
    b, hq, hkv, ql, kl, d, causal, dtype, mask_kind = CASES[ci]
    q, k, v = _qkv(b, hq, hkv, ql, kl, d, dtype, seed=ci)
    mask = _mask(mask_kind, b, hq, ql, kl)
    qk, kp, kn = _compress(k, k_bits)
    qv, vp, vn = _compress(v, v_bits)
    out = triton_flash_attention_tq4_kv(
        q,
        kp,
        kn,
        vp,
        vn,
        qk.centroids,
        qk.rotation,
        is_causal=causal,
        attention_mask=mask,
        v_centroids=qv.centroids,
    )
    _check(
        out,
        flash_attention_tq4_kv_reference(
            q,
            kp,
            kn,
            vp,
            vn,
            qk.centroids,
            qk.rotation,
            is_causal=causal,
            attention_mask=mask,
            v_centroids=qv.centroids,
        ),
    )


@pytest.mark.parametrize("ci,k_bits", [(0, 4), (1, 3), (3, 2), (4, 4)], ids=lambda x: str(x))
def test_flash_attention_tq4_matches_reference(ci, k_bits):
    b, hq, hkv, ql, kl, d, causal, dtype, mask_kind = CASES[ci]
    q, k, v = _qkv(b, hq, hkv, ql, kl, d, dtype, seed=ci)
    mask = _mask(mask_kind, b, hq, ql, kl)
    qk, kp, kn = _compress(k, k_bits)
    out = triton_flash_attention_tq4(
        q, kp, kn.unsqueeze(-1), qk.centroids, qk.rotation, v, is_causal=causal, attention_mask=mask
    )
    _check(
        out,
        flash_attention_tq4_reference(
            q, kp, kn, qk.centroids, qk.rotation, v, is_causal=causal, attention_mask=mask
        ),
    )


@pytest.mark.parametrize("ci", [0, 1, 2, 4, 5], ids=lambda c: IDS[c])
def test_register_lookup_matches_the_gather_path(ci):
    """The default ``register_lookup=True`` (4-bit words through the register table; under the interpreter
    the words are gathered from the table's codebook copy) gives the gather path's output:
    bit for bit on CPU, within the reference bounds on a GPU. Case 3 (d=96, padded) and
    3-bit V fall back to the gather path by design."""
    b, hq, hkv, ql, kl, d, causal, dtype, mask_kind = CASES[ci]
    q, k, v = _qkv(b, hq, hkv, ql, kl, d, dtype, seed=ci)
    mask = _mask(mask_kind, b, hq, ql, kl)
    qk, kp, kn = _compress(k, 4)
    qv, vp, vn = _compress(v * 0.5, 4)
    args = (q, kp, kn, vp, vn, qk.centroids, qk.rotation)
    kw = dict(is_causal=causal, attention_mask=mask, v_centroids=qv.centroids)
    out = triton_flash_attention_tq4_kv(*args, **kw)  # the default: register lookup
    gather = triton_flash_attention_tq4_kv(*args, **kw, register_lookup=False)
    _check(out, flash_attention_tq4_kv_reference(*args, **kw))
    if INTERPRET:
        assert torch.equal(out, gather)
    k_only = triton_flash_attention_tq4(
        q, kp, kn, qk.centroids, qk.rotation, v, is_causal=causal, attention_mask=mask
    )
    k_gather = triton_flash_attention_tq4(
        q, kp, kn, qk.centroids, qk.rotation, v, is_causal=causal, attention_mask=mask, register_lookup=False
    )
    if INTERPRET:
        assert torch.equal(k_only, k_gather)
    _check(
        k_only,
        flash_attention_tq4_reference(
            q, kp, kn, qk.centroids, qk.rotation, v, is_causal=causal, attention_mask=mask
        ),
    )


def test_register_lookup_table_layout():
    """Words 0-3 of the table are the low bytes then the high bytes of the positive half
    ``c[8..15]`` (4 per word, little-endian), then the 16 entries in the query dtype in code
    order (entry ``code(i)`` holds ``c[i]``)."""
    c = TurboQuantMSE(128, 4).centroids.to(DEVICE)
    for dtype in (F16, BF16):
        t = register_lookup_table(c, dtype).cpu()
        assert t.dtype == torch.int32 and t.shape == (12,)
        bits = [b & 0xFFFF for b in c.to(dtype).view(torch.int16).tolist()]
        words = [w & 0xFFFFFFFF for w in t[:4].tolist()]
        for j in range(8):
            word, byte = divmod(j, 4)
            assert (words[word] >> (8 * byte)) & 0xFF == bits[8 + j] & 0xFF
            assert (words[2 + word] >> (8 * byte)) & 0xFF == bits[8 + j] >> 8
        codes = index_codes(torch.arange(16), 4)
        assert torch.equal(t[4:].view(dtype)[codes], c.to(dtype).cpu())


def test_tq4_kv_is_close_to_uncompressed_attention():
    """4-bit K and V: the fused output stays close to attention over the original K/V."""
    q, k, v = _qkv(1, 2, 1, 16, 48, 128, F16, seed=3)
    qk, kp, kn = _compress(k, 4)
    _, vp, vn = _compress(v, 4)
    out = triton_flash_attention_tq4_kv(q, kp, kn, vp, vn, qk.centroids, qk.rotation, is_causal=True)
    exact = flash_attention_reference(q, k, v, is_causal=True)
    cos = torch.nn.functional.cosine_similarity(out.float().flatten(), exact.float().flatten(), dim=0).item()
    assert cos > 0.98


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_fused_qk_scores_matches_reference(bits):
    q, k, _ = _qkv(1, 4, 2, 5, 33, 128, F16, seed=bits)
    qk, kp, kn = _compress(k, bits)
    q_rot = (q.float() @ qk.rotation.T).to(F16)
    scale = 1 / math.sqrt(128)
    out = fused_qk_scores(q_rot, kp, kn, qk.centroids, scale, n_q_heads=4, n_kv_heads=2)
    ref = fused_qk_scores_reference(q_rot, kp, kn, qk.centroids, scale, n_q_heads=4, n_kv_heads=2)
    assert out.shape == (1, 4, 5, 33) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=2e-3, atol=2e-3)
    # and the scores are q · k_hat in the original space
    k_hat = qk.dequantize_packed(kp, kn).repeat_interleave(2, 1)
    torch.testing.assert_close(out, scale * q.float() @ k_hat.transpose(-1, -2), rtol=1e-2, atol=1e-2)


# ----------------------------------------------------------------------------- bad input


def test_flash_attention_rejects_bad_input():
    q, k, v = _qkv(1, 4, 2, 3, 5, 64, F16)
    with pytest.raises(TypeError, match="float16, bfloat16"):
        triton_flash_attention(q.float(), k, v)
    with pytest.raises(TypeError, match="k: expected dtype"):
        triton_flash_attention(q, k.to(BF16), v)
    with pytest.raises(ValueError, match="multiple of KV heads"):
        triton_flash_attention(q[:, :3], k, v)
    with pytest.raises(ValueError, match="64, 96, 128, 256"):
        triton_flash_attention(q[..., :48], k[..., :48], v[..., :48])
    with pytest.raises(ValueError, match="q_len <= kv_len"):
        triton_flash_attention(q, k[:, :, :2], v[:, :, :2], is_causal=True)
    with pytest.raises(ValueError, match="attention_mask: expected shape"):
        triton_flash_attention(q, k, v, attention_mask=torch.zeros(1, 1, 3, 4, device=DEVICE))
    with pytest.raises(ValueError, match="expected a tensor on"):
        triton_flash_attention(q, k.to("meta"), v)
    with pytest.raises(ValueError, match="k, v: expected equal shapes"):
        triton_flash_attention(q, k, v[:, :, :4])


@pytest.mark.skipif(
    not torch.cuda.is_available() or INTERPRET,
    reason="needs CUDA (CPU tensors are fine under the interpreter)",
)
def test_flash_attention_rejects_cpu_tensors_on_gpu_runs():
    q, k, v = (torch.randn(1, 1, 2, 64, dtype=F16) for _ in range(3))
    with pytest.raises(ValueError, match="CUDA"):
        triton_flash_attention(q, k, v)


def test_tq4_kernels_reject_bad_input():
    q, k, v = _qkv(1, 4, 2, 3, 5, 128, F16)
    qk, kp, kn = _compress(k, 4)
    _, vp3, vn3 = _compress(v, 3)
    c, rot = qk.centroids, qk.rotation
    with pytest.raises(ValueError, match="need 16 centroids, got 8"):
        triton_flash_attention_tq4(q, kp, kn, c[:8], rot, v)
    with pytest.raises(ValueError, match="bits in \\(2, 3, 4\\)"):
        triton_flash_attention_tq4(q, kp[..., :60], kn, c, rot, v)
    with pytest.raises(ValueError, match="contiguous"):
        triton_flash_attention_tq4(q, torch.cat([kp, kp], -1)[..., ::2], kn, c, rot, v)
    with pytest.raises(ValueError, match="k_norms: expected shape"):
        triton_flash_attention_tq4(q, kp, kn[:, :, :4], c, rot, v)
    with pytest.raises(TypeError, match="k_norms: expected dtype"):
        triton_flash_attention_tq4(q, kp, kn.half(), c, rot, v)
    with pytest.raises(ValueError, match=r"rotation: expected shape \(128, 128\)"):
        triton_flash_attention_tq4(q, kp, kn, c, rot[:64], v)
    # V is 3-bit: with the default (4-bit) codebook the widths disagree
    with pytest.raises(ValueError, match="v_packed: packed width 48 bytes means 3-bit"):
        triton_flash_attention_tq4_kv(q, kp, kn, vp3, vn3, c, rot)
    with pytest.raises(ValueError, match="multiple of KV heads"):
        triton_flash_attention_tq4_kv(q[:, :3], kp, kn, vp3, vn3, c, rot)
    with pytest.raises(ValueError, match="v_packed: expected leading shape"):
        triton_flash_attention_tq4_kv(q, kp, kn, vp3[:, :, :4], vn3[:, :, :4], c, rot)
    with pytest.raises(ValueError, match="n_q_heads=4, n_kv_heads=1"):
        fused_qk_scores(q, kp, kn, c, 0.1, n_q_heads=4, n_kv_heads=1)
