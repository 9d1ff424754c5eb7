"""Kernel benchmarks (protocol of DESIGN.md): one JSON line per measurement, CUDA-event
medians after warm-up, the GPU name in every record, and each kernel's ratio against the
baseline measured in the same run.

Suites (``--suite``, comma-separated or ``all``):
  compress  tokens x 8 heads x 128, bf16 in -> packed + fp32 norms out (``tq4_compress``);
            effective TB/s = (bytes read + written) / time, vs a torch copy moving as many bytes.
  prefill   B=1, 32 query / 8 KV heads, d=128, causal, N in --prefill-lens: the Triton kernels
            (dense, compressed K, compressed K+V) vs SDPA's FLASH_ATTENTION backend with
            ``enable_gqa=True`` (and cuDNN where it runs); ratio = baseline time / kernel time.
  decode    helper suite of scripts/bench_decode.py (``run_decode_suite``), over --batches and
            --contexts.

Usage: PYTHONPATH=. python scripts/bench_kernels.py --suite compress,prefill
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_decode import cuda_graph_timer, interleaved_medians  # noqa: E402

import turboquant.triton.compress as compress_module  # noqa: E402
import turboquant.triton.flash_attention as flash_attention_module  # noqa: E402
from turboquant.benchmark import switched  # noqa: E402
from turboquant.quantizer import TurboQuantMSE  # noqa: E402
from turboquant.rotation import random_rotation  # noqa: E402
from turboquant.triton import (  # noqa: E402
    tq4_compress,
    triton_flash_attention,
    triton_flash_attention_tq4,
    triton_flash_attention_tq4_kv,
)
from turboquant.triton.compress import _compress_kernel  # noqa: E402
from turboquant.triton.flash_attention import _attn_fwd  # noqa: E402

SUITES = ("compress", "prefill", "decode")
GPU = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"


def emit(record: dict) -> None:
    """Print one JSON line, tagged with the GPU name."""
    print(json.dumps({"gpu": GPU, **record}), flush=True)


def time_fn(fn, *, warmup_ms: float = 50.0, iters: int = 30) -> float:
    """Median wall time of ``fn()`` in microseconds, from CUDA events, after warm-up
    (the first call also runs any autotuning)."""
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    for _ in range(max(1, int(warmup_ms / max(start.elapsed_time(end), 1e-3)))):
        fn()
    times = []
    for _ in range(iters):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3)
    return statistics.median(times)


ROUNDS = 5  # interleaved timing rounds of the compress variants (median of the round medians)


def bench_compress(args) -> None:
    for bits in args.bits:
        for tokens in args.compress_tokens:
            _compress_case(bits, tokens)


def _compress_case(bits: int, tokens: int, heads: int = 8, d: int = 128) -> None:
    q = TurboQuantMSE(d, bits).to("cuda")
    x = torch.randn(tokens, heads, d, device="cuda", dtype=torch.bfloat16)
    packed, norms = tq4_compress(x, q.rotation, q.boundaries, bits=bits)
    moved = x.numel() * 2 + packed.numel() + norms.numel() * 4
    src = torch.empty(moved // 2, dtype=torch.uint8, device="cuda")  # a copy moves 2x its size
    dst = torch.empty_like(src)

    def run(boundaries, bucket_asm: bool = True, prefetch: bool = True, table: bool = True, rotation=None):
        rot = q.rotation if rotation is None else rotation

        def fn():
            with switched(compress_module, BUCKET_ASM=bucket_asm, PREFETCH_ROWS=prefetch, BUCKET_TABLE=table):
                tq4_compress(x, rot, boundaries, bits=bits, out_packed=packed, out_norms=norms)

        return fn

    # the variants, timed in interleaved rounds (machine drift hits all of them alike)
    variants = {"torch_copy": lambda: dst.copy_(src), "tq4_compress": run(q.boundaries)}
    # the searches instead of the cell table (compress.BUCKET_TABLE = False): for 4 bits the
    # sign-folded one, the default before session 32 (2-bit indices never take the table)
    if bits >= 3:
        variants["tq4_compress[search bucketize]"] = run(q.boundaries, table=False)
    if bits == 4:
        # the general search (boundaries not symmetric: one nudged by an ulp)
        general = q.boundaries.clone()
        general[0] = torch.nextafter(general[0], torch.tensor(-1.0, device="cuda"))
        variants["tq4_compress[general bucketize]"] = run(general, table=False)
        # the table lookup in Triton instead of inline PTX (compress.BUCKET_ASM = False)
        variants["tq4_compress[triton bucketize]"] = run(q.boundaries, bucket_asm=False)
        # each row block loaded when its math starts (compress.PREFETCH_ROWS = False)
        variants["tq4_compress[no prefetch]"] = run(q.boundaries, prefetch=False)
    # the randomized Hadamard rotation (random_rotation(kind="hadamard")): one +-1 piece on the
    # tensor cores instead of three (compress.SIGN_ROTATION)
    hadamard = random_rotation(d, kind="hadamard", device="cuda")
    variants["tq4_compress[hadamard rotation]"] = run(q.boundaries, rotation=hadamard)
    # GPU time per call from CUDA-graph replays (no host time, as in a captured prefill); the
    # default's lone eager calls too (each timed alone, so its host time counts)
    for fn in variants.values():
        fn()  # tune and build the tables before any capture
    med, _ = interleaved_medians(variants, ROUNDS, lambda fn: cuda_graph_timer(fn, reps=10))
    eager = time_fn(variants["tq4_compress"], iters=10)
    t, t_copy = med["tq4_compress"], med["torch_copy"]

    def row(kernel: str, **extra) -> dict:
        us = med[kernel]
        shape = {"bits": bits, "tokens": tokens, "heads": heads, "head_dim": d, "bytes": moved}
        speed = {"us": round(us, 2), "tbps": round(moved / us / 1e6, 3), "rounds": ROUNDS}
        return {"suite": "compress", "kernel": kernel, **shape, **speed, **extra}

    emit(
        row(
            "tq4_compress",
            baseline="torch_copy",
            baseline_us=round(t_copy, 2),
            baseline_tbps=round(moved / t_copy / 1e6, 3),
            ratio_vs_baseline=round(t_copy / t, 3),
            us_eager=round(eager, 2),
            timing="cuda graph replays",
            config=str(_compress_kernel.best_config),
        )
    )
    for name in variants:
        if name.startswith("tq4_compress["):
            emit(row(name, ratio_vs_default=round(t / med[name], 3)))


def _sdpa(backend, q, k, v):
    from torch.nn.attention import sdpa_kernel

    with sdpa_kernel(backend):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)


def bench_prefill(args) -> None:
    for n in args.prefill_lens:
        _prefill_case(n, args.kv_bits)


def _prefill_case(n: int, kv_bits, b: int = 1, hq: int = 32, hkv: int = 8, d: int = 128) -> None:
    from torch.nn.attention import SDPBackend

    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (
        torch.randn(b, h, n, d, device="cuda", dtype=torch.bfloat16, generator=gen) for h in (hq, hkv, hkv)
    )
    flops = 4.0 * b * hq * n * n * d / 2  # causal: half of QK^T and PV
    base = {"suite": "prefill", "B": b, "Hq": hq, "Hkv": hkv, "head_dim": d, "N": n, "causal": True}
    t_flash = time_fn(lambda: _sdpa(SDPBackend.FLASH_ATTENTION, q, k, v))
    kernels = {
        "sdpa_flash": None,
        "sdpa_cudnn": lambda: _sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v),
        "triton_flash_attention": lambda: triton_flash_attention(q, k, v, is_causal=True),
    }
    for k_bits, v_bits in kv_bits:
        kernels.update(_prefill_tq(q, k, v, k_bits, v_bits))
    for name, fn in kernels.items():
        try:
            t = t_flash if fn is None else time_fn(fn)
        except Exception as err:  # e.g. cuDNN attention unavailable for this shape/build
            emit({**base, "kernel": name, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"})
            continue
        emit(
            {
                **base,
                "kernel": name,
                "us": round(t, 2),
                "tflops": round(flops / t / 1e6, 1),
                "baseline": "sdpa_flash",
                "baseline_us": round(t_flash, 2),
                "ratio_vs_baseline": round(t_flash / t, 3),
                **({"config": str(_attn_fwd.best_config)} if name.startswith("triton") else {}),
            }
        )


def _prefill_tq(q, k, v, k_bits: int, v_bits: int) -> dict:
    """Compress K and V once; return the fused kernels to time (name -> callable)."""
    d = q.shape[-1]
    qk, qv = TurboQuantMSE(d, k_bits).to("cuda"), TurboQuantMSE(d, v_bits).to("cuda")
    kp, kn = tq4_compress(k, qk.rotation, qk.boundaries, bits=k_bits)
    vp, vn = tq4_compress(v, qv.rotation, qv.boundaries, bits=v_bits)
    kv = (q, kp, kn, vp, vn, qk.centroids, qk.rotation)
    kernels = {
        f"triton_flash_attention_tq4_kv[k{k_bits}v{v_bits}]": lambda: triton_flash_attention_tq4_kv(
            *kv, is_causal=True, v_centroids=qv.centroids
        ),
    }
    if k_bits == v_bits == 4:
        k_only = (q, kp, kn, qk.centroids, qk.rotation, v)
        kernels["triton_flash_attention_tq4[k4]"] = lambda: triton_flash_attention_tq4(
            *k_only, is_causal=True
        )
        # the per-value codebook gather the register lookup replaced (A/B)
        kernels["triton_flash_attention_tq4_kv[k4v4,gather]"] = lambda: triton_flash_attention_tq4_kv(
            *kv, is_causal=True, v_centroids=qv.centroids, register_lookup=False
        )
        kernels["triton_flash_attention_tq4[k4,gather]"] = lambda: triton_flash_attention_tq4(
            *k_only, is_causal=True, register_lookup=False
        )

        def halves():  # the register lookup's values paired up after it (A/B of PAIR_LOOKUP)
            with switched(flash_attention_module, PAIR_LOOKUP=False):
                return triton_flash_attention_tq4_kv(*kv, is_causal=True, v_centroids=qv.centroids)

        kernels["triton_flash_attention_tq4_kv[k4v4,halves]"] = halves

        def heads_first(flip=not flash_attention_module.HEADS_FIRST):  # A/B of the launch order
            with switched(flash_attention_module, HEADS_FIRST=flip):
                return triton_flash_attention_tq4_kv(*kv, is_causal=True, v_centroids=qv.centroids)

        kernels[
            f"triton_flash_attention_tq4_kv[k4v4,heads first={not flash_attention_module.HEADS_FIRST}]"
        ] = heads_first
    return kernels


def _ints(text: str) -> list[int]:
    return [
        int(float(s.lower().replace("k", "")) * (1024 if "k" in s.lower() else 1)) for s in text.split(",")
    ]


def _kv_bits(text: str) -> list[tuple[int, int]]:
    return [
        (int(p[0]), int(p[1])) for p in (s.strip().lower().lstrip("k").split("v") for s in text.split(","))
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suite", default="all", help="compress, prefill, decode (comma-separated) or all")
    parser.add_argument("--bits", type=_ints, default=[4], help="compress bit widths, e.g. 4 or 2,3,4")
    parser.add_argument("--compress-tokens", type=_ints, default=_ints("4k,64k,256k"))
    parser.add_argument("--prefill-lens", type=_ints, default=_ints("2k,8k,16k"))
    parser.add_argument("--kv-bits", type=_kv_bits, default=_kv_bits("k4v4,k3v2"), help="prefill K/V widths")
    parser.add_argument("--batches", type=_ints, default=[8], help="decode batch sizes")
    parser.add_argument("--contexts", type=_ints, default=_ints("1k,4k,16k,32k,64k"), help="decode contexts")
    args = parser.parse_args(argv)
    suites = SUITES if args.suite == "all" else tuple(s.strip() for s in args.suite.split(","))
    unknown = set(suites) - set(SUITES)
    if unknown:
        parser.error(f"--suite: unknown {sorted(unknown)}, expected {SUITES} or all")
    if not torch.cuda.is_available():
        parser.error("the kernel benchmarks need a CUDA GPU")
    emit({"suite": "env", "torch": torch.__version__, "triton": __import__("triton").__version__})
    for suite in suites:
        if suite == "compress":
            bench_compress(args)
        elif suite == "prefill":
            bench_prefill(args)
        else:
            from bench_decode import run_decode_suite  # helper module beside this script

            run_decode_suite(time_fn, emit, args)


if __name__ == "__main__":
    main()
