"""End-to-end decode speed: fused TurboQuant K4/V4 cache vs bf16 ``DynamicCache`` + SDPA.

A small Llama-style model with random weights (``turboquant.hf.tiny.build_tiny_llama``; a few
layers, head_dim 128, GQA), a prompt of 16K-32K random tokens, then greedy decoding with
``model.generate``. Decode tokens/s = new tokens / (time of prompt + T tokens - time of prompt
+ 1 token), so the prefill cancels. Both paths run in the same process; prints JSON lines with
the ratio.

    python scripts/bench_e2e_decode.py                       # contexts 16K and 32K, B = 1
    python scripts/bench_e2e_decode.py --contexts 32768 --batch 4 --new-tokens 64
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from turboquant.cache import CompressedDynamicCache  # noqa: E402
from turboquant.hf.attention import install_fused_tq4_kv, uninstall_fused_tq4_kv  # noqa: E402
from turboquant.hf.tiny import build_tiny_llama  # noqa: E402

MODEL = dict(
    num_hidden_layers=4,
    hidden_size=1024,
    intermediate_size=2816,
    num_attention_heads=8,
    num_key_value_heads=2,
    head_dim=128,
)


def _generate_seconds(model, input_ids, new_tokens: int, make_cache) -> float:
    """Wall time of ``model.generate`` for ``new_tokens`` greedy tokens (synchronized)."""
    cache = make_cache()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model.generate(
        input_ids,
        attention_mask=torch.ones_like(input_ids),
        past_key_values=cache,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
    )
    torch.cuda.synchronize()
    assert out.shape[1] == input_ids.shape[1] + new_tokens
    return time.perf_counter() - t0


def _decode_seconds(model, input_ids, new_tokens: int, path) -> float:
    """Seconds of ``new_tokens`` decode steps on one path ``(make_cache, install, uninstall)``:
    the time of prompt + ``new_tokens + 1`` tokens minus that of prompt + 1 token."""
    make_cache, install, uninstall = path
    try:
        long = _generate_seconds(model, input_ids, new_tokens + 1, lambda: install(make_cache()))
        short = _generate_seconds(model, input_ids, 1, lambda: install(make_cache()))
    finally:
        uninstall()
    return long - short


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, nargs="+", default=[16384, 32768])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3, help="best of this many timings per path")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench_e2e_decode.py needs a CUDA GPU")
    from transformers import DynamicCache

    gpu = torch.cuda.get_device_name()
    max_len = max(args.contexts) + args.new_tokens + 8
    model, tokenizer = build_tiny_llama(max_position_embeddings=max_len, **MODEL)
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
        base = dict(suite="e2e_decode", gpu=gpu, B=args.batch, N=n, new_tokens=args.new_tokens, **MODEL)
        best = dict.fromkeys(paths, float("inf"))
        for _ in range(args.reps):
            for impl, path in paths.items():
                best[impl] = min(best[impl], _decode_seconds(model, ids, args.new_tokens, path))
        rate = {impl: args.batch * args.new_tokens / s for impl, s in best.items()}
        compression = round(made[0].storage_report()["ratio"], 2)
        for impl, tps in rate.items():
            row = dict(base, impl=impl, tokens_per_s=round(tps, 1))
            if impl != "bf16_dynamic_sdpa":
                row.update(
                    speedup_vs_bf16=round(tps / rate["bf16_dynamic_sdpa"], 3), cache_compression=compression
                )
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
