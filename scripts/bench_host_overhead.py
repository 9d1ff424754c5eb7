"""Host-side (Python) cost per decode step of the Hugging Face paths, kernels stubbed out.

The end-to-end benchmark on a small model is bound by host work, not by the GPU. This script
separates our Python from the kernels: it runs greedy ``generate`` on CPU with a tiny 4-layer
model (head_dim 128, 2 KV heads, 256-token prompt) and reports ms per new token for
bf16 ``DynamicCache`` + SDPA, for the fused compressed path with ``tq4_compress``,
``tq_decode`` and the prefill kernel replaced by no-ops (what remains is transformers, the
cache bookkeeping, the attention wrapper and its checks), and for the unfused compressed
cache (torch quantizer, dequantized working buffer). Kernel launch overhead is not in it.

    TRITON_INTERPRET=1 python scripts/bench_host_overhead.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers import DynamicCache  # noqa: E402

import turboquant.cache as cache_module  # noqa: E402
import turboquant.triton.compress as compress  # noqa: E402
import turboquant.triton.decode as decode  # noqa: E402
import turboquant.triton.flash_attention_tq4 as flash_tq4  # noqa: E402
from turboquant.cache import CompressedDynamicCache  # noqa: E402
from turboquant.hf import cache_kwargs  # noqa: E402
from turboquant.hf.attention import install_fused_tq4_kv, uninstall_fused_tq4_kv  # noqa: E402
from turboquant.hf.tiny import build_tiny_llama  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_e2e_decode import MODEL  # noqa: E402


def _stub_kernels() -> None:
    """Replace the fused path's kernels by no-ops that return correctly shaped outputs."""
    cache_module._use_compress_kernel = lambda x, q: True
    compress.tq4_compress = lambda x, rotation, boundaries, **kw: (kw["out_packed"], kw["out_norms"])
    decode.tq_decode = lambda query, *args, **kw: torch.zeros_like(query)
    flash_tq4.triton_flash_attention_tq4_kv = lambda query, *args, **kw: torch.zeros_like(query)


def ms_per_token(model, ids, make_cache, reps: int = 3) -> float:
    """Best of ``reps``: (time of 33 new tokens - time of 1) / 32, so the prefill cancels."""

    def run(n: int) -> float:
        t0 = time.perf_counter()
        model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            **cache_kwargs(make_cache()),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
        )
        return time.perf_counter() - t0

    return min((run(33) - run(1)) / 32 for _ in range(reps)) * 1e3


def main() -> None:
    # the end-to-end benchmark's shape, narrower MLP/embedding: CPU matmuls stay negligible
    model, tokenizer = build_tiny_llama(**dict(MODEL, hidden_size=256, intermediate_size=512))
    model = model.to(torch.bfloat16)
    ids = torch.randint(3, len(tokenizer), (1, 256), generator=torch.Generator().manual_seed(0))
    results = {"bf16_dynamic_sdpa": ms_per_token(model, ids, DynamicCache)}
    results["tq4_unfused"] = ms_per_token(
        model, ids, lambda: CompressedDynamicCache(config=model.config, k_bits=4, v_bits=4)
    )
    _stub_kernels()

    def fused() -> CompressedDynamicCache:
        cache = CompressedDynamicCache(config=model.config, k_bits=4, v_bits=4)
        install_fused_tq4_kv(model, cache)
        return cache

    try:
        results["tq4_fused_kernels_stubbed"] = ms_per_token(model, ids, fused)
    finally:
        uninstall_fused_tq4_kv(model)
    for impl, ms in results.items():
        row = {"suite": "host_overhead", "device": "cpu", "impl": impl, "ms_per_token": round(ms, 3)}
        print(json.dumps(row))


if __name__ == "__main__":
    main()
