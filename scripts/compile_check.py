"""Compile every decode kernel variant the launchers can pick for sm_90a (H100/H200) with this
machine's Triton, no GPU needed, and the compress and compressed-prefill kernels at the
configurations their static reports cover. The tests run the kernels under the interpreter,
which does not type-check them the way the compiler does (session 16 lost a GPU run to a
``tl.constexpr`` assigned inside a ``static_range`` loop, reached by 3-bit codebooks only).
The split kernels' ``movmatrix`` statements must take a tensor-core layout (their result is
only right there; the interpreter does not run them). Exits non-zero and names each variant
that fails to compile or to meet that. ``scripts/test.sh`` runs it on
machines without a GPU.

    .venv/bin/python scripts/compile_check.py [--jobs 2]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

if os.environ.get("TRITON_INTERPRET") == "1":
    raise SystemExit("compile_check.py compiles for the GPU: unset TRITON_INTERPRET")
# Triton 3.9 warns once per process that this default will change; keep it (fusion on, as the
# GPU's Triton compiles) without the warning in every worker
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))

BITS = ((4, 4), (3, 3), (2, 2), (4, 3), (3, 4), (4, 2))
HEAD_DIMS = (64, 128, 256)
TILES = ((16, 1), (32, 1), (128, 4))  # (block_n, num_warps) of the launch table and LOOKUP_CONFIG


def variants() -> list[tuple]:
    out = [("prep", d) for d in HEAD_DIMS]
    out += [("tables", nk, nv) for nk, nv in ((16, 16), (8, 8), (4, 4), (16, 8), (8, 4))]
    out += [("reduce", d, rows, warps) for d in HEAD_DIMS for rows, warps in ((32, 4), (128, 8))]
    for (kb, vb), d, (bn, w) in itertools.product(BITS, HEAD_DIMS, TILES):
        out.append(("split", kb, vb, d, bn, w, True))
    out += [("split", 4, 4, 128, 32, 1, False), ("split", 3, 3, 128, 32, 1, False)]  # contiguous
    out += [("split", 4, 4, 128, 32, 1, paged, "no_k_byte_planes") for paged in (True, False)]
    out += [("split", 4, 4, 128, 32, 1, paged, "no_v_byte_planes") for paged in (True, False)]
    out += [("split", 4, 4, 128, 32, 1, paged, "no_product_masks") for paged in (True, False)]
    out += [
        ("compress", *cfg, asm, True, table)
        for cfg in ((64, 4, 1), (128, 8, 1))
        for asm in (True, False)
        for table in (True, False)
    ]
    out += [("compress", 64, 4, 1, True, True, True, 3, words3) for words3 in (True, False)]
    out += [
        ("compress", *cfg, True, True, True, 4, False, True) for cfg in ((64, 4, 1), (128, 8, 1))
    ]  # signs
    out += [("prefill", lookup, 64, 128, 4, 2) for lookup in (True, False)]
    return out


def compile_one(v: tuple) -> str | None:
    """None when ``v`` compiles, else the error."""
    import decode_static_report as report

    from turboquant.triton import decode

    try:
        if v[0] == "prep":
            pointers = {"Q": "*bf16", "ROTP": "*bf16", "QOUT": "*fp16"}
            consts = dict(G=4, G_PAD=16, D=v[1], PDL=True, EARLY=True)
            report.compile_sm90(decode._prep_kernel, pointers, consts, [], 8, 1, types={"qk_scale": "fp32"})
        elif v[0] == "tables":
            pointers = {"KC": "*fp32", "VC": "*fp32", "TAB": "*fp16"}
            report.compile_sm90(decode._tables_kernel, pointers, dict(NK=v[1], NV=v[2]), [], 1, 1)
        elif v[0] == "reduce":
            _, d, rows, warps = v
            pointers = {"ACC": "*fp32", "ML": "*fp32", "ROTP": "*bf16", "OUT": "*bf16"}
            consts = dict(G=4, G_PAD=16, D=d, ROWS=max(16, rows * 128 // d), PDL=True)
            report.compile_sm90(decode._reduce_kernel, pointers, consts, [], warps, 1)
        elif v[0] == "compress":
            import compress_static_report

            compress_static_report.compile_compress(*v[1:])
        elif v[0] == "prefill":
            import prefill_static_report

            prefill_static_report.compile_prefill(*v[1:])
        else:
            _, kb, vb, d, bn, w, paged, *flags = v
            kernel = report.compile_split(
                kb,
                bn,
                w,
                paged=paged,
                head_dim=d,
                v_bits=vb,
                k_byte_planes="no_k_byte_planes" not in flags,
                v_byte_planes="no_v_byte_planes" not in flags and "no_k_byte_planes" not in flags,
                product_masks="no_product_masks" not in flags,
            )
            wrong = report.movmatrix_layout_errors(kernel.asm["ttgir"])
            if wrong:
                return "; ".join(wrong)
    except Exception:  # noqa: BLE001 - every failure is reported, with its traceback's last line
        return traceback.format_exc().strip().splitlines()[-1]
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    todo = variants()
    with ProcessPoolExecutor(args.jobs) as pool:
        errors = [(v, e) for v, e in zip(todo, pool.map(compile_one, todo), strict=True) if e]
    for v, e in errors:
        print(f"compile_check: {v} failed: {e}")
    print(f"compile_check: {len(todo) - len(errors)} of {len(todo)} kernel variants compile for sm_90a")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
