"""Relative MSE of TurboQuantMSE with the QR (Haar-random) and the randomized Hadamard rotation
on a few kinds of vectors, CPU only: which rotation to pick is a quality question as well as a
speed one (the compress kernel rotates 16-bit input against a Hadamard rotation's signs with one
tensor-core product instead of three).

    PYTHONPATH=. python scripts/rotation_quality.py [--rows 20000] [--bits 3 4]
"""

import argparse
import json

import torch

from turboquant.quantizer import TurboQuantMSE


def samples(rows: int, d: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    outliers = randn(rows, d)
    outliers[:, [3, 17, 90]] *= 10  # a few large channels and a shared offset, as keys often have
    outliers += 2 * randn(d)
    one_hot = torch.zeros(rows, d)
    one_hot[torch.arange(rows), torch.randint(0, d, (rows,), generator=gen)] = 1.0
    return {
        "gaussian": randn(rows, d),
        "outlier channels": outliers,
        "rank 8": randn(rows, 8) @ randn(8, d) + 0.1 * randn(rows, d),
        "one-hot": one_hot + 0.01 * randn(rows, d),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--bits", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--head-dim", type=int, default=128)
    args = parser.parse_args(argv)
    data = samples(args.rows, args.head_dim, torch.Generator().manual_seed(0))
    for bits in args.bits:
        for name, x in data.items():
            row = {"bits": bits, "vectors": name}
            for kind in ("qr", "hadamard"):
                q = TurboQuantMSE(args.head_dim, bits, rotation=kind)
                err = (q.dequantize(*q.quantize(x)) - x).pow(2).sum(-1) / x.pow(2).sum(-1)
                row[kind] = round(err.mean().item(), 5)
            row["hadamard_over_qr"] = round(row["hadamard"] / row["qr"], 3)
            print(json.dumps(row))


if __name__ == "__main__":
    main()
