"""Static resources of the decode split kernel for an H100/H200, on a machine without a GPU.

Compiles ``turboquant.triton.decode._split_kernel`` for sm_90a with this machine's Triton,
assembles it with the ``ptxas`` that Triton ships and prints, per configuration: registers,
spills, shared memory, the layout conversions of the TTGIR, and the SASS of the main loop
(instructions per tile and the most frequent opcodes). It costs no device time, so a kernel
change can be checked here before it is timed on a GPU (scripts/bench_decode.py). The
figures are this machine's Triton's (the GPU image may carry another version).

    .venv/bin/python scripts/decode_static_report.py                 # K4/V4, 16- and 32-token tiles
    .venv/bin/python scripts/decode_static_report.py --bits 3 --block-n 16 --warps 1 2
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

if os.environ.get("TRITON_INTERPRET") == "1":
    raise SystemExit("decode_static_report.py compiles for the GPU: unset TRITON_INTERPRET")

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from turboquant.triton import decode  # noqa: E402

NVIDIA_BIN = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
POINTERS = {
    "Q": "*fp16",
    "K": "*u8",
    "KN": "*fp32",
    "V": "*u8",
    "VN": "*fp32",
    "TAB": "*fp16",
    "BT": "*i32",
    "LENS": "*i32",
    "ACC": "*fp32",
    "ML": "*fp32",
}


H_KV, N, PAGE = 8, 32768, 16  # the decode benchmark's B=8, N=32K case


def launch_strides(bits: int, paged: bool, head_dim: int = 128) -> dict[str, int]:
    """The integer strides the launchers pass for the benchmark's shapes (bytes for packed
    indices, elements for norms): Triton specializes those divisible by 16, and so must we."""
    from turboquant.paged import PagedKVLayout

    lay = PagedKVLayout(H_KV, head_dim, bits, bits)
    if paged:  # head-major pages: (page, token, head) strides, see turboquant.paged
        page = lay.page_bytes(PAGE)
        k = (page, lay.k_packed_bytes, PAGE * lay.k_packed_bytes, page // 4, 1, PAGE)
        v = (page, lay.v_packed_bytes, PAGE * lay.v_packed_bytes, page // 4, 1, PAGE)
    else:  # [B, H, S, D*b/8] uint8 and [B, H, S] fp32, contiguous
        nb = lay.k_packed_bytes
        k = v = (H_KV * N * nb, nb, N * nb, H_KV * N, 1, N)
    names = [f"stride_{t}{a}" for t in ("k", "kn", "v", "vn") for a in ("p", "t", "h")]
    values = [k[0], k[1], k[2], k[3], k[4], k[5], v[0], v[1], v[2], v[3], v[4], v[5]]
    return dict(zip(names, values, strict=True), stride_bt=N // PAGE, chunk=1024)


def compile_sm90(fn, pointers: dict, constants: dict, aligned, warps: int, stages: int, types=None):
    """Compile the Triton function ``fn`` for sm_90a: ``pointers`` name -> pointer type, the
    other non-constant arguments i32 (or as ``types`` says), ``aligned`` the names (besides the
    pointers) known divisible by 16, as Triton's launcher specializes them."""
    signature = {name: pointers.get(name, "i32") for name in fn.arg_names if name not in constants}
    signature.update(types or {})
    signature.update(dict.fromkeys(constants, "constexpr"))
    attrs = {
        (i,): [["tt.divisibility", 16]]
        for i, name in enumerate(fn.arg_names)
        if name in pointers or name in aligned
    }
    return triton.compile(
        ASTSource(fn, signature, constants, attrs),
        target=GPUTarget("cuda", 90, 32),
        options={"num_warps": warps, "num_stages": stages},
    )


def compile_split(
    bits: int,
    block_n: int,
    num_warps: int,
    paged: bool = True,
    prefetch: bool = True,
    group: int = 4,
    head_dim: int = 128,
    symmetric: bool = True,
    pair: bool = True,
    planes: bool = True,
    v_bits: int | None = None,
    pdl: bool = True,
    row_copies: bool = True,
    k_registers: bool = True,
    early_reduce: bool = False,
    k_byte_planes: bool = True,
    v_byte_planes: bool = True,
    product_masks: bool = True,
):
    """The split kernel as ``bench_decode.py`` launches it on an H100/H200 (page 16, K bits
    ``bits``, V bits ``v_bits`` or the same)."""
    fn = decode._split_kernel
    v_bits = bits if v_bits is None else v_bits
    g_pad = max(16, triton.next_power_of_2(group))
    v_planes = planes and decode._plane_dots(v_bits, head_dim, num_warps)
    constants = dict(
        G=group,
        G_PAD=g_pad,
        D=head_dim,
        K_BITS=bits,
        V_BITS=v_bits,
        PAGED=paged,
        PAGE=PAGE,
        HAS_LENS=paged,
        BLOCK_N=block_n,
        PREFETCH=prefetch,
        K_SYM=symmetric and decode._symmetric_lookup(bits, head_dim),
        V_SYM=symmetric and decode._symmetric_lookup(v_bits, head_dim),
        PAIR=decode.pair_mode(pair),
        K_PLANES=planes and decode._plane_dots(bits, head_dim, num_warps),
        V_PLANES=v_planes,
        PDL=pdl,
        REPL=decode._row_copies(group, g_pad, v_planes, row_copies),
        K_FRAGMENTS=k_registers and planes and decode._plane_dots(bits, head_dim, num_warps),
        EARLY=early_reduce,
        K_BYTES=k_byte_planes,
        V_BYTES=v_byte_planes and v_planes and v_bits == 4,
        MASK_PRODUCT=product_masks,
    )
    # pointers into the launchers' buffers are 16-byte aligned, and so are strides % 16 == 0;
    # Triton's launcher passes an integer equal to 1 as a constant
    values = launch_strides(bits, paged, head_dim)
    constants.update({name: 1 for name, v in values.items() if v == 1})
    aligned = [name for name, v in values.items() if v % 16 == 0]
    return compile_sm90(fn, POINTERS, constants, aligned, num_warps, 1)


def movmatrix_layout_errors(ttgir: str) -> list[str]:
    """The ``movmatrix`` asm statements of a TTGIR whose operand is not in a tensor-core
    (``nvidia_mma``) layout: the asm transposes the 8x8 blocks of the registers it is given,
    which is the transpose of the tensor only in that layout (``decode._block_transpose``)."""
    aliases = dict(re.findall(r"^(#\w+) = (#[\w.]+)<", ttgir, flags=re.M))
    errors = []
    for line in ttgir.splitlines():
        if "movmatrix" in line:
            enc = re.search(r"\} %[\w#]+ : tensor<[^,]+, (#\w+)>", line)
            if not enc or aliases.get(enc.group(1)) != "#ttg.nvidia_mma":
                errors.append(f"movmatrix operand in {enc.group(1) if enc else '?'}: {line.strip()[:160]}")
    return errors


def _ptxas() -> Path:
    """Triton's newest bundled ptxas (its PTX version is newer than the older one accepts)."""
    for name in ("ptxas-blackwell", "ptxas"):
        if (NVIDIA_BIN / name).exists():
            return NVIDIA_BIN / name
    raise SystemExit(f"no ptxas under {NVIDIA_BIN}")


def assemble(ptx: str, workdir: Path) -> tuple[str, str]:
    """``(ptxas -v report, SASS)`` of the PTX, assembled for sm_90a."""
    src, cubin = workdir / "k.ptx", workdir / "k.cubin"
    src.write_text(ptx)
    report = subprocess.run(
        [_ptxas(), "-arch=sm_90a", "-v", str(src), "-o", str(cubin)],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    sass = subprocess.run(
        [NVIDIA_BIN / "cuobjdump", "-sass", str(cubin)], capture_output=True, text=True, check=True
    ).stdout
    return report, sass


def loop_histograms(sass: str) -> list[tuple[int, collections.Counter]]:
    """Instructions and SASS histogram of every loop (the body between a backward branch and
    its target), in address order."""
    ins = [
        (int(m.group(1), 16), m.group(2))
        for m in (re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;", line) for line in sass.splitlines())
        if m
    ]
    out = []
    for addr, text in ins:
        target = re.search(r"BRA (0x[0-9a-f]+)", text)
        start = int(target.group(1), 16) if target else addr
        if start < addr:
            body = [t for a, t in ins if start <= a <= addr]
            ops = collections.Counter(re.sub(r"^@!?U?P\w+\s+", "", t).split()[0] for t in body)
            out.append((len(body), ops))
    return out


def largest_loop(loops: list[tuple[int, collections.Counter]]) -> tuple[int, collections.Counter]:
    """The largest of :func:`loop_histograms`' loops (instructions, SASS histogram)."""
    return max(loops, key=lambda loop: loop[0], default=(0, collections.Counter()))


def kernel_stats(kernel, workdir: Path) -> dict:
    """Registers, spill bytes (stores, loads), shared memory and the loop's SASS histogram of
    a compiled Triton kernel, assembled for sm_90a."""
    text, sass = assemble(kernel.asm["ptx"], workdir)
    regs = re.search(r"Used (\d+) registers", text)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    loops = loop_histograms(sass)
    n, ops = largest_loop(loops)
    return {
        "registers": regs.group(1) if regs else "?",
        "spill": (spills.group(1), spills.group(2)) if spills else ("0", "0"),
        "shared": kernel.metadata.shared,
        "loop": n,
        "ops": ops,
        "loops": loops,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[4])
    parser.add_argument("--block-n", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--warps", type=int, nargs="+", default=[1])
    parser.add_argument("--contiguous", action="store_true", help="the Hugging Face cache's kernel")
    parser.add_argument("--no-prefetch", action="store_true", help="DecodeConfig(prefetch=False)")
    parser.add_argument(
        "--no-symmetric", action="store_true", help="DecodeConfig(symmetric_lookup=False): 16-entry table"
    )
    parser.add_argument(
        "--no-pair", action="store_true", help="DecodeConfig(pair_lookup=False): single fp16 halves"
    )
    parser.add_argument(
        "--no-planes", action="store_true", help="DecodeConfig(planes=False): tiles in coordinate order"
    )
    parser.add_argument(
        "--no-row-copies", action="store_true", help="DecodeConfig(row_copies=False): 8 plane accumulators"
    )
    parser.add_argument(
        "--no-k-registers",
        action="store_true",
        help="DecodeConfig(k_registers=False): K planes through shared memory (the B operand of q K^T)",
    )
    parser.add_argument(
        "--no-k-byte-planes",
        action="store_true",
        help="DecodeConfig(k_byte_planes=False): K words looked up two at a time into nibble planes",
    )
    parser.add_argument(
        "--no-v-byte-planes",
        action="store_true",
        help="DecodeConfig(v_byte_planes=False): V words looked up two at a time into nibble planes",
    )
    parser.add_argument(
        "--no-product-masks",
        action="store_true",
        help="DecodeConfig(product_masks=False): the row copies' probabilities masked by selects",
    )
    parser.add_argument("--group", type=int, default=4, help="query heads per KV head")
    parser.add_argument("--top", type=int, default=12, help="opcodes to list")
    args = parser.parse_args(argv)
    print(f"triton {triton.__version__}, {_ptxas().name}, sm_90a")
    with tempfile.TemporaryDirectory() as tmp:
        for bits in args.bits:
            for block_n in args.block_n:
                for warps in args.warps:
                    kernel = compile_split(
                        bits,
                        block_n,
                        warps,
                        paged=not args.contiguous,
                        prefetch=not args.no_prefetch,
                        symmetric=not args.no_symmetric,
                        pair=not args.no_pair,
                        planes=not args.no_planes,
                        group=args.group,
                        row_copies=not args.no_row_copies,
                        k_registers=not args.no_k_registers,
                        k_byte_planes=not args.no_k_byte_planes,
                        v_byte_planes=not args.no_v_byte_planes,
                        product_masks=not args.no_product_masks,
                    )
                    ttgir = kernel.asm["ttgir"]
                    st = kernel_stats(kernel, Path(tmp))
                    n, ops = st["loop"], st["ops"]
                    print(
                        f"{'contiguous' if args.contiguous else 'paged'} K{bits}/V{bits} "
                        f"block_n={block_n} warps={warps}{' no-prefetch' if args.no_prefetch else ''}"
                        f"{' 16-entry' if args.no_symmetric else ''}"
                        f"{' no-pair' if args.no_pair else ''}"
                        f"{' no-planes' if args.no_planes else ''}"
                        f"{' no-row-copies' if args.no_row_copies else ''}"
                        f"{' no-k-registers' if args.no_k_registers else ''}"
                        f"{' no-k-byte-planes' if args.no_k_byte_planes else ''}"
                        f"{' no-v-byte-planes' if args.no_v_byte_planes else ''}"
                        f"{' no-product-masks' if args.no_product_masks else ''}"
                        f" G={args.group}: "
                        f"{st['registers']} registers, "
                        f"spill stores/loads {st['spill'][0]}/{st['spill'][1]} B, "
                        f"shared {st['shared']} B, "
                        f"convert_layout {ttgir.count('ttg.convert_layout')}, "
                        f"local_alloc {ttgir.count('ttg.local_alloc')}; "
                        f"loop: {n} SASS instructions per {block_n}-token tile "
                        f"({n / block_n:.1f} per token)"
                    )
                    print("   ", ", ".join(f"{op} {c}" for op, c in ops.most_common(args.top)))


if __name__ == "__main__":
    main()
