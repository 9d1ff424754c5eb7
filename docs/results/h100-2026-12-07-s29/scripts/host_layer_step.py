"""Session 29: host time of one layer's decode-step cache and attention calls, alone.

What the two end-to-end paths do differently per layer and step, without the rest of the model:
bf16 ``DynamicCache.update`` + transformers' ``sdpa_attention_forward``, against
``CompressedDynamicCache.update`` + ``triton_fa_tq4_kv_forward`` (fused, CUDA graphs; also with
the kernels launched without programmatic dependent launch, and without the graphs). ``STEPS``
steps are issued without synchronizing: ``host_us`` = issue time per step; ``wall_us`` = time per
step including the GPU finishing them (after one synchronize at the end). Shapes: argv
``B N H_Q H_KV`` (default 8 16384 8 2, the bench_e2e_decode model's attention). JSON lines, 5
interleaved rounds, medians."""

import json
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import DynamicCache
from transformers.integrations.sdpa_attention import sdpa_attention_forward

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT))

from turboquant.cache import CompressedDynamicCache  # noqa: E402
from turboquant.hf.attention import _CACHE_ATTR, triton_fa_tq4_kv_forward  # noqa: E402
from turboquant.triton import decode  # noqa: E402

B, N, H_Q, H_KV = (int(x) for x in (sys.argv[1:5] if len(sys.argv) >= 5 else (8, 16384, 8, 2)))
DEV = "cuda" if torch.cuda.is_available() else "cpu"  # CPU (TRITON_INTERPRET=1): a smoke test
SYNC = torch.cuda.synchronize if DEV == "cuda" else (lambda: None)
D, STEPS, ROUNDS = 128, (200 if DEV == "cuda" else 2), (5 if DEV == "cuda" else 1)


class Attn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer_idx, self.is_causal, self.num_key_value_groups = 0, True, H_Q // H_KV


def main():
    gen = torch.Generator(device=DEV).manual_seed(0)
    prompt_k = torch.randn(B, H_KV, N, D, device=DEV, dtype=torch.bfloat16, generator=gen)
    prompt_v = torch.randn_like(prompt_k)
    q = torch.randn(B, H_Q, 1, D, device=DEV, dtype=torch.bfloat16, generator=gen)
    k = torch.randn(B, H_KV, 1, D, device=DEV, dtype=torch.bfloat16, generator=gen)
    v = torch.randn_like(k)
    mod = Attn()
    scale = D**-0.5

    def bf16():
        cache = DynamicCache()
        cache.update(prompt_k, prompt_v, 0)

        def step():
            kk, vv = cache.update(k, v, 0)
            return sdpa_attention_forward(mod, q, kk, vv, None, scaling=scale)[0]

        return step

    def fused(graphs=True, pdl=True):
        def make():
            decode._has_pdl = has_pdl if pdl else (lambda device: False)
            cache = CompressedDynamicCache(k_bits=4, v_bits=4, fused_mode=True, cuda_graphs=graphs)
            cache.update(prompt_k, prompt_v, 0)
            setattr(mod, _CACHE_ATTR, cache)

            def step():
                kk, vv = cache.update(k, v, 0)
                return triton_fa_tq4_kv_forward(mod, q, kk, vv, None, scaling=scale)[0]

            return step

        return make

    has_pdl = decode._has_pdl
    impls = {
        "bf16": bf16,
        "fused": fused(),
        "fused[no pdl]": fused(pdl=False),
        "fused[no graphs]": fused(graphs=False),
    }
    results = {name: [] for name in impls}
    for _ in range(ROUNDS):
        for name, make in impls.items():
            step = make()
            for _ in range(3):  # warm-up: compiles, captures the graphs
                step()
            SYNC()
            t0 = time.perf_counter()
            for _ in range(STEPS):
                step()
            t1 = time.perf_counter()
            SYNC()
            t2 = time.perf_counter()
            results[name].append(((t1 - t0) / STEPS * 1e6, (t2 - t0) / STEPS * 1e6))
            del step
    decode._has_pdl = has_pdl
    for name, rows in results.items():
        print(
            json.dumps(
                dict(
                    kind="host_layer_step",
                    gpu=torch.cuda.get_device_name() if DEV == "cuda" else "cpu",
                    impl=name,
                    B=B,
                    N=N,
                    H_Q=H_Q,
                    H_KV=H_KV,
                    host_us=round(statistics.median(r[0] for r in rows), 1),
                    wall_us=round(statistics.median(r[1] for r in rows), 1),
                    host_us_rounds=[round(r[0], 1) for r in rows],
                )
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
