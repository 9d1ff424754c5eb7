"""Session 19 run 4: the pair lookup's asm impure (decode.PAIR_OPAQUE, default) against pure, on
the kernels that use it (paged 4-warp and coordinate-order tiles, contiguous, prefill), and
4-warp launch configurations; 5 rounds, order rotated each round, medians."""
import json, sys, dataclasses
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import bench_decode as bd
from turboquant.benchmark import switched
from turboquant.paged import PagedKVLayout
from turboquant.quantizer import TurboQuantMSE
from turboquant.triton import decode as dm
from turboquant.triton.decode import DecodeConfig, default_config, tq_paged_decode, tq_decode
from turboquant.triton import tq4_compress, triton_flash_attention_tq4_kv
from torch.nn.attention import SDPBackend, sdpa_kernel

def cfg(s):
    n, w, c = (int(x) for x in s.split("/"))
    return DecodeConfig(block_n=n, num_warps=w, ctas_per_sm=c)

def timed(variants, rounds=5):
    names = list(variants)
    res = {}
    for rnd in range(rounds):
        for name in names[rnd % len(names):] + names[:rnd % len(names)]:
            res.setdefault(name, []).append(variants[name]())
    return {k: round(sorted(t)[len(t) // 2], 2) for k, t in res.items()}

def pure(fn):
    def run():
        with switched(dm, PAIR_OPAQUE=False):
            return fn()
    return run

gen = torch.Generator(device="cuda").manual_seed(0)
qz = TurboQuantMSE(128, 4).to("cuda")
flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
PAGED = [(1, 1024, []), (1, 4096, []), (1, 16384, []), (1, 32768, []), (8, 1024, ["128/4/3", "128/4/4"]),
         (8, 2048, ["128/4/3", "128/4/4"]), (8, 4096, ["128/4/2", "128/4/3", "128/4/4"]), (2, 4096, ["128/4/3"]),
         (16, 1024, ["128/4/2", "128/4/3"]), (16, 2048, ["128/4/2", "128/4/3", "32/1/8"])]
for b, n, extra in PAGED:
    lay = PagedKVLayout(8, 128, 4, 4)
    pool, table = bd._random_pool(b, n, lay, gen)
    q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
    k = torch.randn(b, 8, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen); v = torch.randn_like(k)
    lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
    d = default_config(b * 8, n, q.device)
    def run(c=None):
        return tq_paged_decode(q, pool, lay, table, lens, qz.rotation, qz.centroids, qz.centroids,
                               validate=False, max_seq_len=n, config=c)
    ref = run()
    same = torch.equal(pure(run)(), ref)
    variants = {"flash": lambda: bd.cuda_graph_timer(lambda: flash(q[:, :, None], k, v)),
                "default": lambda: bd.cuda_graph_timer(run),
                "pure asm": lambda: bd.cuda_graph_timer(pure(run))}
    for s in extra:
        torch.testing.assert_close(run(cfg(s)), ref, atol=2e-3, rtol=2e-3)
        variants[s] = lambda c=cfg(s): bd.cuda_graph_timer(lambda: run(c))
        variants[s + "[pure asm]"] = lambda c=cfg(s): bd.cuda_graph_timer(pure(lambda: run(c)))
    us = timed(variants)
    print(json.dumps(dict(kind="paged", B=b, N=n, default=f"{d.block_n}/{d.num_warps}/{d.ctas_per_sm}",
                          pure_bitwise_equal=same, x_flash={nm: round(us["flash"] / u, 3) for nm, u in us.items()},
                          us=us)), flush=True)
    del pool, k, v
for b, n in [(1, 4096), (1, 32768), (8, 4096), (8, 32768)]:
    kp = torch.randint(0, 256, (b, 8, n, 64), dtype=torch.uint8, device="cuda", generator=gen)
    kn = torch.rand(b, 8, n, device="cuda", generator=gen) + 0.5
    vp, vn = torch.randint_like(kp, 0, 256), torch.rand_like(kn) + 0.5
    q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
    run = lambda: tq_decode(q, kp, kn, vp, vn, qz.rotation, qz.centroids, qz.centroids)
    same = torch.equal(pure(run)(), run())
    us = timed({"default": lambda: bd.cuda_graph_timer(run), "pure asm": lambda: bd.cuda_graph_timer(pure(run))})
    print(json.dumps(dict(kind="contiguous", B=b, N=n, pure_bitwise_equal=same, us=us)), flush=True)
for n in (8192, 16384):
    q, k, v = (torch.randn(1, h, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen) for h in (32, 8, 8))
    kp, kn = tq4_compress(k, qz.rotation, qz.boundaries, bits=4)
    vp, vn = tq4_compress(v, qz.rotation, qz.boundaries, bits=4)
    run = lambda: triton_flash_attention_tq4_kv(q, kp, kn, vp, vn, qz.centroids, qz.rotation, is_causal=True)
    def fl():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    same = torch.equal(pure(run)(), run())
    us = timed({"flash": lambda: bd.cuda_graph_timer(fl, reps=5, graphs=3),
                "default": lambda: bd.cuda_graph_timer(run, reps=5, graphs=3),
                "pure asm": lambda: bd.cuda_graph_timer(pure(run), reps=5, graphs=3)})
    print(json.dumps(dict(kind="prefill_tq4_kv", N=n, pure_bitwise_equal=same,
                          x_flash={nm: round(us["flash"] / u, 3) for nm, u in us.items()}, us=us)), flush=True)
