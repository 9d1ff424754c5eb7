"""Session 29: where a decode step of scripts/bench_e2e_decode.py's model goes, per path.

B and N from argv (default 8 16384). For bf16 DynamicCache + SDPA and the fused TQ4 path (CUDA
graphs): (1) per-step host intervals without synchronizing (a logits processor reads the clock)
and the GPU time between the same points (CUDA events), steady steps only; (2) torch.profiler
over a generate of T tokens minus one of 2 tokens, so the table is per decode step: ops by
self CPU time, calls and device time. JSON lines."""

import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList

ROOT = Path(__file__).resolve().parents[4]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
import bench_e2e_decode as be  # noqa: E402

from turboquant.cache import CompressedDynamicCache  # noqa: E402
from turboquant.hf import cache_kwargs  # noqa: E402
from turboquant.hf.attention import install_fused_tq4_kv, uninstall_fused_tq4_kv  # noqa: E402
from turboquant.hf.tiny import build_tiny_llama  # noqa: E402

B = int(sys.argv[1]) if len(sys.argv) > 1 else 8
N = int(sys.argv[2]) if len(sys.argv) > 2 else 16384
T = 24


class Stamps(LogitsProcessor):
    def __init__(self):
        self.host, self.events = [], []

    def __call__(self, input_ids, scores):
        self.host.append(time.perf_counter())
        e = torch.cuda.Event(enable_timing=True)
        e.record()
        self.events.append(e)
        return scores


def main():
    shape = be.MODELS[sys.argv[3] if len(sys.argv) > 3 else "small"]
    model, tok = build_tiny_llama(max_position_embeddings=N + 64, **shape)
    model = model.to("cuda", torch.bfloat16)
    ids = torch.randint(3, len(tok), (B, N), generator=torch.Generator().manual_seed(0)).to("cuda")

    def fused_cache():
        c = CompressedDynamicCache(config=model.config, k_bits=4, v_bits=4)
        install_fused_tq4_kv(model, c)
        return c

    paths = {
        "bf16": (DynamicCache, lambda: None),
        "fused": (fused_cache, lambda: uninstall_fused_tq4_kv(model)),
    }

    def gen(path, t, procs=()):
        make, undo = paths[path]
        try:
            return model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                **cache_kwargs(make()),
                max_new_tokens=t,
                min_new_tokens=t,
                do_sample=False,
                logits_processor=LogitsProcessorList(list(procs)),
            )
        finally:
            undo()

    for path in paths:  # warm-up (cuDNN plans, kernels, captures)
        gen(path, 4)
        gen(path, 4)
    for rep in range(3):
        for path in paths:
            s = Stamps()
            gen(path, T, [s])
            torch.cuda.synchronize()
            host = [b - a for a, b in zip(s.host[2:], s.host[3:], strict=False)]
            gpu = [a.elapsed_time(b) / 1e3 for a, b in zip(s.events[2:], s.events[3:], strict=False)]
            print(
                json.dumps(
                    dict(
                        kind="intervals",
                        rep=rep,
                        path=path,
                        B=B,
                        N=N,
                        host_ms_median=round(statistics.median(host) * 1e3, 3),
                        gpu_ms_median=round(statistics.median(gpu) * 1e3, 3),
                        host_ms=[round(x * 1e3, 2) for x in host],
                    )
                ),
                flush=True,
            )

    def ops(path, t):
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
            gen(path, t)
            torch.cuda.synchronize()
        out = {}
        for e in p.key_averages():
            out[e.key] = (e.count, e.self_cpu_time_total, getattr(e, "self_device_time_total", 0.0))
        return out

    for path in paths:
        long, short = ops(path, T), ops(path, 2)
        steps = T - 2
        rows = []
        for key, (c, cpu, dev) in long.items():
            c0, cpu0, dev0 = short.get(key, (0, 0.0, 0.0))
            rows.append((key, (c - c0) / steps, (cpu - cpu0) / steps, (dev - dev0) / steps))
        rows.sort(key=lambda r: -r[2])
        print(
            json.dumps(
                dict(
                    kind="profile_per_step",
                    path=path,
                    B=B,
                    N=N,
                    self_cpu_us=round(sum(r[2] for r in rows), 1),
                    device_us=round(sum(r[3] for r in rows), 1),
                )
            ),
            flush=True,
        )
        for key, c, cpu, dev in rows[:40]:
            print(f"  {path:5s} {key[:58]:58s} calls {c:7.2f} cpu {cpu:8.1f} dev {dev:8.1f} us", flush=True)
        top_dev = sorted(rows, key=lambda r: -r[3])[:15]
        for key, c, _cpu, dev in top_dev:
            print(f"  {path:5s} DEV {key[:56]:56s} calls {c:7.2f} dev {dev:8.1f} us", flush=True)


if __name__ == "__main__":
    main()
