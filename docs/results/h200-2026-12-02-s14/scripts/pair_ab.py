"""A/B of the fp16-pair lookup (decode split kernel and compressed prefill), 5 interleaved rounds.

    PYTHONPATH=. python docs/results/h200-2026-12-02-s14/scripts/pair_ab.py            # run 2
    PYTHONPATH=. python docs/results/h200-2026-12-02-s14/scripts/pair_ab.py 16x4096,16x32768,8x32768
"""
import dataclasses, json, statistics, sys
from pathlib import Path
import torch
sys.path.insert(0, str(Path.cwd())); sys.path.insert(0, str(Path.cwd() / "scripts"))
import bench_decode as bd
from turboquant.paged import PagedKVLayout
from turboquant.quantizer import TurboQuantMSE
from turboquant.triton.decode import default_config, tq_paged_decode, tq_decode
import turboquant.triton.flash_attention as fa
from turboquant.triton import tq4_compress, triton_flash_attention_tq4_kv

ROUNDS = 5
gen = torch.Generator(device="cuda").manual_seed(0)
qz = TurboQuantMSE(128, 4).to("cuda")
rot, cb = qz.rotation, qz.centroids
out = []
SHAPES = [(1, 4096), (1, 32768), (8, 4096), (8, 16384), (8, 32768), (16, 32768), (32, 4096), (32, 32768)]
if len(sys.argv) > 1:  # e.g. 16x4096,16x32768
    SHAPES = [tuple(int(x) for x in s.split('x')) for s in sys.argv[1].split(',')]
for b, n in SHAPES:
    q = torch.randn(b, 32, 1, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
    q3 = q[:, :, 0]
    lay = PagedKVLayout(8, 128, 4, 4)
    pool, table = bd._random_pool(b, n, lay, gen)
    lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
    k = torch.randn(b, 8, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen); v = torch.randn_like(k)
    from torch.nn.attention import SDPBackend
    flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
    cfg = default_config(b * 8, n, q.device)
    variants = {"pair": cfg, "halves": dataclasses.replace(cfg, pair_lookup=False)}
    outs = [tq_paged_decode(q3, pool, lay, table, lens, rot, cb, cb, validate=False, max_seq_len=n, config=c) for c in variants.values()]
    same = torch.equal(outs[0], outs[1])
    res = {"flash": [], "pair": [], "halves": []}
    for r in range(ROUNDS):
        res["flash"].append(bd.cuda_graph_timer(lambda: flash(q, k, v)))
        for name, c in variants.items():
            res[name].append(bd.cuda_graph_timer(lambda c=c: tq_paged_decode(q3, pool, lay, table, lens, rot, cb, cb, validate=False, max_seq_len=n, config=c)))
    med = {kk: statistics.median(vv) for kk, vv in res.items()}
    row = dict(suite="decode_ab", B=b, N=n, identical_outputs=same, config=vars(cfg), **{f"{kk}_us": round(vv, 2) for kk, vv in med.items()},
               pair_vs_halves=round(med["halves"] / med["pair"], 3), pair_vs_flash=round(med["flash"] / med["pair"], 3),
               halves_vs_flash=round(med["flash"] / med["halves"], 3), rounds={kk: [round(x, 1) for x in vv] for kk, vv in res.items()})
    print(json.dumps(row), flush=True)
    del pool, k, v
    torch.cuda.empty_cache()


if len(sys.argv) > 1:
    sys.exit()
sys.path.insert(0, "scripts")
from bench_kernels import time_fn, _sdpa
for n in (8192, 16384):
    q, k, v = (torch.randn(1, h, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen) for h in (32, 8, 8))
    kp, kn = tq4_compress(k, rot, qz.boundaries, bits=4); vp, vn = tq4_compress(v, rot, qz.boundaries, bits=4)
    def run(pair):
        fa.PAIR_LOOKUP = pair
        try:
            return triton_flash_attention_tq4_kv(q, kp, kn, vp, vn, cb, rot, is_causal=True, v_centroids=cb)
        finally:
            fa.PAIR_LOOKUP = True
    ref = run(False); got = run(True)
    same = torch.equal(ref, got)
    res = {"flash": [], "pair": [], "halves": []}
    for r in range(ROUNDS):
        res["flash"].append(time_fn(lambda: _sdpa(SDPBackend.FLASH_ATTENTION, q, k, v)))
        res["pair"].append(time_fn(lambda: run(True)))
        res["halves"].append(time_fn(lambda: run(False)))
    med = {kk: statistics.median(vv) for kk, vv in res.items()}
    print(json.dumps(dict(suite="prefill_ab", N=n, identical_outputs=same, **{f"{kk}_us": round(vv, 1) for kk, vv in med.items()},
        pair_vs_halves=round(med["halves"] / med["pair"], 3), pair_vs_flash=round(med["flash"] / med["pair"], 3),
        halves_vs_flash=round(med["flash"] / med["halves"], 3), config=str(fa._attn_fwd.best_config))), flush=True)
