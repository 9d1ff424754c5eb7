"""Session 38: launch configurations of the causal prefill over compressed K/V that the
autotune list does not hold, each alone against the tuned one: ``_tq4_kv`` K4/V4, B=1, 32/8
heads, d=128, 8K tokens. Of interest: 8 warps on 64-row tiles (two warpgroups share the
decompression of a key tile and split the MMA's columns, so each thread holds half the
scores and accumulator: fewer registers, more warps per SM) and 16 warps on 128-row tiles.
Per config: registers, spills, shared memory, median µs over interleaved rounds with SDPA
flash, × flash, and the max |diff| against the tuned config's output.

    PYTHONPATH=. python docs/results/h100-2026-12-08-s38/scripts/prefill_configs.py [--n 8192]
"""

import argparse
import json
import sys
from pathlib import Path

import torch
import triton
from torch.nn.attention import SDPBackend

ROOT = Path(__file__).resolve().parents[4]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
import bench_kernels as bk  # noqa: E402
from bench_decode import interleaved_medians  # noqa: E402

from turboquant.quantizer import TurboQuantMSE  # noqa: E402
from turboquant.triton import tq4_compress, triton_flash_attention_tq4_kv  # noqa: E402
from turboquant.triton.flash_attention import _attn_fwd  # noqa: E402

CANDIDATES = [  # BLOCK_M, BLOCK_N, num_warps, num_stages
    (64, 128, 4, 3),
    (64, 128, 4, 1),
    (64, 128, 8, 2),
    (64, 128, 8, 3),
    (64, 64, 8, 2),
    (64, 64, 8, 3),
    (64, 256, 8, 2),
    (128, 128, 8, 3),
    (128, 128, 16, 2),
    (128, 64, 16, 2),
]


def _compiled():
    return [k for cache in _attn_fwd.fn.device_caches.values() for k in cache[0].values()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (
        torch.randn(1, h, args.n, 128, device="cuda", dtype=torch.bfloat16, generator=gen) for h in (32, 8, 8)
    )
    qz = TurboQuantMSE(128, 4).to("cuda")
    kp, kn = tq4_compress(k, qz.rotation, qz.boundaries, bits=4)
    vp, vn = tq4_compress(v, qz.rotation, qz.boundaries, bits=4)

    def run():
        return triton_flash_attention_tq4_kv(q, kp, kn, vp, vn, qz.centroids, qz.rotation, is_causal=True)

    ref = run()  # the autotuned config
    tuned = _attn_fwd.best_config
    tuned_t = bk.time_fn(run)
    configs = dict(_attn_fwd.cache)
    print(json.dumps({"gpu": torch.cuda.get_device_name(), "N": args.n, "tuned": str(tuned)}), flush=True)
    default_list = _attn_fwd.configs
    for bm, bn, w, s in CANDIDATES:
        cfg = triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
        rec = {"config": f"{bm}/{bn}/{w}w/{s}s"}
        try:
            _attn_fwd.configs = [cfg]
            _attn_fwd.cache.clear()
            for cache in _attn_fwd.fn.device_caches.values():
                cache[0].clear()
            out = run()
            (kern,) = _compiled()
            rec.update(regs=kern.n_regs, spills=kern.n_spills, shared=kern.metadata.shared)
            rec["max_diff"] = float((out.float() - ref.float()).abs().max())
            mine = dict(_attn_fwd.cache)

            def timed(cache):
                def fn():
                    _attn_fwd.cache.clear()
                    _attn_fwd.cache.update(cache)
                    return run()

                return fn

            med, spread = interleaved_medians(
                {
                    "flash": lambda: bk._sdpa(SDPBackend.FLASH_ATTENTION, q, k, v),
                    "tuned": timed(configs),
                    "candidate": timed(mine),
                },
                args.rounds,
                timer=bk.time_fn,
            )
            rec.update(us=med, spread=spread, x_flash=round(med["flash"] / med["candidate"], 3))
            rec["vs_tuned"] = round(med["tuned"] / med["candidate"], 3)
        except Exception as err:  # out of resources, compile errors: recorded, the sweep goes on
            rec["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
        finally:
            _attn_fwd.configs = default_list
        print(json.dumps(rec), flush=True)
    print(json.dumps({"tuned_lone_us": round(tuned_t, 2)}), flush=True)


if __name__ == "__main__":
    main()
