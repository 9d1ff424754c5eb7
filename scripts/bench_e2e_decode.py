"""End-to-end decode speed: fused TurboQuant K4/V4 cache vs bf16 ``DynamicCache`` + SDPA.

A small Llama-style model with random weights (``turboquant.hf.tiny.build_tiny_llama``; a few
layers, head_dim 128, GQA), a prompt of 16K-32K random tokens, then greedy decoding with
``model.generate``. A logits processor reads the clock (after a device synchronize) when the
first, second and last tokens are chosen, so the prefill is not in the decode time:
``tokens_per_s`` = B x (T - 2) / (time of the last token - time of the second), the steady
decode rate; ``first_step_ms`` is the first decode step alone (for the fused path it includes
capturing the CUDA graphs of every layer, once per cache). Both paths run in the same process,
interleaved, best of ``--reps``; prints JSON lines with the ratio of the best steps
(``speedup_vs_bf16``) and each repetition's own ratio (``speedup_per_rep``). ``first_rep_tokens_per_s`` is
the first repetition alone, where every context length is new to the process: torch 2.11's
SDPA picks cuDNN attention for the bf16 baseline there, which plans a cuDNN graph for each new
length (~10 ms of host time per call, session 13 profile), so the later repetitions (same
lengths again) are bf16's best case and the ratio uses them.

``--model``: ``small`` (the default: hidden 1024, 8 query / 2 KV heads, whose decode step is bound
by host work on both paths) or ``8b-layers`` (four layers of Llama-3-8B's shape: hidden 4096,
32 query / 8 KV heads, MLP 14336; its attention reads as many bytes per layer as the decode
kernel benchmark's, so the cache's GPU work shows).

    python scripts/bench_e2e_decode.py                       # contexts 16K and 32K, B = 1
    python scripts/bench_e2e_decode.py --contexts 32768 --batch 4 --new-tokens 64
    python scripts/bench_e2e_decode.py --model 8b-layers --batch 8 --new-tokens 32
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from turboquant.cache import CompressedDynamicCache  # noqa: E402
from turboquant.hf import cache_kwargs  # noqa: E402
from turboquant.hf.attention import install_fused_tq4_kv, uninstall_fused_tq4_kv  # noqa: E402
from turboquant.hf.tiny import build_tiny_llama  # noqa: E402

MODELS = {
    "small": dict(
        num_hidden_layers=4,
        hidden_size=1024,
        intermediate_size=2816,
        num_attention_heads=8,
        num_key_value_heads=2,
        head_dim=128,
    ),
    "8b-layers": dict(
        num_hidden_layers=4,
        hidden_size=4096,
        intermediate_size=14336,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
    ),
}
MODEL = MODELS["small"]


class _StepClock(LogitsProcessor):
    """Records the synchronized wall clock when tokens 1, 2 and ``last`` are chosen."""

    def __init__(self, last: int) -> None:
        self.last, self.calls, self.stamps = last, 0, {}

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.calls += 1
        if self.calls in (1, 2, self.last):
            torch.cuda.synchronize()
            self.stamps[self.calls] = time.perf_counter()
        return scores


def _decode_timing(model, input_ids, new_tokens: int, path) -> tuple[float, float]:
    """``(steady seconds per step, first decode step seconds)`` of one ``generate`` of
    ``new_tokens`` greedy tokens on one path ``(make_cache, install, uninstall)``."""
    make_cache, install, uninstall = path
    clock = _StepClock(new_tokens)
    try:
        out = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            **cache_kwargs(install(make_cache())),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            logits_processor=LogitsProcessorList([clock]),
        )
    finally:
        uninstall()
    assert out.shape[1] == input_ids.shape[1] + new_tokens and clock.calls == new_tokens
    t = clock.stamps
    return (t[new_tokens] - t[2]) / (new_tokens - 2), t[2] - t[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, nargs="+", default=[16384, 32768])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens per generate (>= 4)")
    parser.add_argument("--reps", type=int, default=3, help="best of this many timings per path")
    parser.add_argument("--model", choices=sorted(MODELS), default="small", help="model shape (see above)")
    args = parser.parse_args(argv)
    if args.new_tokens < 4:
        parser.error("--new-tokens must be at least 4 (the steady rate is timed from token 2)")
    if not torch.cuda.is_available():
        raise SystemExit("bench_e2e_decode.py needs a CUDA GPU")

    gpu = torch.cuda.get_device_name()
    max_len = max(args.contexts) + args.new_tokens + 8
    shape = MODELS[args.model]
    model, tokenizer = build_tiny_llama(max_position_embeddings=max_len, **shape)
    model = model.to("cuda", torch.bfloat16)

    made = [None]  # the last fused cache, for its storage report

    def fused(graphs: bool):
        def make():
            made[0] = CompressedDynamicCache(config=model.config, k_bits=4, v_bits=4, cuda_graphs=graphs)
            return made[0]

        def install(cache):
            install_fused_tq4_kv(model, cache)
            return cache

        return make, install, lambda: uninstall_fused_tq4_kv(model)

    # bf16 DynamicCache + SDPA; the fused path with its CUDA-graph decode step (the default) and
    # launching every kernel each step. Repetitions interleave the paths (machine drift hits all).
    paths = {
        "bf16_dynamic_sdpa": (DynamicCache, lambda cache: cache, lambda: None),
        "tq4_fused": fused(True),
        "tq4_fused[no graphs]": fused(False),
    }
    gen = torch.Generator().manual_seed(0)
    for n in args.contexts:
        ids = torch.randint(3, len(tokenizer), (args.batch, n), generator=gen).to("cuda")
        base = dict(suite="e2e_decode", gpu=gpu, B=args.batch, N=n, new_tokens=args.new_tokens)
        base.update(model=args.model, **shape)
        step = dict.fromkeys(paths, float("inf"))
        first = dict.fromkeys(paths, float("inf"))
        cold = {}  # the first repetition's steady step: new context lengths for every library
        per_rep = {impl: [] for impl in paths}  # steady step of every repetition
        for _ in range(args.reps):
            for impl, path in paths.items():
                s, f = _decode_timing(model, ids, args.new_tokens, path)
                step[impl], first[impl] = min(step[impl], s), min(first[impl], f)
                cold.setdefault(impl, s)
                per_rep[impl].append(s)
        rate = {impl: args.batch / s for impl, s in step.items()}
        compression = round(made[0].storage_report()["ratio"], 2)
        for impl, tps in rate.items():
            row = dict(base, impl=impl, tokens_per_s=round(tps, 1), step_ms=round(step[impl] * 1e3, 3))
            row["first_step_ms"] = round(first[impl] * 1e3, 2)
            row["first_rep_tokens_per_s"] = round(args.batch / cold[impl], 1)
            if impl != "bf16_dynamic_sdpa":
                # each repetition's own ratio too (the two paths ran next to each other): the
                # host-bound steps drift by 10-20% between repetitions
                reps = [b / s for b, s in zip(per_rep["bf16_dynamic_sdpa"], per_rep[impl], strict=True)]
                row.update(
                    speedup_vs_bf16=round(tps / rate["bf16_dynamic_sdpa"], 3),
                    speedup_per_rep=[round(r, 3) for r in reps],
                    cache_compression=compression,
                )
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
