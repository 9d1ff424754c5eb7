"""A/B of compress launch configurations and module switches on a GPU: ``tq4_compress`` of bf16
``[tokens, 8, 128]`` input against its default (autotuned) launch, in interleaved rounds
(medians of CUDA-graph replays: GPU time, no host time), with a torch copy of the same bytes
as the bandwidth yardstick. A variant is
``NAME=VALUE[,NAME=VALUE...]`` over ``compress`` module switches (``BF16_PIECES``,
``PREFETCH_ROWS``, ``BUCKET_TABLE``, ``BUCKET_ASM``, ``PACK3_WORDS``, ``SIGN_ROTATION``), the
launch ``cfg=BLOCK_R/warps/stages[/maxnreg]`` and the quantizer's ``rotation=qr|hadamard``
(``--rotation`` sets the default's). One JSON line per variant and size: ``us``, ``tbps``,
``x_default`` and the fraction of packed bytes that differ from the default's (null when the
rotations differ).

    PYTHONPATH=. python scripts/compress_ab.py --variant cfg=64/8/1/128,PREFETCH_ROWS=0,BF16_PIECES=2
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_decode import cuda_graph_timer, interleaved_medians  # noqa: E402

from turboquant.benchmark import switched  # noqa: E402
from turboquant.quantizer import TurboQuantMSE  # noqa: E402
from turboquant.triton import compress  # noqa: E402

SWITCHES = (
    "BF16_PIECES",
    "PREFETCH_ROWS",
    "BUCKET_TABLE",
    "BUCKET_ASM",
    "PACK3_WORDS",
    "SIGN_ROTATION",
)


def parse_variant(text: str) -> dict:
    """``cfg=64/8/1/128,BF16_PIECES=2`` -> module switches, with ``LAUNCH_CONFIG`` for cfg."""
    out = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name == "cfg":
            parts = [int(v) for v in value.split("/")]
            if len(parts) not in (3, 4):
                raise argparse.ArgumentTypeError(f"cfg: expected BLOCK_R/warps/stages[/maxnreg]: {value!r}")
            launch = dict(BLOCK_R=parts[0], num_warps=parts[1], num_stages=parts[2])
            out["LAUNCH_CONFIG"] = launch | ({"maxnreg": parts[3]} if len(parts) == 4 else {})
        elif name == "rotation":
            if value not in ("qr", "hadamard"):
                raise argparse.ArgumentTypeError(f"rotation: expected qr or hadamard, got {value!r}")
            out["rotation"] = value
        elif name in SWITCHES:
            out[name] = int(value) if name == "BF16_PIECES" else bool(int(value))
        else:
            raise argparse.ArgumentTypeError(f"{name!r}: expected cfg, rotation or one of {SWITCHES}")
    return out


def compress_call(x, q, bits: int, switches: dict):
    """A zero-argument call of ``tq4_compress`` on ``x`` with the module ``switches`` set."""

    def fn():
        with switched(compress, **switches):
            return compress.tq4_compress(x, q.rotation, q.boundaries, bits=bits)

    return fn


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", type=parse_variant, default=[], required=True)
    parser.add_argument("--tokens", type=int, nargs="+", default=[65536, 262144])
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rotation", choices=("qr", "hadamard"), default="qr", help="the default's rotation")
    args = parser.parse_args(argv)
    names = ["default"] + [",".join(f"{k}={v}" for k, v in v.items()) for v in args.variant]
    print(json.dumps({"gpu": torch.cuda.get_device_name(), "variants": names}), flush=True)
    variants = [{"rotation": args.rotation}] + [{"rotation": args.rotation} | v for v in args.variant]
    rotations = {v["rotation"] for v in variants}
    qs = {r: TurboQuantMSE(128, args.bits, rotation=r).to("cuda") for r in rotations}
    for tokens in args.tokens:
        x = torch.randn(tokens, 8, 128, device="cuda", dtype=torch.bfloat16)
        fns = {}
        for n, v in zip(names, variants, strict=True):
            switches = {k: val for k, val in v.items() if k != "rotation"}
            fns[n] = compress_call(x, qs[v["rotation"]], args.bits, switches)
        outs = {n: fn() for n, fn in fns.items()}  # also tunes and builds the tables before capture
        packed, norms = outs["default"]
        moved = x.numel() * 2 + packed.numel() + norms.numel() * 4
        src = torch.empty(moved // 2, dtype=torch.uint8, device="cuda")  # a copy moves 2x its size
        dst = torch.empty_like(src)
        fns["torch_copy"] = lambda: dst.copy_(src)  # noqa: B023 - timed before the next size
        med, spread = interleaved_medians(fns, args.rounds, lambda fn: cuda_graph_timer(fn, reps=10))
        for i, n in enumerate(fns):
            row = {"tokens": tokens, "variant": n, "us": med[n], "tbps": round(moved / med[n] / 1e6, 3)}
            row["spread"] = spread[n]
            if n != "torch_copy":
                row["x_default"] = round(med["default"] / med[n], 3)
                same = variants[i]["rotation"] == variants[0]["rotation"]
                row["bytes_differ"] = (outs[n][0] != packed).float().mean().item() if same else None
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
