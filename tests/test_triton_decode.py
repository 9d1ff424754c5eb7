"""Split-K decode kernels (paged and contiguous) against their plain-torch references."""

import dataclasses

import pytest
import torch
import triton
import triton.language as tl

import turboquant.triton.decode as decode_module
from turboquant.packing import code_order
from turboquant.paged import PagedKVLayout, _record_views, allocate_pool, write_kv_reference
from turboquant.quantizer import TurboQuantMSE
from turboquant.triton.decode import (
    DEFAULT_CONFIG,
    MANY_PAIRS_CONFIG,
    MID_WORK_CONFIG,
    ONE_WAVE_CONFIG,
    DecodeConfig,
    default_config,
    split_plan,
    tq_decode,
    tq_decode_reference,
    tq_paged_decode,
    tq_paged_decode_reference,
)

DEV = "cuda" if torch.cuda.is_available() else "cpu"
D = 64


def _paged_batch(lens, h_kv, k_bits, v_bits, block_size, max_blocks, seed=0, d=D):
    """A pool with the sequences' pages scattered in random order; returns everything decode needs."""
    gen = torch.Generator().manual_seed(seed)
    lay = PagedKVLayout(h_kv, d, k_bits, v_bits)
    kq, vq = TurboQuantMSE(d, k_bits).to(DEV), TurboQuantMSE(d, v_bits).to(DEV)
    b = len(lens)
    num_blocks = b * max_blocks + 3
    pool = allocate_pool(num_blocks, block_size, lay, DEV)
    table = torch.randperm(num_blocks, generator=gen)[: b * max_blocks].view(b, max_blocks).int()
    for i, n in enumerate(lens):
        t = torch.arange(n)
        slots = (table[i].long()[t // block_size] * block_size + t % block_size).to(DEV)
        k = torch.randn(n, h_kv, d, generator=gen).to(DEV)
        v = torch.randn(n, h_kv, d, generator=gen).to(DEV)
        write_kv_reference(pool, lay, k * 3, v, slots, kq, vq)
    seq_lens = torch.tensor(lens, dtype=torch.int32, device=DEV)
    return lay, pool, table.to(DEV), seq_lens, kq, vq


def _close(out, ref, dtype):
    # fp32 queries are rotated and rounded to fp16 (module doc of turboquant.triton.decode): fp16's bound
    tol = {torch.float16: 3e-3, torch.bfloat16: 2e-2, torch.float32: 3e-3}[dtype]
    assert out.shape == ref.shape and out.dtype == ref.dtype
    torch.testing.assert_close(out.float(), ref.float(), atol=tol, rtol=tol)


@pytest.mark.parametrize(
    "bits, group, block_size, dtype, block_n",
    [
        ((4, 4), 4, 16, torch.float16, 32),
        ((4, 4), 8, 32, torch.bfloat16, 64),
        ((3, 3), 1, 16, torch.bfloat16, 32),
        ((3, 3), 4, 64, torch.float16, 32),  # tiles smaller than a page
        ((4, 3), 8, 16, torch.float32, 32),
        ((2, 2), 4, 16, torch.float16, 32),
        ((4, 4), 4, 32, torch.bfloat16, 16),  # the smallest tile: two per page
    ],
)
def test_paged_decode_matches_reference(bits, group, block_size, dtype, block_n):
    h_kv = 2
    lens = [0, 1, 45, 4 * block_size]  # empty, one token, a partial page, full capacity
    lay, pool, table, seq_lens, kq, vq = _paged_batch(lens, h_kv, *bits, block_size, max_blocks=4)
    q = torch.randn(len(lens), h_kv * group, D, device=DEV).to(dtype)
    args = (q, pool, lay, table, seq_lens, kq.rotation, kq.centroids, vq.centroids)
    ref = tq_paged_decode_reference(*args)
    # the 8-entry symmetric 4-bit lookup with prefetch, its values as fp16 pairs and as single
    # halves, and the 16-entry one without prefetch (the lookups differ on a GPU only)
    for prefetch, symmetric, pair in ((True, True, True), (True, True, False), (False, False, True)):
        cfg = DecodeConfig(
            block_n=block_n,
            num_warps=4,
            ctas_per_sm=3,
            prefetch=prefetch,
            symmetric_lookup=symmetric,
            pair_lookup=pair,
        )
        for splits in (1, 3):
            _close(tq_paged_decode(*args, num_splits=splits, config=cfg), ref, dtype)
    assert ref[0].abs().max() == 0  # an empty sequence attends to nothing


@pytest.mark.parametrize(
    "d, bits, group, block_n",
    [
        (128, (4, 4), 4, 32),
        (128, (3, 4), 8, 16),
        (128, (4, 2), 1, 32),  # plane dots for K, coordinate order for the 2-bit V
        (128, (3, 3), 4, 32),
        (256, (4, 3), 4, 16),
    ],
)
def test_plane_dots_match_reference(d, bits, group, block_n):
    """``DecodeConfig.planes`` (the dots over index planes: D = 128, one warp; at D = 256 the
    flag falls back to coordinate order) against the reference, planes on and off, both
    lookups of the 4-bit tables, the K planes as the A operand of ``K @ q^T`` (``k_registers``,
    the default: the columns relabelled and the probabilities block-transposed) and as the B
    operand of ``q @ K^T``, and looked up one word at a time into byte planes (``k_byte_planes``,
    the default), the V words too (``v_byte_planes``). At D = 128 the 4-bit contiguous kernel
    is checked with byte planes too."""
    lens = [33, 0, 70]
    lay, pool, table, seq_lens, kq, vq = _paged_batch(lens, 2, *bits, 16, max_blocks=5, seed=7, d=d)
    q = torch.randn(len(lens), 2 * group, d, device=DEV).to(torch.float16)
    args = (q, pool, lay, table, seq_lens, kq.rotation, kq.centroids, vq.centroids)
    ref = tq_paged_decode_reference(*args)
    for planes, symmetric, k_regs, k_bytes, v_bytes in (
        (True, True, True, False, False),
        (True, True, True, True, False),
        (True, True, True, True, True),
        (True, True, False, False, False),
        (True, False, True, False, False),
        (True, False, True, True, True),
        (False, True, True, False, True),
    ):
        flags = dict(planes=planes, symmetric_lookup=symmetric, k_registers=k_regs)
        flags.update(k_byte_planes=k_bytes, v_byte_planes=v_bytes)
        cfg = DecodeConfig(block_n=block_n, **flags)
        _close(tq_paged_decode(*args, num_splits=2, config=cfg), ref, torch.float16)
    if d == 128 and bits == (4, 4):  # the contiguous kernel over the same tokens, byte planes on
        k = torch.randn(2, 2, 70, d, device=DEV)
        v = torch.randn(2, 2, 70, d, device=DEV)
        (kp, kn), (vp, vn) = kq.quantize_packed(k), vq.quantize_packed(v)
        qc = q[:2, :, None]
        cargs = (qc, kp, kn, vp, vn, kq.rotation, kq.centroids, vq.centroids)
        cref = tq_decode_reference(*cargs)
        for k_bytes, v_bytes in ((False, False), (True, False), (True, True)):
            cfg = DecodeConfig(block_n=block_n, k_byte_planes=k_bytes, v_byte_planes=v_bytes)
            _close(tq_decode(*cargs, num_splits=2, config=cfg), cref, torch.float16)


@pytest.mark.parametrize(
    "group, bits, v_bytes",
    [(4, (4, 4), False), (3, (3, 4), False), (8, (4, 3), False), (6, (4, 4), False), (1, (3, 3), False)]
    + [(4, (4, 4), True), (8, (4, 4), True), (6, (3, 4), True), (16, (4, 4), True)],
)
def test_row_copies_give_the_outputs_without_them(group, bits, v_bytes):
    """``DecodeConfig.row_copies`` (plane dots with ``REPL`` copies of each query head among the
    padded dot rows, each copy accumulating a share of the planes: 4 copies up to 4 heads per
    KV head, 2 up to 8) adds only exact zeros to each accumulator, so on the GPU the outputs
    equal those of the 8-accumulator kernel bit for bit (with ``v_byte_planes``: the
    4-accumulator kernel; under the interpreter to rounding); both match the reference. D = 128,
    where the plane dots run (at 64 this test compared a kernel with itself until session 31)."""
    from turboquant.triton.decode import _row_copies

    assert [_row_copies(g, 16, True) for g in (1, 3, 4, 5, 8, 9, 16)] == [4, 4, 4, 2, 2, 1, 1]
    assert _row_copies(4, 16, False) == 1 and _row_copies(4, 16, True, enabled=False) == 1
    lens = [70, 5, 41]
    # D = 128: plane dots (and so row copies) are taken at this head dim only
    lay, pool, table, seq_lens, kq, vq = _paged_batch(lens, 2, *bits, 16, max_blocks=5, seed=group, d=128)
    q = torch.randn(len(lens), 2 * group, 128, generator=torch.Generator().manual_seed(group)).to(
        DEV, torch.float16
    )
    args = (q, pool, lay, table, seq_lens, kq.rotation, kq.centroids, vq.centroids)
    outs = [
        tq_paged_decode(*args, num_splits=2, config=DecodeConfig(row_copies=rc, v_byte_planes=v_bytes))
        for rc in (True, False)
    ]
    if DEV == "cuda":
        assert torch.equal(outs[0], outs[1])
    else:  # numpy's dots round rows of different operands differently: <= 1 fp16 ulp at |o| < 4
        diff = (outs[0].float() - outs[1].float()).abs().max().item()
        assert diff <= 2e-3, f"row copies changed the outputs by {diff}"
    _close(outs[0], tq_paged_decode_reference(*args), torch.float16)
    # the copies' probabilities masked by selects rather than by the default 0/1 product: the
    # same operands, so the same bits
    selects = DecodeConfig(row_copies=True, v_byte_planes=v_bytes, product_masks=False)
    assert torch.equal(tq_paged_decode(*args, num_splits=2, config=selects), outs[0])


def test_reference_is_attention_on_dequantized_kv():
    """Independent check of the reference: SDPA on K/V dequantized to the original space."""
    lens = [37, 64]
    lay, pool, table, seq_lens, kq, vq = _paged_batch(lens, 2, 4, 4, 16, max_blocks=4, seed=3)
    q = torch.randn(2, 8, D, device=DEV)
    ref = tq_paged_decode_reference(q, pool, lay, table, seq_lens, kq.rotation, kq.centroids, vq.centroids)
    from turboquant.paged import gather_kv

    for i, n in enumerate(lens):
        k, v = gather_kv(pool, lay, table[i], n, kq, vq, rotated=False)  # [H_kv, n, D]
        k, v = k.repeat_interleave(4, 0), v.repeat_interleave(4, 0)
        expect = torch.nn.functional.scaled_dot_product_attention(q[i, :, None], k, v)[:, 0]
        torch.testing.assert_close(ref[i], expect, atol=1e-4, rtol=1e-4)


def test_contiguous_decode_matches_reference_and_paged():
    torch.manual_seed(0)
    b, h_kv, group, s = 3, 2, 4, 80
    kq, vq = TurboQuantMSE(D, 4).to(DEV), TurboQuantMSE(D, 3).to(DEV)
    k = torch.randn(b, h_kv, s, D, device=DEV)
    v = torch.randn(b, h_kv, s, D, device=DEV)
    kp, kn = kq.quantize_packed(k)
    vp, vn = vq.quantize_packed(v)
    # views into a larger cache (capacity 96), as a growing cache hands them over
    big = torch.zeros(b, h_kv, 96, kp.shape[-1], dtype=torch.uint8, device=DEV)
    big[:, :, :s] = kp
    kp_view = big[:, :, :s]
    q = torch.randn(b, h_kv * group, 1, D, device=DEV, dtype=torch.bfloat16)
    args = (q, kp_view, kn, vp, vn, kq.rotation, kq.centroids, vq.centroids)
    cfg = DecodeConfig(block_n=32, num_warps=4, ctas_per_sm=3)
    for seq_len in (None, 50, torch.tensor([80, 0, 33], dtype=torch.int32, device=DEV)):
        ref = tq_decode_reference(*args, seq_len=seq_len)
        out = tq_decode(*args, seq_len=seq_len, num_splits=2, config=cfg)
        assert out.shape == (b, h_kv * group, 1, D)
        _close(out, ref, torch.bfloat16)
    # the paged kernel on the same records gives the same result
    lay = PagedKVLayout(h_kv, D, 4, 3)
    pool = allocate_pool(b * 5, 16, lay, DEV)
    table = torch.arange(b * 5, dtype=torch.int32, device=DEV).view(b, 5)
    for i in range(b):
        write_kv_reference(
            pool,
            lay,
            k[i].transpose(0, 1),
            v[i].transpose(0, 1),
            table[i].long().repeat_interleave(16)[:s] * 16 + torch.arange(s, device=DEV) % 16,
            kq,
            vq,
        )
    lens = torch.full((b,), s, dtype=torch.int32, device=DEV)
    paged = tq_paged_decode(
        q[:, :, 0], pool, lay, table, lens, kq.rotation, kq.centroids, vq.centroids, config=cfg
    )
    _close(paged, tq_decode(*args, config=cfg)[:, :, 0], torch.bfloat16)


def test_sm_scale_and_split_plan():
    lens = [50]
    lay, pool, table, seq_lens, kq, vq = _paged_batch(lens, 1, 4, 4, 16, max_blocks=4)
    q = torch.randn(1, 1, D, device=DEV)
    args = (q, pool, lay, table, seq_lens, kq.rotation, kq.centroids, vq.centroids, 0.3)
    _close(tq_paged_decode(*args), tq_paged_decode_reference(*args), torch.float32)
    cfg = DecodeConfig(block_n=64, ctas_per_sm=4)
    dev = torch.device("cpu")
    assert split_plan(8, 32768, cfg, dev, 16) == (16, 2048)
    assert split_plan(8, 100, cfg, dev, 16) == (2, 64)  # every split holds >= one tile
    assert split_plan(8, 0, cfg, dev, None) == (1, 64)
    # automatic plans give each split >= min_split_tokens (default 32: two 16-token tiles)
    small = DecodeConfig(block_n=16)
    assert split_plan(1, 512, small, dev) == (16, 32)
    assert split_plan(1, 512, small, dev, 32) == (32, 16)  # asked for: one tile each
    assert split_plan(1, 512, DecodeConfig(min_split_tokens=128), dev) == (4, 128)
    with pytest.raises(ValueError, match="invalid launch parameters"):
        DecodeConfig(min_split_tokens=0)
    with pytest.raises(TypeError, match="symmetric_lookup: expected a bool"):
        DecodeConfig(symmetric_lookup="yes")
    with pytest.raises(TypeError, match="pair_lookup: expected a bool"):
        DecodeConfig(pair_lookup=1)
    with pytest.raises(TypeError, match="planes: expected a bool"):
        DecodeConfig(planes="yes")
    with pytest.raises(TypeError, match="row_copies: expected a bool"):
        DecodeConfig(row_copies=1)
    with pytest.raises(TypeError, match="k_registers: expected a bool"):
        DecodeConfig(k_registers=0)
    with pytest.raises(TypeError, match="k_byte_planes: expected a bool"):
        DecodeConfig(k_byte_planes=1)
    with pytest.raises(TypeError, match="v_byte_planes: expected a bool"):
        DecodeConfig(v_byte_planes="yes")
    with pytest.raises(TypeError, match="product_masks: expected a bool"):
        DecodeConfig(product_masks=0)
    with pytest.raises(TypeError, match="pdl: expected a bool"):
        DecodeConfig(pdl=None)
    with pytest.raises(ValueError, match="invalid launch parameters"):
        DecodeConfig(planes_min_chunk=-1)


def test_default_config_by_work():
    """The table of ``default_config``'s docstring, at the benchmark's shapes (8 KV heads)."""
    cuda, cpu = torch.device("cuda"), torch.device("cpu")

    def launch(config):  # without the programmatic-launch choices (asserted below)
        return dataclasses.replace(config, early_split=False, early_reduce=False)

    assert launch(default_config(8, 32768, cuda)) == ONE_WAVE_CONFIG  # B=1
    assert launch(default_config(8, 16384, cuda)) == ONE_WAVE_CONFIG  # B=1, N=16K
    assert launch(default_config(8, 65536, cuda)) == MID_WORK_CONFIG  # B=1, N=64K: 512K tokens, 8 pairs
    assert launch(default_config(8, 131072, cuda)) == MID_WORK_CONFIG  # B=1, N=128K: 1M tokens, 8 pairs
    assert launch(default_config(4, 262144, cuda)) == ONE_WAVE_CONFIG  # 4 pairs (4 KV heads): not timed
    assert launch(default_config(16, 32768, cuda)) == MID_WORK_CONFIG  # B=2, N=32K
    assert launch(default_config(32, 4096, cuda)) == MID_WORK_CONFIG  # B=4, N=4K: 128K tokens, 32 pairs
    assert launch(default_config(32, 2048, cuda)) == ONE_WAVE_CONFIG  # B=4, N=2K
    assert launch(default_config(16, 8192, cuda)) == ONE_WAVE_CONFIG  # B=2, N=8K: 128K tokens, 16 pairs
    assert launch(default_config(64, 2048, cuda)) == MID_WORK_CONFIG  # B=8, N=2K
    assert launch(default_config(32, 32768, cuda)) == MID_WORK_CONFIG  # B=4, N=32K: 1M tokens, 32 pairs
    assert launch(default_config(64, 16384, cuda)) == DEFAULT_CONFIG  # B=8, N=16K: 1M tokens, 64 pairs
    assert launch(default_config(64, 1024, cuda)) == ONE_WAVE_CONFIG  # B=8, N=1K
    assert launch(default_config(64, 4096, cuda)) == MID_WORK_CONFIG  # B=8, N=4K
    assert launch(default_config(64, 32768, cuda)) == DEFAULT_CONFIG  # B=8, N=32K
    assert launch(default_config(256, 32768, cuda)) == MANY_PAIRS_CONFIG  # B=32, N=32K
    assert launch(default_config(256, 4096, cuda)) == MANY_PAIRS_CONFIG  # B=32, N=4K: 1M tokens
    assert launch(default_config(128, 1024, cuda)) == MID_WORK_CONFIG  # B=16, N=1K
    assert launch(default_config(128, 4096, cuda)) == DEFAULT_CONFIG  # B=16, N=4K: 512K tokens
    assert launch(default_config(256, 1024, cuda)) == DEFAULT_CONFIG  # B=32, N=1K
    assert (MANY_PAIRS_CONFIG.num_warps, MANY_PAIRS_CONFIG.ctas_per_sm) == (1, 32)
    assert (MID_WORK_CONFIG.num_warps, MID_WORK_CONFIG.ctas_per_sm) == (1, 8)
    assert ONE_WAVE_CONFIG.ctas_per_sm == 2 and ONE_WAVE_CONFIG.block_n == 128
    assert launch(default_config(8, 32768, cpu)) == DEFAULT_CONFIG  # the interpreter: small tiles
    # 3-bit indices through the register lookup take the 4-bit table, L1-table lookups 16 tokens
    assert launch(default_config(64, 32768, cuda, (3, 3))) == DEFAULT_CONFIG
    assert launch(default_config(8, 4096, cuda, (4, 3))) == ONE_WAVE_CONFIG
    assert default_config(64, 32768, cuda, (3, 3), register_lookup=False).block_n == 16
    assert default_config(64, 32768, cuda, (4, 2)).block_n == 16
    assert ONE_WAVE_CONFIG.num_warps == 4

    # programmatic launch (_early_launch): the 4-warp tiles let the split kernel in early, and
    # the reduce kernel below 64 pairs; the 1-warp tiles only the reduce kernel, below 64 pairs
    # or from 256K tokens of work
    def early(*args):
        c = default_config(*args)
        return c.early_split, c.early_reduce

    assert early(8, 1024, cuda) == (True, True)  # B=1, N=1K
    assert early(64, 1024, cuda) == (True, False)  # B=8, N=1K
    assert early(8, 131072, cuda) == (False, True)  # B=1, N=128K (32/1/8)
    assert early(64, 2048, cuda) == (False, False)  # B=8, N=2K: 128K tokens
    assert early(128, 1024, cuda) == (False, False)  # B=16, N=1K: 128K tokens
    assert early(64, 4096, cuda) == (False, True)  # B=8, N=4K: 256K tokens
    assert early(256, 32768, cuda) == (False, True)  # B=32, N=32K
    assert early(8, 32768, cpu) == (False, False)  # the interpreter (no programmatic launch)


def test_wave_cap_cuts_plans_to_whole_waves():
    """``DecodeConfig.wave_cap``: an automatic split count whose programs end in a partial wave
    is cut to the whole waves it fills, where each split keeps WAVE_CAP_MIN_TOKENS tokens (here
    4 SMs, the CPU's count: a wave of 12 programs per SM is 48 programs)."""
    cpu = torch.device("cpu")
    assert decode_module._num_sms(cpu) == 4
    # 8 pairs, 16 programs per SM asked for: 8 splits = 64 programs, 1.33 waves -> 1 wave, 6 splits
    assert split_plan(8, 32768, DEFAULT_CONFIG, cpu) == (8, 4096)
    assert split_plan(8, 32768, DEFAULT_CONFIG, cpu, None, 12) == (6, 5472)
    uncapped = dataclasses.replace(DEFAULT_CONFIG, wave_cap=False)
    assert split_plan(8, 32768, uncapped, cpu, None, 12) == (8, 4096)
    assert split_plan(8, 32768, DEFAULT_CONFIG, cpu, None, 16) == (8, 4096)  # one whole wave already
    # 32 per SM: 16 splits = 128 programs, 2.67 waves -> 2 waves, 12 splits
    assert split_plan(8, 32768, MANY_PAIRS_CONFIG, cpu, None, 12) == (12, 2752)
    assert split_plan(8, 32768, MANY_PAIRS_CONFIG, cpu, None, 8) == (16, 2048)  # 4 whole waves
    # too short to cut: 6 splits of 1024 / 6 tokens < 256
    assert split_plan(8, 1024, DEFAULT_CONFIG, cpu, None, 12) == (8, 128)
    assert split_plan(8, 1536, DEFAULT_CONFIG, cpu, None, 12) == (6, 256)
    # more pairs than a wave holds: left alone
    assert split_plan(64, 32768, DEFAULT_CONFIG, cpu, None, 12) == (1, 32768)
    # a split count asked for is never changed
    assert split_plan(8, 32768, DEFAULT_CONFIG, cpu, 16, 12) == (16, 2048)
    # the register counts behind WAVE_PROGRAMS hold for the default one-warp K4/V4 kernel only
    wave = decode_module.wave_programs
    assert wave(DEFAULT_CONFIG, 4, 4, 128, True) == decode_module.WAVE_PROGRAMS["paged"] == 12
    assert wave(MANY_PAIRS_CONFIG, 4, 4, 128, False) == decode_module.WAVE_PROGRAMS["contiguous"] == 8
    assert wave(dataclasses.replace(MID_WORK_CONFIG, early_reduce=True), 4, 4, 128, True) == 12
    assert wave(DEFAULT_CONFIG, 3, 3, 128, True) is None
    assert wave(DEFAULT_CONFIG, 4, 4, 64, True) is None
    assert wave(DEFAULT_CONFIG, 4, 4, 128, True, 8) is None  # other row copies: not counted
    assert wave(ONE_WAVE_CONFIG, 4, 4, 128, True) is None
    assert wave(dataclasses.replace(DEFAULT_CONFIG, k_registers=False), 4, 4, 128, True) is None
    assert wave(dataclasses.replace(DEFAULT_CONFIG, k_byte_planes=False), 4, 4, 128, False) is None
    assert wave(dataclasses.replace(DEFAULT_CONFIG, v_byte_planes=False), 4, 4, 128, True) is None
    assert wave(dataclasses.replace(DEFAULT_CONFIG, product_masks=False), 4, 4, 128, True) is None
    with pytest.raises(TypeError, match="wave_cap: expected a bool"):
        DecodeConfig(wave_cap=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiled kernels' registers need a GPU")
@pytest.mark.parametrize("paged", [True, False])
def test_wave_programs_match_the_compiled_kernel(paged):
    """WAVE_PROGRAMS against the registers and shared memory of the compiled split kernel, and
    a plan cut to whole waves against the reference (B=2, 8 KV heads, N=64K, both kernels: 20
    programs per SM asked for, 158 splits on 132 SMs; paged 1.33 waves of 12 per SM -> 98
    splits of 672 tokens, contiguous 2.4 waves of 8 -> 128 of 512; at N=32K the contiguous
    kernel's 2 waves would leave splits below WAVE_CAP_MIN_TOKENS, so no cut)."""
    b, h_kv, n, d = 2, 8, 65536, 128
    kernel = decode_module._split_kernel
    for cache in kernel.device_caches.values():
        cache[0].clear()
    gen = torch.Generator(device="cuda").manual_seed(0)
    qz = TurboQuantMSE(d, 4).to("cuda")
    q = torch.randn(b, 4 * h_kv, d, device="cuda", dtype=torch.bfloat16, generator=gen)
    kp = torch.randint(0, 256, (b, h_kv, n, d // 2), dtype=torch.uint8, device="cuda", generator=gen)
    vp = torch.randint(0, 256, (b, h_kv, n, d // 2), dtype=torch.uint8, device="cuda", generator=gen)
    kn = torch.rand(b, h_kv, n, device="cuda", generator=gen) + 0.5
    vn = torch.rand(b, h_kv, n, device="cuda", generator=gen) + 0.5
    args = (kp, kn, vp, vn, qz.rotation, qz.centroids, qz.centroids)
    if paged:
        lay = PagedKVLayout(h_kv, d, 4, 4)
        pool = allocate_pool(b * n // 16, 16, lay, "cuda")
        k_rows, k_norms = _record_views(pool, lay, "k")
        v_rows, v_norms = _record_views(pool, lay, "v")

        # sequence i's token t in slot i * n + t: block table rows are consecutive pages
        def pages(x):  # [B, H, N, ...] -> [B, N / 16, 16, H, ...], the views' order
            return x.transpose(1, 2).unflatten(1, (n // 16, 16))

        for view, x in ((k_rows, kp), (v_rows, vp), (k_norms, kn), (v_norms, vn)):
            view.unflatten(0, (b, n // 16)).copy_(pages(x))
        table = torch.arange(b * n // 16, device="cuda", dtype=torch.int32).view(b, -1)
        lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
        rest = (pool, lay, table, lens, qz.rotation, qz.centroids, qz.centroids)
        run = lambda cfg: tq_paged_decode(q, *rest, config=cfg)  # noqa: E731
    else:
        run = lambda cfg: tq_decode(q[:, :, None], *args, config=cfg)[:, :, 0]  # noqa: E731
    config = dataclasses.replace(DEFAULT_CONFIG, ctas_per_sm=20)
    capped = run(config)
    compiled = [k for cache in kernel.device_caches.values() for k in cache[0].values()]
    assert len(compiled) == 1
    k = compiled[0]
    fit = decode_module.programs_per_sm(k.n_regs, k.metadata.shared, k.metadata.num_warps)
    assert fit == decode_module.WAVE_PROGRAMS["paged" if paged else "contiguous"], (k.n_regs, fit)
    slots, pairs = fit * decode_module._num_sms(q.device), b * h_kv
    auto = split_plan(pairs, n, config, q.device)[0]
    plan = split_plan(pairs, n, config, q.device, None, fit)[0]
    assert pairs * plan <= pairs * auto // slots * slots < pairs * auto
    ref = tq_decode_reference(q[:, :, None], *args)[:, :, 0]
    _close(capped, ref, torch.bfloat16)
    _close(run(dataclasses.replace(config, wave_cap=False)), ref, torch.bfloat16)


def test_small_work_config_matches_reference():
    # the 4-warp, 128-token tiles default_config picks for short/small batches on a GPU
    lens = [0, 130, 300]
    lay, pool, table, seq_lens, kq, vq = _paged_batch(lens, 2, 4, 4, 16, max_blocks=20)
    q = torch.randn(len(lens), 8, D, device=DEV).half()
    args = (q, pool, lay, table, seq_lens, kq.rotation, kq.centroids, vq.centroids)
    ref = tq_paged_decode_reference(*args)
    _close(tq_paged_decode(*args, config=ONE_WAVE_CONFIG), ref, torch.float16)


HOPPER = torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 9


@pytest.mark.skipif(not HOPPER, reason="programmatic dependent launch needs an sm_90 or later GPU")
@pytest.mark.parametrize(
    "d, config",
    [
        (128, DEFAULT_CONFIG),
        (128, ONE_WAVE_CONFIG),
        (64, MID_WORK_CONFIG),
        (256, DEFAULT_CONFIG),
        (128, dataclasses.replace(ONE_WAVE_CONFIG, early_split=True, early_reduce=True)),
        (128, dataclasses.replace(DEFAULT_CONFIG, early_reduce=True)),
        (64, dataclasses.replace(MID_WORK_CONFIG, early_split=True)),
    ],
)
def test_programmatic_launch_gives_the_serial_launches_outputs(d, config):
    """``DecodeConfig.pdl``: the split kernel starts before the prep kernel has finished and the
    reduce kernel before the split kernel has (with ``early_split``/``early_reduce``, as soon as
    the kernel before has passed its own wait). Calls back to back with a new query each (the
    buffers of one call are the previous call's, so reading them too early gives the previous
    query's scores) must give the outputs of serial launches, bit for bit, in eager mode and
    replayed from a CUDA graph."""
    lens = [0, 700, 1500, 64]
    lay, pool, table, seq_lens, kq, vq = _paged_batch(lens, 2, 4, 4, 16, max_blocks=100, d=d)
    args = (pool, lay, table, seq_lens, kq.rotation, kq.centroids, vq.centroids)
    gen = torch.Generator(device=DEV).manual_seed(1)
    qs = torch.randn(6, len(lens), 8, d, device=DEV, dtype=torch.bfloat16, generator=gen)
    fixed = dict(validate=False, max_seq_len=max(lens))  # no host syncs: capturable
    serial = [tq_paged_decode(q, *args, config=dataclasses.replace(config, pdl=False), **fixed) for q in qs]
    _close(serial[1], tq_paged_decode_reference(qs[1], *args), torch.bfloat16)
    eager = [tq_paged_decode(q, *args, config=config, **fixed) for q in qs]
    q_in = qs[0].clone()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = tq_paged_decode(q_in, *args, config=config, **fixed)
    replayed = []
    for q in qs:
        q_in.copy_(q)
        graph.replay()
        replayed.append(out.clone())
    for i in range(len(qs)):
        assert torch.equal(eager[i], serial[i]), i
        assert torch.equal(replayed[i], serial[i]), i


def test_decode_errors():
    lay, pool, table, seq_lens, kq, vq = _paged_batch([20, 40], 2, 4, 4, 16, max_blocks=3)
    q = torch.randn(2, 4, D, device=DEV)
    rot, kc, vc = kq.rotation, kq.centroids, vq.centroids
    bad = table.clone()
    bad[1, 2] = pool.shape[0]
    with pytest.raises(ValueError, match=r"block_table\[1, 2\] = 9 is out of range"):
        tq_paged_decode(q, pool, lay, bad, seq_lens, rot, kc, vc)
    with pytest.raises(ValueError, match="beyond the block table's capacity"):
        tq_paged_decode(q, pool, lay, table, seq_lens * 2, rot, kc, vc)
    with pytest.raises(ValueError, match="bytes per token but the layout"):
        tq_paged_decode(q, pool, PagedKVLayout(2, D, 3, 3), table, seq_lens, rot, kc, vc)
    with pytest.raises(ValueError, match="not a multiple of 2 KV heads"):
        tq_paged_decode(q[:, :3], pool, lay, table, seq_lens, rot, kc, vc)
    with pytest.raises(TypeError, match="block_table"):
        tq_paged_decode(q, pool, lay, table.long(), seq_lens, rot, kc, vc)
    with pytest.raises(ValueError, match="16 contiguous centroids"):
        tq_paged_decode(q, pool, lay, table, seq_lens, rot, kc[:8], vc)
    with pytest.raises(ValueError, match="head_dim must be one of"):
        tq_decode(
            torch.randn(1, 2, 96, device=DEV),
            *(
                [torch.zeros(1, 1, 4, 48, dtype=torch.uint8, device=DEV), torch.zeros(1, 1, 4, device=DEV)]
                * 2
            ),
            torch.eye(96, device=DEV),
            kc,
            vc,
        )
    kp = torch.zeros(1, 1, 8, 32, dtype=torch.uint8, device=DEV)
    kn = torch.zeros(1, 1, 8, device=DEV)
    with pytest.raises(ValueError, match="seq_len: expected 0 <= seq_len <= 8"):
        tq_decode(torch.randn(1, 2, D, device=DEV), kp, kn, kp, kn, rot, kc, vc, seq_len=9)
    with pytest.raises(ValueError, match="v_norms: expected shape"):
        tq_decode(torch.randn(1, 2, D, device=DEV), kp, kn, kp, kn[:, :, :4], rot, kc, vc)


# --------------------------------------------------------------------------- the 4-bit lookup
# The interpreter runs no inline PTX, so the register-table lookup of the compiled kernel
# (``_PRMT4_ASM``) is checked here with a plain-Python model of the few PTX instructions it
# uses, fed with the table words that ``_prep_kernel`` writes.


def _prmt(a: int, b: int, c: int) -> int:
    """PTX ``prmt.b32`` (generic mode): bytes {b, a} numbered 0-7 from a's low byte; each
    selector nibble picks a byte (3 low bits) and its top bit replicates that byte's sign."""
    src = [(a >> (8 * i)) & 0xFF for i in range(4)] + [(b >> (8 * i)) & 0xFF for i in range(4)]
    out = 0
    for i in range(4):
        sel = (c >> (4 * i)) & 0xF
        byte = src[sel & 7]
        if sel & 8:
            byte = 0xFF if byte & 0x80 else 0
        out |= byte << (8 * i)
    return out


_PTX_OPS = {
    "shl.b32": lambda a, n: a << n,
    "shr.b32": lambda a, n: a >> n,
    "shr.u32": lambda a, n: a >> n,
    "and.b32": lambda a, b: a & b,
    "or.b32": lambda a, b: a | b,
    "not.b32": lambda a: ~a,
    "xor.b32": lambda a, b: a ^ b,
    "mul.lo.u32": lambda a, b: a * b,
    "prmt.b32": _prmt,
}


def _run_ptx(asm: str, operands: dict, memory: dict | None = None) -> dict:
    """Execute the straight-line PTX of ``asm`` on 32-bit Python ints (``$k`` operands given
    in ``operands``; 16-bit outputs come back in it); ``memory`` maps byte addresses to the
    16-bit values ``ld.global.nc.b16`` reads."""
    regs = dict(operands)
    val = lambda t: int(t, 16) if t.startswith("0x") else int(t) if t.isdigit() else regs[t]  # noqa: E731
    for ins in asm.strip().strip("{}").split(";"):
        ins = ins.strip()
        if not ins or ins.startswith(".reg"):
            continue
        op, args = ins.split(None, 1)
        if op == "mov.b64":  # pack two 32-bit registers: {low, high}
            dst, pair = (x.strip() for x in args.split(",", 1))
            lo, hi = (val(r.strip()) for r in pair.strip("{} ").split(","))
            regs[dst] = lo | hi << 32
            continue
        if op == "ld.global.nc.b16":
            dst, addr = (x.strip() for x in args.split(","))
            regs[dst] = memory[regs[addr.strip("[]")]]
            continue
        if op == "mov.b32" and args.startswith("{"):  # unpack into two 16-bit registers
            lo_hi, src = args.rsplit(",", 1)
            lo, hi = (r.strip() for r in lo_hi.strip("{} ").split(","))
            regs[lo], regs[hi] = val(src.strip()) & 0xFFFF, val(src.strip()) >> 16
            continue
        dst, *src = (x.strip() for x in args.split(","))
        regs[dst] = _PTX_OPS[op](*(val(s) for s in src)) & 0xFFFFFFFF
    return regs


def _prep_tables(q, k_cb, v_cb, n: int = 16):
    """The 16 register-table words ``_tables_kernel`` writes for codebooks ``k_cb``, ``v_cb`` of
    ``n`` entries each (it writes them once per lane: the 32 copies must agree)."""
    from turboquant.triton import decode

    bits = n.bit_length() - 1
    tab = decode.decode_tables(k_cb, v_cb, bits, bits)
    copies = tab[int(decode._LANE_WORDS) :].view(torch.int32).view(32, 16)
    assert torch.equal(copies, copies[:1].expand(32, 16))
    return copies[0].tolist()


def test_register_table_lookup_matches_the_codebook():
    """``_prep_kernel``'s register tables + ``_PRMT4_ASM`` give ``c[idx]`` (fp16 bits) for all
    8 codes of a packed word (the entry of the index each one codes), in order."""
    from turboquant.triton import decode

    q = TurboQuantMSE(D, 4).to(DEV)
    k_cb, v_cb = q.centroids, q.centroids.flip(0).contiguous() * 0.5  # two different tables
    words = _prep_tables(q, k_cb, v_cb)
    asm = decode._PRMT4_ASM.value
    gen = torch.Generator().manual_seed(0)
    for first, cb in ((0, k_cb), (8, v_cb)):
        bits = code_order(cb).to(torch.float16).view(torch.int16).tolist()
        table = [b & 0xFFFF for b in bits]  # entry c: the centroid of the index whose code is c
        for w in torch.randint(0, 2**32, (64,), generator=gen, dtype=torch.int64).tolist():
            ops = {"$8": w} | {f"${9 + i}": words[first + i] & 0xFFFFFFFF for i in range(8)}
            regs = _run_ptx(asm, ops)
            want = [table[(w >> (4 * j)) & 0xF] for j in range(8)]
            assert [regs[f"${j}"] for j in range(8)] == want, hex(w)


def _symmetric_cases(seed: int):
    """For a symmetric K and V codebook: (fp16 bits of the 16 entries in code order, the register-table words
    2, 3, 6, 7 ``_prep_kernel`` writes, packed words to look up: corner cases and 64 random)."""
    q = TurboQuantMSE(D, 4).to(DEV)
    k_cb, v_cb = q.centroids, q.centroids * 0.37
    words = _prep_tables(q, k_cb, v_cb)
    gen = torch.Generator().manual_seed(seed)
    for first, cb in ((0, k_cb), (8, v_cb)):
        table = [b & 0xFFFF for b in code_order(cb).to(torch.float16).view(torch.int16).tolist()]
        tab = [words[first + i] & 0xFFFFFFFF for i in (2, 3, 6, 7)]
        ws = [0, 0xFFFFFFFF, 0x76543210, 0xFEDCBA98]
        ws += torch.randint(0, 2**32, (64,), generator=gen, dtype=torch.int64).tolist()
        yield table, tab, ws


def test_symmetric_register_table_lookup_matches_the_codebook():
    """``_SYM4_ASM`` with words 2, 3, 6, 7 of ``_prep_kernel``'s tables (the positive half of a
    symmetric codebook) gives ``c[idx]`` (fp16 bits) for all 8 indices of a packed word."""
    from turboquant.triton import decode

    c = TurboQuantMSE(D, 4).centroids
    assert decode.is_symmetric(c) and decode.is_symmetric(c * 0.37)  # _symmetric_cases' codebooks
    for table, tab, ws in _symmetric_cases(seed=3):
        for w in ws:
            ops = {"$8": w} | {f"${9 + i}": t for i, t in enumerate(tab)}
            regs = _run_ptx(decode._SYM4_ASM.value, ops)
            want = [table[(w >> (4 * j)) & 0xF] for j in range(8)]
            assert [regs[f"${j}"] for j in range(8)] == want, hex(w)


def test_pair_lookup_gives_the_symmetric_lookups_values_in_pairs():
    """``_SYM4_PAIR_ASM`` (operands as Triton passes a pack of 8: the word as $4..$11, each
    table word 8 times from $12 on) gives output ``j`` = the fp16 pair (c[idx_2j], c[idx_2j+1])
    (low half first) of every packed word, the values ``_SYM4_ASM`` gives one by one."""
    from turboquant.triton import decode

    for table, tab, ws in _symmetric_cases(seed=5):
        for w in ws:
            ops = {f"${4 + i}": w for i in range(8)}
            ops |= {f"${12 + 8 * t + i}": tab[t] for t in range(4) for i in range(8)}
            regs = _run_ptx(decode._SYM4_PAIR_ASM.value, ops)
            want = [table[(w >> (4 * j)) & 0xF] for j in range(8)]
            pairs = [want[2 * j] | want[2 * j + 1] << 16 for j in range(4)]
            assert [regs[f"${j}"] for j in range(4)] == pairs, hex(w)
            single = _run_ptx(decode._SYM4_ASM.value, {"$8": w} | {f"${9 + i}": t for i, t in enumerate(tab)})
            assert [single[f"${j}"] for j in range(8)] == want, hex(w)


def test_plane_lookups_give_index_planes_of_two_words():
    """``_SYM4_EVEN_ASM`` / ``_SYM4_ODD_ASM`` (a pack of 2: words a = $4, b = $5, each table
    word twice from $6 on) give output ``j`` = the fp16 pair (c[a_n], c[b_n]) (low half first)
    of index ``n = 2j`` / ``2j + 1`` of both words: the values ``_SYM4_ASM`` gives one word at a
    time, as index planes."""
    from turboquant.triton import decode

    for table, tab, ws in _symmetric_cases(seed=11):
        for a, b in zip(ws, ws[1:] + ws[:1], strict=True):
            ops = {"$4": a, "$5": b} | {f"${6 + 2 * t + i}": tab[t] for t in range(4) for i in range(2)}
            want = [table[(a >> (4 * n)) & 0xF] | table[(b >> (4 * n)) & 0xF] << 16 for n in range(8)]
            for parity, asm in enumerate((decode._SYM4_EVEN_ASM, decode._SYM4_ODD_ASM)):
                regs = _run_ptx(asm.value, ops)
                assert [regs[f"${j}"] for j in range(4)] == want[parity::2], (hex(a), hex(b), parity)


def test_word_lookup_gives_the_byte_planes_of_one_word():
    """``_SYM4_WORD_ASM`` (a pack of 2: the word twice as $4, $5, each table word twice from $6
    on) gives output ``j`` = the fp16 pair (c[idx_2j], c[idx_2j+1]) (low half first) of the word:
    the values ``_SYM4_ASM`` gives one by one, paired as ``k_byte_planes`` reads them."""
    from turboquant.triton import decode

    for table, tab, ws in _symmetric_cases(seed=13):
        for w in ws:
            ops = {"$4": w, "$5": w} | {f"${6 + 2 * t + i}": tab[t] for t in range(4) for i in range(2)}
            want = [table[(w >> (4 * n)) & 0xF] for n in range(8)]
            regs = _run_ptx(decode._SYM4_WORD_ASM.value, ops)
            pairs = [want[2 * j] | want[2 * j + 1] << 16 for j in range(4)]
            assert [regs[f"${j}"] for j in range(4)] == pairs, hex(w)


def test_symmetry_check_is_remembered_and_sees_changes():
    from turboquant.triton import decode

    c = TurboQuantMSE(D, 4).centroids.clone()
    assert decode.is_symmetric(c)
    c[0] += 1e-3  # in place: a new version, checked again
    assert not decode.is_symmetric(c)
    assert not decode.is_symmetric(torch.linspace(-1, 2, 16))
    with torch.inference_mode():  # no version counter: remembered by identity
        c = TurboQuantMSE(D, 4).centroids.clone()
        assert decode.is_symmetric(c) and decode.is_symmetric(c)


@pytest.mark.parametrize("which", ["byte", "bits"])
def test_l1_table_lookups_read_the_indexed_entry(which):
    """The 2- and 3-bit lookups put the index into the low byte of the (256-byte aligned)
    table address and read one fp16 there: ``tab[byte_j(spread) / 2]`` and
    ``tab[(w >> shift) & mask]`` as the interpreter path computes them."""
    from turboquant.triton import decode

    base = 0x7F3A_1234_5600  # 256-byte aligned, a high word above 32 bits
    table = torch.randint(0, 2**16, (128,), generator=torch.Generator().manual_seed(1)).tolist()
    memory = {base + 2 * i: v for i, v in enumerate(table)}
    lo, hi = base & 0xFFFFFFFF, base >> 32
    gen = torch.Generator().manual_seed(2)
    for w in torch.randint(0, 2**32, (64,), generator=gen, dtype=torch.int64).tolist():
        if which == "byte":  # spread words hold twice an index per byte (indices < 128)
            w &= 0xFEFEFEFE
            for j in range(4):
                ops = {"$1": w, "$2": lo, "$3": hi, "$4": 0x7650 + j}
                got = _run_ptx(decode._LDG_BYTE_ASM.value, ops, memory)["$0"]
                assert got == table[((w >> (8 * j)) & 0xFF) >> 1]
        else:
            for shift, mask in ((1, 7), (3, 7), (21, 7), (2, 3), (6, 3)):
                ops = {"$1": w, "$2": lo, "$3": hi, "$4": 2 * mask, "$5": shift - 1}
                got = _run_ptx(decode._LDG_BITS_ASM.value, ops, memory)["$0"]
                assert got == table[(w >> shift) & mask]


def test_many_splits_odd_group_reduce():
    # 3 query heads per KV head and 100 splits: 300 partial rows per (sequence, KV head), more
    # than one of the reduction's steps (256 rows at d=64), some splits empty (ragged lengths)
    lens = [1600, 17, 0]
    lay, pool, table, seq_lens, kq, vq = _paged_batch(lens, 2, 4, 4, 16, max_blocks=100)
    q = torch.randn(len(lens), 6, D, device=DEV).half()
    args = (q, pool, lay, table, seq_lens, kq.rotation, kq.centroids, vq.centroids)
    ref = tq_paged_decode_reference(*args)
    # the launcher's merge steps (256 rows) and 19 steps of 16 rows in programs of 2 warps
    for cfg in (DecodeConfig(block_n=16), DecodeConfig(block_n=16, reduce_rows=16, reduce_warps=2)):
        _close(tq_paged_decode(*args, num_splits=100, config=cfg), ref, torch.float16)
    for bad in (dict(reduce_rows=24), dict(reduce_rows=8), dict(reduce_warps=3)):
        with pytest.raises(ValueError, match="reduce_rows must be a power of two >= 16"):
            DecodeConfig(**bad)


def test_rotation_pieces_are_two_bf16_halves_remembered_per_version():
    from turboquant.triton import decode

    rot = TurboQuantMSE(D, 4).rotation.clone()
    pieces = decode.rotation_pieces(rot)
    assert pieces.dtype == torch.bfloat16 and pieces.shape == (2, D, D) and pieces.is_contiguous()
    hi, lo = pieces.float()
    assert torch.equal(hi, rot.to(torch.bfloat16).float())  # the nearest bf16
    # what is left after two pieces is the rounding of lo: at most 2**-9 of |lo| <= 2**-9 |hi|
    assert ((hi + lo - rot).abs() <= 2.0**-17 * rot.abs()).all()
    assert decode.rotation_pieces(rot) is pieces
    rot.mul_(-1)  # in place: a new version, new pieces
    assert torch.equal(decode.rotation_pieces(rot)[0].float(), -hi)


def test_decode_tables_are_remembered_per_codebook_pair_and_version():
    """The codebook tables (in code order) are built once per (K codebook, V codebook) pair and
    in-place version; an in-place change of either codebook gives new tables, and decode
    follows it."""
    from turboquant.triton import decode

    lay, pool, table, seq_lens, kq, vq = _paged_batch([40, 7], 2, 4, 4, 16, max_blocks=3, seed=3)
    k_cb, v_cb = kq.centroids.clone(), vq.centroids.clone()
    tab = decode.decode_tables(k_cb, v_cb, 4, 4)
    assert tab.dtype == torch.float16 and tab.numel() == decode._TABLES
    assert torch.equal(tab[:16], code_order(k_cb).half())
    assert torch.equal(tab[128:144], code_order(v_cb).half())
    assert decode.decode_tables(k_cb, v_cb, 4, 4) is tab
    other = decode.decode_tables(k_cb, v_cb.clone(), 4, 4)  # another V tensor: built again
    assert other is not tab and torch.equal(other, tab)
    q = torch.randn(2, 8, D, device=DEV, dtype=torch.float16)
    for changed in (v_cb, k_cb):
        changed.mul_(0.5)  # in place: a new version
        args = (q, pool, lay, table, seq_lens, kq.rotation, k_cb, v_cb)
        new = decode.decode_tables(k_cb, v_cb, 4, 4)
        assert torch.equal(new[:16], code_order(k_cb).half())
        assert torch.equal(new[128:144], code_order(v_cb).half())
        out = tq_paged_decode(*args, config=DecodeConfig(num_warps=4))
        _close(out, tq_paged_decode_reference(*args), q.dtype)


@triton.jit
def _sym_words_kernel(W, OUT, BITS: tl.constexpr, MODE: tl.constexpr, N: tl.constexpr):
    i = tl.arange(0, N)
    tl.store(OUT + i, decode_module._sym_words(tl.load(W + i), BITS, MODE))


def test_symmetric_3bit_lookup_matches_the_codebook():
    """3-bit groups through ``_sym_words`` (one code per nibble, bit 3 set) and ``_SYM4_ASM`` with
    words 2, 3, 6, 7 of ``_prep_kernel``'s tables for 8-entry codebooks give ``c[idx]`` (fp16
    bits) for all 8 codes of a group (the entry of the index each codes), in order."""
    q = TurboQuantMSE(D, 3).to(DEV)
    k_cb, v_cb = q.centroids, q.centroids * 0.37
    assert decode_module.is_symmetric(k_cb) and decode_module.is_symmetric(v_cb)
    words = _prep_tables(q, k_cb, v_cb, n=8)
    gen = torch.Generator().manual_seed(5)
    groups = [0, 0xFFFFFF, 0b111_110_101_100_011_010_001_000, 0b000_001_010_011_100_101_110_111]
    groups += torch.randint(0, 2**24, (60,), generator=gen, dtype=torch.int64).tolist()
    w = torch.tensor(groups, dtype=torch.int32, device=DEV)
    spread = torch.empty_like(w)
    _sym_words_kernel[(1,)](w, spread, BITS=3, MODE=decode_module._SYM4.value, N=len(groups))
    for first, cb in ((0, k_cb), (8, v_cb)):
        table = [b & 0xFFFF for b in code_order(cb).to(torch.float16).view(torch.int16).tolist()]
        tab = [words[first + i] & 0xFFFFFFFF for i in (2, 3, 6, 7)]
        for g, x in zip(groups, spread.tolist(), strict=True):
            ops = {"$8": x & 0xFFFFFFFF} | {f"${9 + i}": t for i, t in enumerate(tab)}
            regs = _run_ptx(decode_module._SYM4_ASM.value, ops)
            assert [regs[f"${j}"] for j in range(8)] == [table[(g >> (3 * j)) & 7] for j in range(8)], hex(g)
