"""tq4_compress / tq4_decompress against TurboQuantMSE and their plain-torch references.

CPU runs use Triton's interpreter (TRITON_INTERPRET=1); with CUDA the same tests run the
compiled kernels.
"""

import math
import os
from fractions import Fraction

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from turboquant.packing import index_codes  # noqa: E402
from turboquant.quantizer import TurboQuantMSE  # noqa: E402
from turboquant.triton.compress import (  # noqa: E402
    tq4_compress,
    tq4_compress_reference,
    tq4_decompress,
    tq4_decompress_reference,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _quantizer(d, bits):
    return TurboQuantMSE(d, bits).to(DEVICE)


def _assert_indices_match(q, x, packed, norms):
    """Indices equal TurboQuantMSE's except where the rotated coordinate is within fp32
    rounding (1e-5 of a unit vector) of a boundary."""
    ref_packed, ref_norms = q.quantize_packed(x)
    torch.testing.assert_close(norms, ref_norms, rtol=1e-5, atol=1e-6)
    idx, ref_idx = q.unpack(packed), q.unpack(ref_packed)
    bad = idx != ref_idx
    if bad.any():
        x32 = x.float()
        y = (x32 / ref_norms.clamp_min(1e-30).unsqueeze(-1)) @ q.rotation.T
        gap = (y[bad].unsqueeze(-1) - q.boundaries).abs().min(-1).values
        assert gap.max().item() < 1e-5, f"index mismatch far from a boundary: gap {gap.max().item()}"
        assert (idx.long() - ref_idx.long()).abs().max().item() == 1
    assert bad.float().mean().item() < 1e-3


@pytest.mark.parametrize("d", [64, 96, 128, 256])
@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_compress_matches_quantizer(d, bits, dtype):
    torch.manual_seed(d * 10 + bits)
    q = _quantizer(d, bits)
    x = (torch.randn(3, 5, d, device=DEVICE) * 3).to(dtype)
    x[0, 0] = 0  # zero vector: norm 0, reconstructs to zero
    packed, norms = tq4_compress(x, q.rotation, q.boundaries, bits=bits)
    assert packed.shape == (3, 5, d * bits // 8) and packed.dtype == torch.uint8
    assert norms.shape == (3, 5) and norms.dtype == torch.float32
    _assert_indices_match(q, x, packed, norms)
    assert norms[0, 0].item() == 0.0
    ref_packed, ref_norms = tq4_compress_reference(x, q.rotation, q.boundaries, bits=bits)
    torch.testing.assert_close(norms, ref_norms, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_bucketing_is_exact_on_ties_for_any_sorted_boundaries(bits):
    """With the identity rotation, rows of four ±0.5 (norm exactly 1) give rotated coordinates
    -0.5, 0 and 0.5 exactly; boundaries that are sorted but neither symmetric nor Lloyd-Max,
    with those values among them (a repeated one too), must bucket like torch.bucketize
    (the number of boundaries strictly below), with no tolerance."""
    gen = torch.Generator().manual_seed(bits)
    d, n = 64, 2**bits - 1
    bnd = torch.cat([torch.tensor([-0.5, 0.0, 0.5, 0.5]), torch.rand(n, generator=gen) * 1.6 - 0.7])
    bnd = bnd[:n].sort().values.to(DEVICE)
    x = torch.zeros(40, d)
    for row in x:
        row[torch.randperm(d, generator=gen)[:4]] = (torch.randint(0, 2, (4,), generator=gen) * 2 - 1) * 0.5
    x = x.to(DEVICE)
    packed, norms = tq4_compress(x, torch.eye(d, device=DEVICE), bnd, bits=bits)
    assert torch.equal(norms, torch.ones_like(norms))
    q = _quantizer(d, bits)
    assert torch.equal(q.unpack(packed).long(), torch.bucketize(x, bnd).long())


def test_symmetric_bucketing_is_exact_on_ties():
    """Symmetric 4-bit boundaries (Lloyd-Max's are) take the sign-folded integer search. With
    the identity rotation, rows of ``k`` entries ``+-1/sqrt(k)`` (k = 1, 4, 16, 64: norm
    exactly 1) give rotated coordinates +-1, +-0.5, +-0.25, +-0.125 and 0, most of them equal
    to a boundary: they must bucket like torch.bucketize, with no tolerance."""
    from turboquant.triton.codebook_memo import is_symmetric

    gen = torch.Generator().manual_seed(0)
    half = torch.tensor([0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875])
    bnd = torch.cat([-half.flip(0), torch.zeros(1), half]).to(DEVICE)
    assert is_symmetric(bnd)
    d = 64
    x = torch.zeros(48, d)
    for i, row in enumerate(x):
        k = (1, 4, 16, 64)[i % 4]
        signs = torch.randint(0, 2, (k,), generator=gen) * 2 - 1
        row[torch.randperm(d, generator=gen)[:k]] = signs / k**0.5
    x = x.to(DEVICE)
    packed, norms = tq4_compress(x, torch.eye(d, device=DEVICE), bnd, bits=4)
    assert torch.equal(norms, torch.ones_like(norms))
    assert torch.equal(_quantizer(d, 4).unpack(packed).long(), torch.bucketize(x, bnd).long())


@pytest.mark.parametrize("d", [64, 96, 128, 256])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_bucket_table_gives_bucketize(d, bits):
    """Every Lloyd-Max codebook has a cell table (``BUCKET_TABLE``), and its lookup with either
    cell function (the PTX's single fma rounding, the interpreter's fp64 route) gives the code
    of torch.bucketize's index for the boundaries, their fp32 neighbours, random values, +-0,
    +-1, +-inf, huge and subnormal values; NaN gives index 0, like the search paths."""
    import math

    from turboquant.triton.compress import bucket_table, table_cell, table_cell_fp64

    bnd = TurboQuantMSE(d, bits).boundaries
    words, scale, offset = bucket_table(bnd)
    assert words.shape == (33, 2)
    pair, b = words[:, 0].tolist(), words[:, 1].contiguous().view(torch.float32).tolist()
    codes = index_codes(torch.arange(2**bits), bits).tolist()

    def lookup(k, y):  # the kernel's step: low byte, or the next byte where y > b[k]
        return pair[k] >> 8 if y > b[k] else pair[k] & 255

    gen = torch.Generator().manual_seed(d + bits)
    ys = torch.cat(
        [
            bnd,
            torch.nextafter(bnd, torch.tensor(math.inf)),
            torch.nextafter(bnd, torch.tensor(-math.inf)),
            torch.randn(400, generator=gen) * 0.4 / d**0.5,
            torch.tensor([0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, 3e38, -3e38, 1e-40, -1e-40]),
        ]
    )
    for y in ys.tolist():
        want = int(torch.bucketize(torch.tensor([y]), bnd).item())
        for cell in (table_cell, table_cell_fp64):
            k = cell(y, scale, offset)
            assert lookup(k, y) == codes[want], (cell.__name__, y, k)
    for cell in (table_cell, table_cell_fp64):
        k = cell(math.nan, scale, offset)
        assert k == 0 and lookup(k, math.nan) == codes[0]


def test_bucket_table_refuses_boundaries_closer_than_a_cell():
    """Repeated boundaries, or two closer than a cell of the span, get no table (the search
    paths bucket them); sorted, asymmetric, well-spread ones do."""
    from turboquant.triton.compress import bucket_table

    assert bucket_table(torch.tensor([-0.5, 0.0, 0.5, 0.5, 0.7, 0.8, 0.9])) is None
    assert bucket_table(torch.tensor([-1.0, 0.0, 1e-3])) is None
    assert bucket_table(torch.tensor([-0.3, 0.1, 0.8])) is not None


@pytest.mark.parametrize("bits", [3, 4])
def test_table_bucketing_writes_the_search_paths_bytes(bits, monkeypatch):
    """The table lookup (the default for 3 and 4 bits; 2-bit indices keep the linear count)
    and the search paths bucket the same rotated coordinates, so they write the same bytes."""
    import turboquant.triton.compress as compress

    torch.manual_seed(bits)
    q = _quantizer(128, bits)
    assert compress.bucket_table(q.boundaries) is not None
    x = torch.randn(24, 4, 128, device=DEVICE, dtype=torch.bfloat16)
    got = tq4_compress(x, q.rotation, q.boundaries, bits=bits)
    monkeypatch.setattr(compress, "BUCKET_TABLE", False)
    want = tq4_compress(x, q.rotation, q.boundaries, bits=bits)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    _assert_indices_match(q, x, *got)


@pytest.mark.parametrize("offset", [0, 1])
def test_three_bit_words_write_the_bytes(offset, monkeypatch):
    """3-bit rows at d=128 stored as int32 words (``PACK3_WORDS``) hold the same bytes as the
    single-byte stores, into a fresh output and into a strided one; an output that is not
    4-byte aligned (``offset`` 1) takes the byte stores."""
    import turboquant.triton.compress as compress

    monkeypatch.setattr(compress, "PACK3_WORDS", True)
    torch.manual_seed(offset)
    q = _quantizer(128, 3)
    x = torch.randn(21, 3, 128, device=DEVICE, dtype=torch.bfloat16)
    buf = torch.full((21, 3, 48 + 4 + offset), 0xAB, dtype=torch.uint8, device=DEVICE)
    out_p, out_n = buf[..., offset : offset + 48], torch.empty(21, 3, device=DEVICE)
    got = tq4_compress(x, q.rotation, q.boundaries, bits=3)
    tq4_compress(x, q.rotation, q.boundaries, bits=3, out_packed=out_p, out_norms=out_n)
    monkeypatch.setattr(compress, "PACK3_WORDS", False)
    want = tq4_compress(x, q.rotation, q.boundaries, bits=3)
    assert torch.equal(got[0], want[0]) and torch.equal(out_p, want[0])
    assert (buf[..., :offset] == 0xAB).all() and (buf[..., offset + 48 :] == 0xAB).all()
    _assert_indices_match(q, x, *got)


def test_two_bit_indices_keep_the_linear_count(monkeypatch):
    """2-bit writes never build or read a cell table (three comparisons are cheaper)."""
    import turboquant.triton.compress as compress

    def no_table(boundaries):
        raise AssertionError("2-bit compress asked for a cell table")

    monkeypatch.setattr(compress, "bucket_table", no_table)
    q = _quantizer(128, 2)
    x = torch.randn(8, 2, 128, device=DEVICE, dtype=torch.bfloat16)
    _assert_indices_match(q, x, *tq4_compress(x, q.rotation, q.boundaries, bits=2))


def _round_f32(q):
    """The fp32 nearest to the rational ``q``, ties to even (rn), as a Python float."""
    import numpy as np

    c = np.float32(float(q))
    near = (np.nextafter(c, np.float32(-np.inf)), c, np.nextafter(c, np.float32(np.inf)))
    return float(min(near, key=lambda f: (abs(Fraction(float(f)) - q), int(f.view(np.int32)) & 1)))


def _fma_f32(a: float, b: float, c: float, sat: bool = False) -> float:
    """``fma.rn[.sat].f32``: ``a * b + c`` rounded once; ``.sat`` clamps to [0, 1], NaN to 0."""
    if not all(math.isfinite(x) for x in (a, b, c)):
        r = a * b + c
    else:
        exact = Fraction(a) * Fraction(b) + Fraction(c)
        r = math.copysign(math.inf, exact) if abs(exact) >= 2**128 else _round_f32(exact)
    if sat:
        r = 0.0 if r != r else min(max(r, 0.0), 1.0)
    return r


def _run_bucket_asm(asm: str, y: float, bounds: list[int], memory: dict | None = None) -> int:
    """Plain-Python model of the straight-line PTX of ``_BUCKET4_SYM_ASM`` and ``_TABLE_ASM``
    (predicates, 32-bit integer ops, an ordered f32 compare, fp32 fmas, a 64-bit address and a
    two-word load from ``memory``: address -> 32-bit word) for one element: ``$1`` = y, then
    the other operands ``bounds`` from ``$2`` on."""
    import struct

    regs = {"$1": y} | {f"${2 + i}": b for i, b in enumerate(bounds)}

    def as_f32(v):
        return v if isinstance(v, float) else struct.unpack("<f", struct.pack("<I", v))[0]

    def val(t):
        if t.startswith("0f"):
            return struct.unpack("<f", bytes.fromhex(t[2:])[::-1])[0]
        if t.startswith("0x"):
            return int(t, 16)
        return int(t) if t.lstrip("-").isdigit() else regs[t]

    def s32(v):
        return v - (1 << 32) if v & (1 << 31) else v

    for ins in asm.strip().strip("{}").split(";"):
        ins = ins.strip()
        if not ins or ins.startswith(".reg"):
            continue
        if ins.startswith("@"):
            guard, ins = ins.split(None, 1)
            if regs[guard.lstrip("@!")] == guard.startswith("@!"):
                continue
        op, args = ins.split(None, 1)
        dst, *src = (x.strip() for x in args.split(","))
        v = [] if op.startswith("ld.") else [val(x) for x in src]
        if op == "setp.gt.f32":
            regs[dst] = v[0] > v[1]  # NaN compares false (ordered)
        elif op == "setp.gt.s32":
            regs[dst] = s32(v[0]) > s32(v[1])
        elif op == "mov.b32":
            regs[dst] = struct.unpack("<I", struct.pack("<f", v[0]))[0] if isinstance(v[0], float) else v[0]
        elif op == "selp.b32":
            regs[dst] = v[0] if v[2] else v[1]
        elif op in ("fma.rn.f32", "fma.rn.sat.f32"):
            regs[dst] = _fma_f32(*(as_f32(x) for x in v), sat=".sat" in op)
        elif op == "mad.wide.u32":
            regs[dst] = v[0] * v[1] + v[2]
        elif op == "ld.global.nc.v2.f32":  # {a, b}, [addr]: the split above cut the braces apart
            a, b = dst.strip("{"), src[0].strip("}")
            addr = regs[src[1].strip("[]")]
            regs[a], regs[b] = as_f32(memory[addr]), as_f32(memory[addr + 4])
        elif op == "shr.b32":
            regs[dst] = v[0] >> v[1]
        else:
            fn = {"and.b32": int.__and__, "xor.b32": int.__xor__, "add.s32": int.__add__}[op]
            regs[dst] = fn(v[0], v[1]) & 0xFFFFFFFF
    return regs["$0"]


def test_bucket_asm_matches_bucketize():
    """The inline PTX of the symmetric 4-bit bucketing (``BUCKET_ASM``, the GPU default; the interpreter
    runs no PTX) gives the code of torch.bucketize's index for values between, at and beyond the
    Lloyd-Max boundaries and for +-0 and +-inf; NaN gives index 0's like the Triton path."""
    import math

    from turboquant.triton.compress import _BUCKET4_SYM_ASM

    bnd = _quantizer(128, 4).boundaries.cpu()
    bits = bnd[8:].view(torch.int32).tolist()
    gen = torch.Generator().manual_seed(0)
    ys = torch.cat([bnd, -bnd, torch.randn(300, generator=gen) * 0.15, torch.tensor([0.0, -0.0, 1.0, -1.0])])
    ys = torch.cat([ys, torch.tensor([math.inf, -math.inf])])
    codes = index_codes(torch.arange(16), 4).tolist()
    for y in ys.tolist():
        want = int(torch.bucketize(torch.tensor([y]), bnd).item())
        assert _run_bucket_asm(_BUCKET4_SYM_ASM.value, y, bits) == codes[want], y
    assert _run_bucket_asm(_BUCKET4_SYM_ASM.value, math.nan, bits) == codes[0]


@pytest.mark.parametrize("d", [64, 128, 256])
@pytest.mark.parametrize("bits", [3, 4])
def test_table_asm_gives_the_code_of_bucketize(d, bits):
    """The inline PTX of the table bucketing (``_TABLE_ASM``, the GPU path; the interpreter runs
    the Triton version) gives the code of torch.bucketize's index for the boundaries, their
    fp32 neighbours, random values, +-0, +-1, +-inf and huge values; NaN gives index 0's."""
    from turboquant.triton.compress import _MAGIC, _TABLE_ASM, bucket_table

    asm = _TABLE_ASM.value
    bnd = TurboQuantMSE(d, bits).boundaries
    words, scale, offset = bucket_table(bnd)
    base = 0x7F3A_1234_5600  # where the table would sit; the kernel passes it less 8 * _MAGIC
    memory = {base + 4 * i: w & 0xFFFFFFFF for i, w in enumerate(words.flatten().tolist())}
    want_codes = index_codes(torch.arange(2**bits), bits).tolist()
    gen = torch.Generator().manual_seed(d * bits)
    ys = torch.cat(
        [
            bnd,
            torch.nextafter(bnd, torch.tensor(math.inf)),
            torch.nextafter(bnd, torch.tensor(-math.inf)),
            torch.randn(200, generator=gen) * 0.4 / d**0.5,
            torch.tensor([0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, 3e38, -3e38]),
        ]
    )
    ops = [scale, offset, base - 8 * _MAGIC]
    for y in ys.tolist():
        want = int(torch.bucketize(torch.tensor([y]), bnd).item())
        assert _run_bucket_asm(asm, y, ops, memory) == want_codes[want], y
    assert _run_bucket_asm(asm, math.nan, ops, memory) == want_codes[0]


@pytest.mark.skipif(DEVICE != "cuda", reason="inline PTX needs a GPU (the models above check it on CPU)")
@pytest.mark.parametrize("table", [True, False])
def test_bucket_asm_kernel_matches_the_triton_path(table, monkeypatch):
    """On a GPU, ``BUCKET_ASM = True`` (the default) writes the same bytes as the Triton
    bucketing, with the cell table (``_CELL_ASM`` against ``tl.fma``) and without it."""
    import turboquant.triton.compress as compress

    q = _quantizer(128, 4)
    x = torch.randn(512, 8, 128, device=DEVICE, dtype=torch.bfloat16)
    monkeypatch.setattr(compress, "BUCKET_TABLE", table)
    monkeypatch.setattr(compress, "BUCKET_ASM", False)
    want, want_n = tq4_compress(x, q.rotation, q.boundaries, bits=4)
    monkeypatch.setattr(compress, "BUCKET_ASM", True)
    got, got_n = tq4_compress(x, q.rotation, q.boundaries, bits=4)
    assert torch.equal(got, want) and torch.equal(got_n, want_n)
    _assert_indices_match(q, x, got, got_n)


@pytest.mark.parametrize("d", [64, 128, 256])
@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_hadamard_rotation_goes_through_one_sign_piece(d, bits, dtype, monkeypatch):
    """A randomized Hadamard rotation (every entry +-1/sqrt(d)) is rotated as one exact dot
    against its signs and a scale: the quantizer's indices, and the three-piece path's bytes
    except at boundary ties."""
    import turboquant.triton.compress as compress

    torch.manual_seed(d + bits)
    q = TurboQuantMSE(d, bits, rotation="hadamard").to(DEVICE)
    assert compress.sign_scale(q.rotation) == pytest.approx(d**-0.5, rel=1e-7)
    x = (torch.randn(4, 6, d, device=DEVICE) * 2).to(dtype)
    packed, norms = tq4_compress(x, q.rotation, q.boundaries, bits=bits)
    _assert_indices_match(q, x, packed, norms)
    monkeypatch.setattr(compress, "SIGN_ROTATION", False)
    pieces, pieces_norms = tq4_compress(x, q.rotation, q.boundaries, bits=bits)
    assert torch.equal(norms, pieces_norms)
    assert (packed != pieces).float().mean().item() < 1e-2


def test_sign_scale_only_for_one_magnitude():
    import turboquant.triton.compress as compress

    had = TurboQuantMSE(64, 4, rotation="hadamard").rotation.clone()
    assert compress.sign_scale(had) == float(had.abs()[0, 0])
    assert compress.sign_scale(TurboQuantMSE(64, 4).rotation) is None  # Haar-random (QR)
    had[3, 5] = torch.nextafter(had[3, 5], torch.tensor(2.0))  # in place: a new version
    assert compress.sign_scale(had) is None
    assert compress.sign_scale(torch.zeros(64, 64)) is None


def test_quantizer_rotation_is_launched_without_a_copy(monkeypatch):
    """TurboQuantMSE's rotation reaches the kernel as it is (row-major), not copied per call."""
    import turboquant.triton.compress as compress

    q = _quantizer(128, 4)
    seen = []
    checked = compress._check_rotation
    monkeypatch.setattr(compress, "_check_rotation", lambda *a: seen.append(checked(*a)) or seen[-1])
    tq4_compress(torch.randn(4, 2, 128, device=DEVICE), q.rotation, q.boundaries, bits=4)
    assert seen[0].data_ptr() == q.rotation.data_ptr()


def test_large_writes_are_tuned_once_then_launched_directly(monkeypatch):
    """A large write goes through the autotuner once per kernel variant; its pick is
    remembered and later writes launch it directly, with the same bytes."""
    import turboquant.triton.compress as compress

    monkeypatch.setattr(compress, "TUNE_ROWS", 64)
    monkeypatch.setattr(compress, "_TUNED", {})
    q = _quantizer(128, 4)
    x = torch.randn(40, 2, 128, device=DEVICE, dtype=torch.bfloat16)
    first = tq4_compress(x, q.rotation, q.boundaries, bits=4)
    assert len(compress._TUNED) == 1
    (launch,) = compress._TUNED.values()
    best = compress._compress_kernel.best_config
    assert launch["BLOCK_R"] == best.kwargs["BLOCK_R"] and launch["num_warps"] == best.num_warps
    assert launch.get("maxnreg") == best.maxnreg  # a register cap of the pick is kept
    calls = []
    monkeypatch.setattr(compress._compress_kernel, "run", lambda *a, **k: calls.append(1))
    again = tq4_compress(x, q.rotation, q.boundaries, bits=4)  # not through the autotuner
    assert not calls and torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])
    _assert_indices_match(q, x, *first)
    tq4_compress(x[:20], q.rotation, q.boundaries, bits=4)  # 40 rows < TUNE_ROWS: the first config
    assert not calls and len(compress._TUNED) == 1


@pytest.mark.parametrize("prefetch", [True, False])
@pytest.mark.parametrize("programs", [1, 3])
def test_persistent_programs_walk_every_row_block(prefetch, programs, monkeypatch):
    """Few programs (each walks several row blocks, the last one partial): with and without
    the row prefetch every row is written once, as by one program per block."""
    import turboquant.triton.compress as compress

    q = _quantizer(128, 4)
    x = torch.randn(5 * 16 + 3, 2, 128, device=DEVICE, dtype=torch.bfloat16)  # 166 rows: 11 blocks of 16
    want, want_n = tq4_compress(x, q.rotation, q.boundaries, bits=4)
    monkeypatch.setattr(compress, "PREFETCH_ROWS", prefetch)
    monkeypatch.setattr(compress, "_max_programs", lambda device: programs)
    out_p = torch.full_like(want, 0xAB)
    out_n = torch.full_like(want_n, -1.0)
    tq4_compress(x, q.rotation, q.boundaries, bits=4, out_packed=out_p, out_norms=out_n)
    assert torch.equal(out_p, want) and torch.equal(out_n, want_n)
    _assert_indices_match(q, x, out_p, out_n)


@pytest.mark.parametrize("shape", [(7, 128), (2, 3, 1, 128), (128,)])
def test_compress_any_leading_shape(shape):
    q = _quantizer(128, 4)
    x = torch.randn(shape, device=DEVICE, dtype=torch.float16)
    packed, norms = tq4_compress(x, q.rotation, q.boundaries, bits=4)
    assert packed.shape == shape[:-1] + (64,) and norms.shape == shape[:-1]
    _assert_indices_match(q, x, packed, norms)


def test_compress_strided_input_and_out_buffers():
    q = _quantizer(64, 3)
    base = torch.randn(6, 4, 2, 64, device=DEVICE, dtype=torch.bfloat16)
    x = base[:, :, 1]  # [6, 4, 64], non-contiguous
    out_p = torch.full((6, 4, 24), 7, dtype=torch.uint8, device=DEVICE)
    out_n = torch.full((6, 4), -1.0, device=DEVICE)
    packed, norms = tq4_compress(x, q.rotation, q.boundaries, bits=3, out_packed=out_p, out_norms=out_n)
    assert packed.data_ptr() == out_p.data_ptr() and norms.data_ptr() == out_n.data_ptr()
    _assert_indices_match(q, x, out_p, out_n)


@pytest.mark.parametrize("k_bits,v_bits", [(4, 4), (3, 2)])
def test_compress_slot_mapping_into_paged_pool(k_bits, v_bits):
    """Write K and V records through 3-D strided views of one uint8 pool (each slot's bytes
    ``[K records of all heads | V records]``); negative slots are skipped and other slots stay
    untouched. The pool's own head-major pages: the next test."""
    d, h, block_size, num_blocks = 64, 2, 4, 3
    qk, qv = _quantizer(d, k_bits), _quantizer(d, v_bits)
    k_rec, v_rec = d * k_bits // 8 + 4, d * v_bits // 8 + 4
    bpt = h * (k_rec + v_rec)
    pool = torch.full((num_blocks, block_size, bpt), 0xAB, dtype=torch.uint8, device=DEVICE)
    flat = pool.view(-1, bpt)
    flat32 = flat.view(torch.float32)

    def views(offset, rec, nbytes):
        packed = flat[:, offset : offset + h * rec].view(-1, h, rec)[:, :, :nbytes]
        norms = flat32[:, offset // 4 : (offset + h * rec) // 4].view(-1, h, rec // 4)[:, :, nbytes // 4]
        return packed, norms

    kp_view, kn_view = views(0, k_rec, k_rec - 4)
    vp_view, vn_view = views(h * k_rec, v_rec, v_rec - 4)
    slots = torch.tensor([5, -1, 0, 11, 2], dtype=torch.int64, device=DEVICE)
    k = torch.randn(5, h, d, device=DEVICE, dtype=torch.float16)
    v = torch.randn(5, h, d, device=DEVICE, dtype=torch.float16)
    tq4_compress(
        k, qk.rotation, qk.boundaries, bits=k_bits, out_packed=kp_view, out_norms=kn_view, slot_mapping=slots
    )
    tq4_compress(
        v, qv.rotation, qv.boundaries, bits=v_bits, out_packed=vp_view, out_norms=vn_view, slot_mapping=slots
    )
    used = slots >= 0
    _assert_indices_match(qk, k[used], kp_view[slots[used]], kn_view[slots[used]])
    _assert_indices_match(qv, v[used], vp_view[slots[used]], vn_view[slots[used]])
    untouched = torch.ones(num_blocks * block_size, dtype=torch.bool, device=DEVICE)
    untouched[slots[used]] = False
    assert (flat[untouched] == 0xAB).all()


@pytest.mark.parametrize("bits, page", [(4, 4), (3, 8), (2, 1)])
def test_compress_slot_mapping_into_page_views(bits, page):
    """Paged views ``[num_pages, P, H, nbytes]`` / ``[num_pages, P, H]`` (head-major pages, as
    turboquant.paged lays them out): slot ``s`` goes to ``[s // P, s % P]``; skipped slots and
    every other byte stay untouched."""
    d, h, num_pages = 128, 3, 16 // page
    q = _quantizer(d, bits)
    nbytes = d * bits // 8
    page_bytes = page * h * (nbytes + 4)
    pool = torch.full((num_pages, page_bytes), 0xAB, dtype=torch.uint8, device=DEVICE)
    packed = pool.as_strided((num_pages, page, h, nbytes), (page_bytes, nbytes, page * nbytes, 1))
    words = pool.view(torch.float32)
    norms = words.as_strided((num_pages, page, h), (page_bytes // 4, 1, page), page * h * nbytes // 4)
    n_slots = num_pages * page
    slots = torch.randperm(n_slots, device=DEVICE)[:6]
    slots[2] = -1
    x = torch.randn(6, h, d, device=DEVICE, dtype=torch.bfloat16)
    tq4_compress(
        x, q.rotation, q.boundaries, bits=bits, out_packed=packed, out_norms=norms, slot_mapping=slots
    )
    used = slots >= 0
    pg, row = slots[used] // page, slots[used] % page
    _assert_indices_match(q, x[used], packed[pg, row], norms[pg, row])
    # the written bytes are exactly the used slots' records
    expect = torch.full_like(pool, 0xAB)
    ep = expect.as_strided(packed.shape, packed.stride())
    en = expect.view(torch.float32).as_strided(norms.shape, norms.stride(), norms.storage_offset())
    ep[pg, row], en[pg, row] = packed[pg, row], norms[pg, row]
    assert torch.equal(pool, expect)
    with pytest.raises(ValueError, match=r"\[num_pages, P, 3, " + str(nbytes) + r"\]"):
        tq4_compress(
            x,
            q.rotation,
            q.boundaries,
            bits=bits,
            out_packed=packed,
            out_norms=norms[:, :, :2],
            slot_mapping=slots,
        )


@pytest.mark.parametrize("d", [64, 96, 128, 256])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_decompress_matches_reference(d, bits):
    torch.manual_seed(bits)
    q = _quantizer(d, bits)
    packed, norms = q.quantize_packed(torch.randn(2, 3, 9, d, device=DEVICE) * 2)
    out = tq4_decompress(packed, norms, q.centroids, head_dim=d, dtype=torch.float32)
    torch.testing.assert_close(out, q.dequantize_rotated_packed(packed, norms), rtol=0, atol=0)
    ref32 = tq4_decompress_reference(packed, norms, q.centroids, head_dim=d, dtype=torch.float32)
    for dtype in (torch.float16, torch.bfloat16):
        out = tq4_decompress(packed, norms.unsqueeze(-1), q.centroids, head_dim=d, dtype=dtype)
        assert out.dtype == dtype
        # one rounding to the output dtype (the interpreter truncates, GPUs round to nearest)
        torch.testing.assert_close(out.float(), ref32, rtol=torch.finfo(dtype).eps, atol=1e-6)


def test_decompress_into_out_buffer_roundtrip():
    q = _quantizer(128, 4)
    x = torch.randn(4, 8, 128, device=DEVICE, dtype=torch.bfloat16)
    packed, norms = tq4_compress(x, q.rotation, q.boundaries, bits=4)
    out = torch.empty(4, 8, 128, device=DEVICE, dtype=torch.bfloat16)
    assert tq4_decompress(packed, norms, q.centroids, head_dim=128, dtype=torch.bfloat16, out=out) is out
    # rotated back, the reconstruction has the 4-bit TurboQuant error (~0.0093 of ||x||^2)
    err = ((out.float() @ q.rotation) - x.float()).pow(2).sum(-1) / x.float().pow(2).sum(-1)
    assert 0.005 < err.mean().item() < 0.015


# ----------------------------------------------------------------------------- bad input


def test_compress_rejects_bad_input():
    q = _quantizer(128, 4)
    x = torch.randn(2, 128, device=DEVICE)
    with pytest.raises(TypeError, match="float16"):
        tq4_compress(x.to(torch.int32), q.rotation, q.boundaries)
    with pytest.raises(ValueError, match="64, 96, 128, 256"):
        tq4_compress(torch.randn(2, 80, device=DEVICE), q.rotation, q.boundaries)
    with pytest.raises(ValueError, match="2, 3, 4"):
        tq4_compress(x, q.rotation, q.boundaries, bits=5)
    with pytest.raises(ValueError, match="15 entries"):
        tq4_compress(x, q.rotation, q.boundaries[:7], bits=4)
    with pytest.raises(ValueError, match=r"\(128, 128\)"):
        tq4_compress(x, q.rotation[:64, :64], q.boundaries)
    with pytest.raises(ValueError, match="expected a tensor on"):
        tq4_compress(x, q.rotation.to("meta"), q.boundaries)
    with pytest.raises(TypeError, match="int64"):
        tq4_compress(
            x.view(2, 1, 128),
            q.rotation,
            q.boundaries,
            slot_mapping=torch.zeros(2, dtype=torch.int32, device=DEVICE),
        )
    with pytest.raises(ValueError, match="out_packed"):
        tq4_compress(
            x.view(2, 1, 128),
            q.rotation,
            q.boundaries,
            slot_mapping=torch.zeros(2, dtype=torch.int64, device=DEVICE),
        )
    with pytest.raises(ValueError, match="out_packed/out_norms"):
        tq4_compress(
            x, q.rotation, q.boundaries, out_packed=torch.empty(2, 32, dtype=torch.uint8, device=DEVICE)
        )


def test_decompress_rejects_bad_input():
    q = _quantizer(128, 4)
    packed, norms = q.quantize_packed(torch.randn(3, 128, device=DEVICE))
    with pytest.raises(ValueError, match="64, 96, 128, 256"):
        tq4_decompress(packed, norms, q.centroids, head_dim=80)
    with pytest.raises(ValueError, match="16 centroids"):
        tq4_decompress(packed, norms, q.centroids[:8], head_dim=128)
    with pytest.raises(ValueError, match="head_dim\\*bits/8"):
        tq4_decompress(packed[:, :40], norms, q.centroids, head_dim=128)
    with pytest.raises(TypeError, match="uint8"):
        tq4_decompress(packed.to(torch.int16), norms, q.centroids, head_dim=128)
    with pytest.raises(ValueError, match="norms: expected shape"):
        tq4_decompress(packed, norms[:2], q.centroids, head_dim=128)
    with pytest.raises(TypeError, match="dtype"):
        tq4_decompress(packed, norms, q.centroids, head_dim=128, dtype=torch.int8)


def test_register_capped_configs_only_for_the_sign_piece():
    """The autotuner sees the ``maxnreg`` configs only for the sign piece (``SIGNS``); the
    three-piece rotation spills under the cap."""
    import triton

    from turboquant.triton.compress import _prune_configs

    configs = [
        triton.Config({"BLOCK_R": 64}, num_warps=4),
        triton.Config({"BLOCK_R": 64}, num_warps=4, maxnreg=128),
    ]
    assert _prune_configs(configs, {}, SIGNS=False) == configs[:1]
    assert _prune_configs(configs, {}, SIGNS=True) == configs
