"""Registers and shared memory of the compiled split kernel (paged and contiguous, K4/V4, one-warp
32-token tiles at D = 128): the default, and with ``product_masks``: one JSON line each."""

import dataclasses
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[4]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from test_triton_decode import _fit_per_sm  # noqa: E402

import turboquant.triton.decode as dm  # noqa: E402
from turboquant.paged import PagedKVLayout, allocate_pool  # noqa: E402
from turboquant.quantizer import TurboQuantMSE  # noqa: E402

b, h, n, d = 2, 8, 4096, 128
gen = torch.Generator(device="cuda").manual_seed(0)
qz = TurboQuantMSE(d, 4).to("cuda")
q = torch.randn(b, 4 * h, d, device="cuda", dtype=torch.bfloat16, generator=gen)
kp = torch.randint(0, 256, (b, h, n, d // 2), dtype=torch.uint8, device="cuda", generator=gen)
kn = torch.rand(b, h, n, device="cuda", generator=gen) + 0.5
lay = PagedKVLayout(h, d, 4, 4)
pool = allocate_pool(b * n // 16, 16, lay, "cuda")
table = torch.arange(b * n // 16, device="cuda", dtype=torch.int32).view(b, -1)
lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
for product in (False, True):
    cfg = dataclasses.replace(dm.DEFAULT_CONFIG, product_masks=product)
    for paged in (True, False):
        kernel = dm._split_kernel
        for cache in kernel.device_caches.values():
            cache[0].clear()
        if paged:
            dm.tq_paged_decode(q, pool, lay, table, lens, qz.rotation, qz.centroids, qz.centroids, config=cfg)
        else:
            dm.tq_decode(q[:, :, None], kp, kn, kp, kn, qz.rotation, qz.centroids, qz.centroids, config=cfg)
        torch.cuda.synchronize()
        ks = [k for cache in kernel.device_caches.values() for k in cache[0].values()]
        for k in ks:
            row = dict(
                paged=paged,
                product_masks=product,
                n_regs=k.n_regs,
                shared=k.metadata.shared,
                fit=_fit_per_sm(k.n_regs, k.metadata.shared, k.metadata.num_warps),
            )
            print(json.dumps(row), flush=True)
