"""Session 38: the causal prefill's launch order, heads first (``flash_attention.HEADS_FIRST``)
against query blocks first, in interleaved rounds: the dense kernel, ``_tq4_kv`` K4/V4 and
``_tq4`` K4, B=1, 32/8 heads, d=128, with SDPA flash in the same rounds. Prints one JSON line
per (N, kernel): median µs of each order, × SDPA flash, and whether the outputs are the same
bits.

    PYTHONPATH=. python docs/results/h100-2026-12-08-s38/scripts/heads_first_ab.py [--lens 8192 16384]
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend

ROOT = Path(__file__).resolve().parents[4]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
import bench_kernels as bk  # noqa: E402
from bench_decode import interleaved_medians  # noqa: E402

import turboquant.triton.flash_attention as fa  # noqa: E402
from turboquant.quantizer import TurboQuantMSE  # noqa: E402
from turboquant.triton import (  # noqa: E402
    tq4_compress,
    triton_flash_attention,
    triton_flash_attention_tq4,
    triton_flash_attention_tq4_kv,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lens", type=int, nargs="+", default=[8192, 16384])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    for n in args.lens:
        _case(n, gen, args.rounds)


def _case(n: int, gen: torch.Generator, rounds: int) -> None:
    q, k, v = (
        torch.randn(1, h, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen) for h in (32, 8, 8)
    )
    qz = TurboQuantMSE(128, 4).to("cuda")
    kp, kn = tq4_compress(k, qz.rotation, qz.boundaries, bits=4)
    vp, vn = tq4_compress(v, qz.rotation, qz.boundaries, bits=4)
    kernels = {
        "dense": lambda: triton_flash_attention(q, k, v, is_causal=True),
        "k4v4": lambda: triton_flash_attention_tq4_kv(
            q, kp, kn, vp, vn, qz.centroids, qz.rotation, is_causal=True
        ),
        "k4": lambda: triton_flash_attention_tq4(q, kp, kn, qz.centroids, qz.rotation, v, is_causal=True),
    }
    same = {}
    for name, fn in kernels.items():  # both orders' outputs (the autotune runs here, once)
        outs = []
        for hf in (False, True):
            with bk.switched(fa, HEADS_FIRST=hf):
                outs.append(fn())
        same[name] = torch.equal(*outs)

    def order(fn, hf):
        def run():
            with bk.switched(fa, HEADS_FIRST=hf):
                return fn()

        return run

    fns = {"flash": lambda: bk._sdpa(SDPBackend.FLASH_ATTENTION, q, k, v)}
    fns.update({f"{name} {hf}": order(fn, hf) for name, fn in kernels.items() for hf in (False, True)})
    med, spread = interleaved_medians(fns, rounds, timer=bk.time_fn)
    for name in kernels:
        a, b = med[f"{name} False"], med[f"{name} True"]
        rec = {
            "gpu": torch.cuda.get_device_name(),
            "N": n,
            "kernel": name,
            "flash_us": med["flash"],
            "blocks_first_us": a,
            "heads_first_us": b,
            "x_flash": {
                "blocks first": round(med["flash"] / a, 3),
                "heads first": round(med["flash"] / b, 3),
            },
            "heads_first_speedup": round(a / b, 4),
            "spread": {"blocks first": spread[f"{name} False"], "heads first": spread[f"{name} True"]},
            "same_bits": same[name],
        }
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
