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


def decode_tokens_per_s(model, input_ids, new_tokens: int, make_cache, reps: int = 2) -> float:
    """Decode throughput (tokens/s over the batch): prefill time cancels out."""
    best = float("inf")
    for _ in range(reps):
        long = _generate_seconds(model, input_ids, new_tokens + 1, make_cache)
        short = _generate_seconds(model, input_ids, 1, make_cache)
        best = min(best, long - short)
    return input_ids.shape[0] * new_tokens / best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, nargs="+", default=[16384, 32768])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench_e2e_decode.py needs a CUDA GPU")
    from transformers import DynamicCache

    gpu = torch.cuda.get_device_name()
    max_len = max(args.contexts) + args.new_tokens + 8
    model, tokenizer = build_tiny_llama(max_position_embeddings=max_len, **MODEL)
    model = model.to("cuda", torch.bfloat16)
    gen = torch.Generator().manual_seed(0)
    for n in args.contexts:
        ids = torch.randint(3, len(tokenizer), (args.batch, n), generator=gen).to("cuda")
        base = dict(suite="e2e_decode", gpu=gpu, B=args.batch, N=n, new_tokens=args.new_tokens, **MODEL)
        bf16 = decode_tokens_per_s(model, ids, args.new_tokens, lambda: DynamicCache())

        print(json.dumps(dict(base, impl="bf16_dynamic_sdpa", tokens_per_s=round(bf16, 1))), flush=True)
        # the fused path with its CUDA-graph decode step (the default) and launching every kernel
        for impl, graphs in (("tq4_fused", True), ("tq4_fused[no graphs]", False)):
            caches = []

            def fused_cache(caches=caches, graphs=graphs):
                cache = CompressedDynamicCache(config=model.config, k_bits=4, v_bits=4, cuda_graphs=graphs)
                install_fused_tq4_kv(model, cache)
                caches.append(cache)
                return cache

            try:
                tq = decode_tokens_per_s(model, ids, args.new_tokens, fused_cache)
                ratio = caches[-1].storage_report()["ratio"]
            finally:
                uninstall_fused_tq4_kv(model)
            row = dict(base, impl=impl, tokens_per_s=round(tq, 1), speedup_vs_bf16=round(tq / bf16, 3))
            print(json.dumps(dict(row, cache_compression=round(ratio, 2))), flush=True)


if __name__ == "__main__":
    main()
