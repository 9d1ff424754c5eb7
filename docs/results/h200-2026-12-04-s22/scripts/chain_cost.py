"""What the prep and reduce kernels cost inside a decode call: the default call against the
same call with the prep kernel, the reduce kernel or both not launched (their buffers then
hold whatever they held, so the outputs of those variants are not used), against bf16 SDPA
flash; K4/V4 paged, 32/8 heads, d=128; 5 rounds, order rotated, medians of CUDA-graph
replays. Also each kernel alone under torch.profiler (no PDL overlap there)."""

import json
import sys
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend

ROOT = Path(__file__).resolve().parents[4]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
import bench_decode as bd  # noqa: E402

import turboquant.triton.decode as dec  # noqa: E402
from turboquant.paged import PagedKVLayout  # noqa: E402
from turboquant.quantizer import TurboQuantMSE  # noqa: E402

SHAPES = [(8, 1024), (8, 4096), (1, 1024), (1, 4096), (32, 1024), (8, 32768)]
ROUNDS = 5
KERNELS = {"prep": dec._prep_kernel, "reduce": dec._reduce_kernel}


class _Skipped:
    """Stands in for a Triton kernel: ``kernel[grid](...)`` launches nothing."""

    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


def main() -> None:
    gen = torch.Generator(device="cuda").manual_seed(0)
    qz = TurboQuantMSE(128, 4).to("cuda")
    flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
    lay = PagedKVLayout(8, 128, 4, 4)
    for b, n in SHAPES:
        pool, table = bd._random_pool(b, n, lay, gen)
        q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        k = torch.randn(b, 8, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        v = torch.randn_like(k)
        lens = torch.full((b,), n, dtype=torch.int32, device="cuda")

        def run(q=q, pool=pool, table=table, lens=lens, n=n):
            return dec.tq_paged_decode(
                q,
                pool,
                lay,
                table,
                lens,
                qz.rotation,
                qz.centroids,
                qz.centroids,
                validate=False,
                max_seq_len=n,
            )

        variants = {
            "full": (),
            "no prep": ("prep",),
            "no reduce": ("reduce",),
            "split only": ("prep", "reduce"),
        }
        names = ["flash", *variants]
        res: dict[str, list[float]] = {}
        for rnd in range(ROUNDS):
            for name in names[rnd % len(names) :] + names[: rnd % len(names)]:
                if name == "flash":
                    fn = lambda q=q, k=k, v=v: flash(q[:, :, None], k, v)  # noqa: E731
                    res.setdefault(name, []).append(bd.cuda_graph_timer(fn))
                    continue
                for kernel in variants[name]:
                    setattr(dec, f"_{kernel}_kernel", _Skipped())
                try:
                    res.setdefault(name, []).append(bd.cuda_graph_timer(run))
                finally:
                    for kernel, fn in KERNELS.items():
                        setattr(dec, f"_{kernel}_kernel", fn)
        us = {name: round(sorted(t)[ROUNDS // 2], 2) for name, t in res.items()}
        spread = {nm: round(max(t) / min(t), 3) for nm, t in res.items()}
        print(json.dumps(dict(B=b, N=n, us=us, spread=spread, profile=bd.profile_kernels(run))), flush=True)


if __name__ == "__main__":
    main()
