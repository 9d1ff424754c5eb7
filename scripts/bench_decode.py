"""Decode-attention benchmark (docs: ../shared/DESIGN.md, "Benchmark protocol").

One query token per sequence, 32 query / 8 KV heads, head_dim 128, page size 16; for every
batch size B and context N: bf16 SDPA (FLASH_ATTENTION and cuDNN backends, ``enable_gqa``) on
contiguous bf16 K/V, our paged kernel (K4/V4 and K3/V3) and our contiguous kernel (K4/V4),
all in the same run. Prints JSON lines: µs (median of CUDA-event timings after warm-up),
speedup vs bf16 flash, and effective TB/s on the compressed bytes the kernel reads.

    python scripts/bench_decode.py                      # B = 1, 8, 32; N = 1K..64K
    python scripts/bench_decode.py --batches 8 --contexts 4096 32768 --sweep

``run_decode_suite(time_fn, emit, args)`` is the entry point of
``scripts/bench_kernels.py --suite decode``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from turboquant.benchmark import switched  # noqa: E402
from turboquant.paged import PagedKVLayout, _record_views, allocate_pool  # noqa: E402
from turboquant.quantizer import TurboQuantMSE  # noqa: E402
from turboquant.triton import decode as decode_module  # noqa: E402
from turboquant.triton.decode import (  # noqa: E402
    DecodeConfig,
    default_config,
    split_plan,
    tq_decode,
    tq_paged_decode,
    tq_paged_decode_reference,
    wave_programs,
)

H_Q, H_KV, HEAD_DIM, PAGE = 32, 8, 128, 16
DEFAULT_BATCHES = (1, 8, 32)
DEFAULT_CONTEXTS = (1024, 4096, 16384, 32768, 65536)


def cuda_event_timer(fn, warmup: int = 10, reps: int = 50) -> float:
    """Median µs of ``fn()`` over ``reps`` runs, each timed with CUDA events."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000.0)
    return statistics.median(times)


def cuda_graph_timer(fn, reps: int = 20, graphs: int = 5) -> float:
    """Median µs of ``fn()`` replayed from a CUDA graph of ``reps`` calls (no CPU overhead:
    the GPU time a serving engine that captures decode in CUDA graphs sees)."""
    fn()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(reps):
            fn()
    graph.replay()
    times = []
    for _ in range(graphs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000.0 / reps)
    return statistics.median(times)


def interleaved_medians(fns: dict, rounds: int, timer=cuda_graph_timer) -> tuple[dict, dict]:
    """``(median µs, max/min spread)`` per name of ``fns`` (name -> zero-argument callable),
    timed in ``rounds`` rounds with the order rotated every round, so that drifts of the
    machine fall on every variant alike (the A/B scripts under docs/results)."""
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for rnd in range(rounds):
        for name in names[rnd % len(names) :] + names[: rnd % len(names)]:
            times[name].append(timer(fns[name]))
    medians = {name: round(statistics.median(t), 2) for name, t in times.items()}
    return medians, {name: round(max(t) / min(t), 3) for name, t in times.items()}


def _emit_json(row: dict) -> None:
    print(json.dumps(row), flush=True)


def _random_pool(b: int, n: int, layout: PagedKVLayout, gen: torch.Generator):
    """A pool holding B sequences of N tokens in shuffled pages: random index bytes, norms ~1."""
    blocks = -(-n // PAGE)
    pool = allocate_pool(b * blocks, PAGE, layout, "cuda")
    pool.random_(0, 256, generator=gen)
    for which in ("k", "v"):
        _, norms = _record_views(pool, layout, which)
        norms.uniform_(0.5, 1.5, generator=gen)
    table = torch.randperm(b * blocks, device="cuda", generator=gen).view(b, blocks).int()
    return pool, table


def _sdpa(backend):
    from torch.nn.attention import sdpa_kernel

    def run(q, k, v):
        with sdpa_kernel(backend):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True)

    return run


def _sweep_configs():
    """Launch configurations tried by ``--sweep``."""
    grid = [(128, 4, 3, None), (128, 4, 4, None), (64, 4, 4, None), (64, 4, 6, 128), (64, 2, 8, None)]
    grid += [(32, 1, 16, None), (32, 1, 8, None), (32, 1, 16, 168), (32, 1, 24, 128), (32, 2, 8, None)]
    grid += [(32, 2, 12, 128), (16, 1, 16, None), (16, 1, 24, None), (16, 1, 32, 128)]
    grid += [(128, 4, 8, None), (128, 8, 4, None), (64, 2, 16, None), (32, 1, 32, None)]
    grid += [(32, 1, 12, None), (64, 1, 6, None), (64, 1, 8, None), (16, 1, 12, None), (16, 1, 8, None)]
    configs = [DecodeConfig(block_n=bn, num_warps=w, ctas_per_sm=c, maxnreg=r) for bn, w, c, r in grid]
    # without the register-held prefetch: fewer registers, more warps per SM
    no_prefetch = [(16, 1, 16), (16, 1, 24), (16, 1, 32), (32, 1, 16), (32, 1, 24)]
    configs += [
        DecodeConfig(block_n=bn, num_warps=w, ctas_per_sm=c, prefetch=False) for bn, w, c in no_prefetch
    ]
    # the 16-entry 4-bit lookup instead of the symmetric 8-entry one, at the default tiles
    return configs + [
        DecodeConfig(block_n=bn, num_warps=w, ctas_per_sm=c, symmetric_lookup=False)
        for bn, w, c in ((32, 1, 16), (128, 4, 4), (16, 1, 16))
    ]


def profile_kernels(fn, reps: int = 10) -> dict:
    """Mean µs per call of every CUDA kernel ``fn`` launches (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    return {
        e.key[:40]: round(e.device_time_total / reps, 2)
        for e in prof.key_averages()
        if e.device_time_total > 0
    }


def _bench_bf16(time_fn, emit, base, q, n, gen) -> float:
    """bf16 SDPA (flash, then cuDNN) on contiguous K/V; returns the flash µs."""
    from torch.nn.attention import SDPBackend

    b = q.shape[0]
    k = torch.randn(b, H_KV, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=gen)
    v = torch.randn_like(k)
    flash, cudnn = _sdpa(SDPBackend.FLASH_ATTENTION), _sdpa(SDPBackend.CUDNN_ATTENTION)
    t_flash = time_fn(lambda: flash(q, k, v))
    tb_s = 2 * k.numel() * 2 / t_flash / 1e6
    emit(dict(base, impl="sdpa_flash_bf16", us=round(t_flash, 2), tb_s=round(tb_s, 3)))
    try:  # cuDNN may refuse this shape, or CUDA-graph capture
        t = time_fn(lambda: cudnn(q, k, v))
        emit(dict(base, impl="sdpa_cudnn_bf16", us=round(t, 2), speedup_vs_flash=round(t_flash / t, 3)))
    except RuntimeError as err:
        emit(dict(base, impl="sdpa_cudnn_bf16", error=str(err).splitlines()[0][:200]))
    return t_flash


def _wave_capped(cfg: DecodeConfig, b: int, n: int, bits: int, paged: bool) -> bool:
    """Whether ``DecodeConfig.wave_cap`` changes the split count of this call."""
    pairs, dev = b * H_KV, torch.device("cuda")
    wave = wave_programs(cfg, bits, bits, HEAD_DIM, paged)
    return split_plan(pairs, n, cfg, dev, None, wave) != split_plan(pairs, n, cfg, dev)


def _bench_tq(time_fn, emit, base, q, n, bits, quantizer, t_flash, gen, args) -> None:
    """Our paged kernel (and, for 4 bits, the contiguous one) on random compressed K/V."""
    b = q.shape[0]
    q3 = q[:, :, 0]
    lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
    layout = PagedKVLayout(H_KV, HEAD_DIM, bits, bits)
    pool, table = _random_pool(b, n, layout, gen)
    rot, cb = quantizer.rotation, quantizer.centroids
    comp_bytes = b * n * layout.bytes_per_token
    name = f"k{bits}v{bits}"

    def paged(cfg=None):
        return tq_paged_decode(
            q3, pool, layout, table, lens, rot, cb, cb, validate=False, max_seq_len=n, config=cfg
        )

    def result(impl, t, **extra):
        return dict(base, impl=impl, us=round(t, 2), speedup_vs_flash=round(t_flash / t, 3), **extra)

    t = time_fn(paged)
    if getattr(args, "profile", False):
        emit(dict(base, impl=f"profile_{name}", kernels_us=profile_kernels(paged)))
    emit(result(f"tq_paged_{name}", t, tb_s=round(comp_bytes / t / 1e6, 3)))
    cfg = default_config(b * H_KV, n, q.device, (bits, bits))
    if cfg.planes and cfg.num_warps == 1:  # A/B: the tiles in coordinate order (no plane dots)
        coord = dataclasses.replace(cfg, planes=False)
        t = time_fn(lambda: paged(coord))
        emit(result(f"tq_paged_{name}[coord]", t, tb_s=round(comp_bytes / t / 1e6, 3)))
    if cfg.planes and cfg.num_warps == 1 and cfg.k_registers:  # A/B: K planes through shared memory
        t = time_fn(lambda: paged(dataclasses.replace(cfg, k_registers=False)))
        emit(result(f"tq_paged_{name}[no k registers]", t, tb_s=round(comp_bytes / t / 1e6, 3)))
    if cfg.planes and cfg.num_warps == 1 and cfg.row_copies:  # A/B: 8 plane accumulators per row
        t = time_fn(lambda: paged(dataclasses.replace(cfg, row_copies=False)))
        emit(result(f"tq_paged_{name}[no row copies]", t, tb_s=round(comp_bytes / t / 1e6, 3)))
    if bits == 4 and decode_module.PAIR_OPAQUE:  # A/B: the pair lookup's asm pure (kWidth 4 operands)

        def pure():
            with switched(decode_module, PAIR_OPAQUE=False):
                return paged()

        t = time_fn(pure)
        emit(result(f"tq_paged_{name}[pure pair asm]", t, tb_s=round(comp_bytes / t / 1e6, 3)))
    if cfg.pdl:  # A/B: the three kernels launched one after the other (no programmatic launch)
        t = time_fn(lambda: paged(dataclasses.replace(cfg, pdl=False)))
        emit(result(f"tq_paged_{name}[no pdl]", t, tb_s=round(comp_bytes / t / 1e6, 3)))
    if cfg.pdl and (cfg.early_split or cfg.early_reduce):  # A/B: each kernel lets the next in at its end
        t = time_fn(lambda: paged(dataclasses.replace(cfg, early_split=False, early_reduce=False)))
        emit(result(f"tq_paged_{name}[no early launch]", t, tb_s=round(comp_bytes / t / 1e6, 3)))
    if _wave_capped(cfg, b, n, bits, paged=True):  # A/B: the automatic count, partial waves kept
        t = time_fn(lambda: paged(dataclasses.replace(cfg, wave_cap=False)))
        emit(result(f"tq_paged_{name}[no wave cap]", t, tb_s=round(comp_bytes / t / 1e6, 3)))
    if bits == 3 and cfg.symmetric_lookup:  # A/B: the L1-table lookups of the 3-bit indices
        t = time_fn(lambda: paged(dataclasses.replace(cfg, symmetric_lookup=False)))
        emit(result(f"tq_paged_{name}[l1 table]", t, tb_s=round(comp_bytes / t / 1e6, 3)))
    if getattr(args, "sweep", False) and bits in getattr(args, "sweep_bits", (4,)):
        for cfg in _sweep_configs():
            emit(result(f"tq_paged_{name}_sweep", time_fn(lambda c=cfg: paged(c)), config=vars(cfg)))
    if getattr(args, "check", False):  # the last sequence against the plain-torch reference
        out = paged()[-1:].float()
        ref = tq_paged_decode_reference(q3[-1:], pool, layout, table[-1:], lens[-1:], rot, cb, cb).float()
        err = (out - ref).abs().max().item()
        emit(dict(base, impl=f"check_{name}", max_abs_err=err, ref_max=ref.abs().max().item()))
    if bits == 4:  # the contiguous kernel of the Hugging Face cache, same bytes
        kp = torch.randint(0, 256, (b, H_KV, n, layout.k_packed_bytes), dtype=torch.uint8, device="cuda")
        kn = torch.rand(b, H_KV, n, device="cuda") + 0.5
        vp, vn = torch.randint_like(kp, 0, 256), torch.rand_like(kn) + 0.5
        t = time_fn(lambda: tq_decode(q, kp, kn, vp, vn, rot, cb, cb))
        emit(result("tq_contiguous_k4v4", t, tb_s=round(comp_bytes / t / 1e6, 3)))
        if _wave_capped(cfg, b, n, bits, paged=False):
            uncapped = dataclasses.replace(cfg, wave_cap=False)
            t = time_fn(lambda: tq_decode(q, kp, kn, vp, vn, rot, cb, cb, config=uncapped))
            emit(result("tq_contiguous_k4v4[no wave cap]", t, tb_s=round(comp_bytes / t / 1e6, 3)))
        if decode_module.PAIR_OPAQUE:

            def pure_contiguous():
                with switched(decode_module, PAIR_OPAQUE=False):
                    return tq_decode(q, kp, kn, vp, vn, rot, cb, cb)

            t = time_fn(pure_contiguous)
            emit(result("tq_contiguous_k4v4[pure pair asm]", t, tb_s=round(comp_bytes / t / 1e6, 3)))


def run_decode_suite(time_fn, emit, args) -> None:
    """Time every (B, N) of ``args.batches`` × ``args.contexts``; ``emit`` one dict per result.

    ``args.sweep`` (optional): also time the split kernel's launch configurations;
    ``args.check`` (optional): compare the paged kernel with the reference on the last
    sequence of each shape; ``args.profile`` (optional): per-kernel times."""
    gpu = torch.cuda.get_device_name()
    gen = torch.Generator(device="cuda").manual_seed(0)
    quantizers = {bits: TurboQuantMSE(HEAD_DIM, bits).to("cuda") for bits in (3, 4)}
    for b in args.batches:
        for n in args.contexts:
            base = dict(suite="decode", gpu=gpu, B=b, N=n, H_q=H_Q, H_kv=H_KV, D=HEAD_DIM, page=PAGE)
            q = torch.randn(b, H_Q, 1, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=gen)
            t_flash = _bench_bf16(time_fn, emit, base, q, n, gen)
            for bits in (4, 3):
                _bench_tq(time_fn, emit, base, q, n, bits, quantizers[bits], t_flash, gen, args)
            torch.cuda.empty_cache()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=list(DEFAULT_BATCHES))
    parser.add_argument("--contexts", type=int, nargs="+", default=list(DEFAULT_CONTEXTS))
    parser.add_argument("--sweep", action="store_true", help="also time launch configurations")
    parser.add_argument("--sweep-bits", type=int, nargs="+", default=[4], help="K/V widths --sweep covers")
    parser.add_argument("--check", action="store_true", help="check results against the reference")
    parser.add_argument("--graph", action="store_true", help="time CUDA-graph replays (no CPU overhead)")
    parser.add_argument("--profile", action="store_true", help="per-kernel times of the paged call")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench_decode.py needs a CUDA GPU")
    run_decode_suite(cuda_graph_timer if args.graph else cuda_event_timer, _emit_json, args)


if __name__ == "__main__":
    main()
