"""CPU simulation (no GPU): what an int8 tensor-core path for the decode scores would cost in
accuracy. The 4-bit K centroids rounded to b-bit fixed-point codes (one scale per codebook)
and the rotated query rounded to int8 (one scale per head), against the reference (fp64
dequantize + softmax attention) and against what the current kernel's numerics cost (fp16
centroid table, query in fp16) and what 4-bit quantization itself costs (reference against
unquantized K). V is exact throughout. Prints the largest output error relative to the
largest output, for flat (logit std ~1) and peaked (std ~4, ~8) attention.

    .venv/bin/python docs/results/h200-2026-12-04-s25/scripts/int8_scores_sim.py
"""

import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
from turboquant.quantizer import TurboQuantMSE  # noqa: E402

D, N, G = 128, 4096, 4


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.softmax((q @ k.T) / math.sqrt(D), -1) @ v


def rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest error of ``out`` relative to the largest entry of ``ref``."""
    return float((out - ref).abs().max() / ref.abs().max())


def main() -> None:
    torch.manual_seed(0)
    qz = TurboQuantMSE(D, 4)
    c = qz.centroids.double()
    x = torch.randn(N, D, dtype=torch.float64)
    norm = x.norm(dim=1)
    k_rot = (x / norm[:, None]) @ qz.rotation.double()
    idx = torch.bucketize(k_rot.float(), qz.boundaries)
    v = torch.randn(N, D, dtype=torch.float64)
    cmax = c.abs().max()
    for temp in (1.0, 4.0, 8.0):
        q = temp * torch.randn(G, D, dtype=torch.float64)

        ref = attention(q, c[idx] * norm[:, None], v)
        true = attention(q, k_rot * norm[:, None], v)
        fp16 = attention(q.half().double(), c.half().double()[idx] * norm[:, None], v)
        sq = q.abs().amax(1, keepdim=True) / 127
        q8 = torch.round(q / sq) * sq
        row = [
            f"logit scale {temp:g}: 4-bit quantization {rel(true, ref):.1e}",
            f"fp16 table {rel(fp16, ref):.1e}",
        ]
        for bits in (8, 10):
            s = cmax / (2 ** (bits - 1) - 1)
            k_codes = (torch.round(c / s) * s)[idx] * norm[:, None]
            both, codes = attention(q8, k_codes, v), attention(q, k_codes, v)
            row.append(f"{bits}-bit codes + int8 q {rel(both, ref):.1e} (codes alone {rel(codes, ref):.1e})")
        print("; ".join(row))


if __name__ == "__main__":
    main()
