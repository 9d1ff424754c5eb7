"""Session 20 run 1: K tile as the A operand from registers (k_registers), V planes to the B
operand by movmatrix (v_registers), against the session-19 kernel and bf16 SDPA flash; first
correctness against the reference (ragged lengths, G 1/4/8, pages 16/32), then 5 rounds with
the order of the variants rotated, medians of CUDA-graph replays."""
import json, sys, dataclasses
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import bench_decode as bd
from turboquant.paged import PagedKVLayout
from turboquant.quantizer import TurboQuantMSE
from turboquant.triton.decode import DecodeConfig, default_config, tq_paged_decode, tq_paged_decode_reference
from torch.nn.attention import SDPBackend

VARIANTS = {
    "base": {},
    "k": dict(k_registers=True),
    "v": dict(v_registers=True),
    "kv": dict(k_registers=True, v_registers=True),
    "kv no copies": dict(k_registers=True, v_registers=True, row_copies=False),
}
gen = torch.Generator(device="cuda").manual_seed(0)
# correctness
for g, (kb, vb), page in [(4, (4, 4), 16), (1, (4, 4), 32), (8, (4, 4), 16), (4, (4, 3), 16), (3, (4, 4), 32)]:
    lay = PagedKVLayout(2, 128, kb, vb)
    kq, vq = TurboQuantMSE(128, kb, seed=1).to("cuda"), TurboQuantMSE(128, vb, seed=2).to("cuda")
    lens = torch.tensor([3000, 17, 1500, 0], dtype=torch.int32, device="cuda")
    nb = 200
    from turboquant.paged import allocate_pool, _record_views
    pool = allocate_pool(len(lens) * nb, page, lay, "cuda")
    pool.random_(0, 256, generator=gen)
    for which in ("k", "v"):
        _record_views(pool, lay, which)[1].uniform_(0.5, 1.5, generator=gen)
    table = torch.randperm(len(lens) * nb, device="cuda", generator=gen).view(len(lens), nb).to(torch.int32)
    q = torch.randn(len(lens), 2 * g, 128, device="cuda", generator=gen).to(torch.float16)
    args = (q, pool, lay, table, lens, kq.rotation, kq.centroids, vq.centroids)
    ref = tq_paged_decode_reference(*args)
    errs = {}
    for name, kw in VARIANTS.items():
        cfg = DecodeConfig(planes_min_chunk=0, **kw)
        out = tq_paged_decode(*args, num_splits=3, config=cfg)
        errs[name] = round((out.float() - ref.float()).abs().max().item(), 6)
    print(json.dumps(dict(check=True, G=g, bits=[kb, vb], page=page, max_abs_err=errs)), flush=True)

SHAPES = [(8, 32768), (8, 16384), (32, 32768), (32, 16384), (16, 32768), (4, 32768), (1, 131072)]
qz = TurboQuantMSE(128, 4).to("cuda")
flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
for b, n in SHAPES:
    lay = PagedKVLayout(8, 128, 4, 4)
    pool, table = bd._random_pool(b, n, lay, gen)
    q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
    k = torch.randn(b, 8, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen); v = torch.randn_like(k)
    lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
    d = default_config(b * 8, n, q.device)
    cfgs = {nm: dataclasses.replace(d, **kw) for nm, kw in VARIANTS.items()}
    def run(c):
        return tq_paged_decode(q, pool, lay, table, lens, qz.rotation, qz.centroids, qz.centroids,
                               validate=False, max_seq_len=n, config=c)
    ref = run(d)
    names = ["flash", *cfgs]
    res = {}
    for rnd in range(5):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for name in order:
            if name == "flash":
                res.setdefault(name, []).append(bd.cuda_graph_timer(lambda: flash(q[:, :, None], k, v)))
                continue
            c = cfgs[name]
            if rnd == 0:
                torch.testing.assert_close(run(c), ref, atol=2e-3, rtol=2e-3)
            res.setdefault(name, []).append(bd.cuda_graph_timer(lambda: run(c)))
    us = {nm: round(sorted(t)[2], 2) for nm, t in res.items()}
    print(json.dumps(dict(B=b, N=n, default=f"{d.block_n}/{d.num_warps}/{d.ctas_per_sm}",
                          x_flash={nm: round(us["flash"] / u, 3) for nm, u in us.items() if nm != "flash"},
                          us=us, spread={nm: round(max(t) / min(t), 3) for nm, t in res.items()})), flush=True)
    del pool, k, v
