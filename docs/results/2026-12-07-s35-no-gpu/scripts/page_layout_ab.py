"""Paged decode over two page layouts, same kernel, same data, same split counts (H100).

token-major (today's pool): a page is ``[block_size, bytes_per_token]``, every token's slot
holding the K indices of all KV heads, their norms, then V's, so one head's 64-byte rows sit
1088 bytes apart. head-major: a page holds, per KV head, the ``P`` tokens' K indices as one
run, then the norms, then V's: a head's tile is one contiguous run, as in the contiguous
cache. The split kernel takes (page, token, head) strides for each of K, K norms, V, V norms,
so the head-major pages need no kernel change, only other strides. Also the contiguous kernel
on the same data. 5 interleaved rounds of CUDA-graph replays, bf16 SDPA flash in the same
rounds. One JSON line per shape.

    PYTHONPATH=. python docs/results/2026-12-07-s35-no-gpu/scripts/page_layout_ab.py
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "scripts"))
import bench_decode as bd  # noqa: E402

from turboquant.paged import PagedKVLayout, _record_views, sequence_slots  # noqa: E402
from turboquant.quantizer import TurboQuantMSE  # noqa: E402
from turboquant.triton import decode as dm  # noqa: E402

H, D, NB = 8, 128, 64  # KV heads, head dim, packed bytes of one 4-bit row
DEV = "cuda"


def logical(pool, lay, table, b, n):
    """The pool's records in sequence order: K/V indices [B, H, N, 64], norms [B, H, N]."""
    out = []
    slots = torch.stack([sequence_slots(table[i], n, bd.PAGE) for i in range(b)])  # [B, N]
    for which in ("k", "v"):
        packed, norms = _record_views(pool, lay, which)
        out += [packed[slots].permute(0, 2, 1, 3).contiguous(), norms[slots].permute(0, 2, 1).contiguous()]
    return out


def head_major(kp, kn, vp, vn, page, gen):
    """The split kernel's base tensors and strides for a head-major pool of ``page``-token pages
    (shuffled) holding the same sequences, and its block table (the tensors keep the pool)."""
    b, h, n, _ = kp.shape
    nblk = n // page
    table = torch.randperm(b * nblk, device=DEV, generator=gen).view(b, nblk).int()
    page_bytes = page * h * 2 * (NB + 4)
    pool = torch.zeros(b * nblk, page_bytes, dtype=torch.uint8, device=DEV)

    def pages(x):  # [B, H, N, ...] -> [B * nblk, H * page * ...] bytes
        x = x.contiguous().view(torch.uint8).reshape(b, h, nblk, -1).permute(0, 2, 1, 3)
        return x.reshape(b * nblk, -1)

    parts = [pages(kp), pages(kn[..., None]), pages(vp), pages(vn[..., None])]
    offs = [0]
    for p in parts[:-1]:
        offs.append(offs[-1] + p.shape[1])
    rows = table.long().flatten()
    for p, o in zip(parts, offs, strict=True):
        pool[rows, o : o + p.shape[1]] = p
    flat = pool.view(-1)
    words = pool.view(torch.float32).view(-1)
    tensors = (flat[offs[0] :], words[offs[1] // 4 :], flat[offs[2] :], words[offs[3] // 4 :])
    rows_, norms_ = (page_bytes, NB, page * NB), (page_bytes // 4, 1, page)  # (page, token, head)
    strides = rows_ + norms_ + rows_ + norms_
    return tensors, strides, table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["8x32768", "8x4096", "8x1024", "32x32768"])
    parser.add_argument("--pages", nargs="+", type=int, default=[16, 32])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    gen = torch.Generator(device=DEV).manual_seed(0)
    qz = TurboQuantMSE(D, 4).to(DEV)
    rot, cb = qz.rotation, qz.centroids
    flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
    lay = PagedKVLayout(H, D, 4, 4)
    for shape in args.shapes:
        b, n = (int(x) for x in shape.split("x"))
        pool, table = bd._random_pool(b, n, lay, gen)
        kp, kn, vp, vn = logical(pool, lay, table, b, n)
        q = torch.randn(b, 32, D, device=DEV, dtype=torch.bfloat16, generator=gen)
        k = torch.randn(b, H, n, D, device=DEV, dtype=torch.bfloat16, generator=gen)
        v = torch.randn_like(k)
        lens = torch.full((b,), n, dtype=torch.int32, device=DEV)
        cfg = dm.default_config(b * H, n, pool.device)
        waves = {p: dm.wave_programs(cfg, 4, 4, D, p) for p in (True, False)}
        splits = {p: dm.split_plan(b * H, n, cfg, pool.device, None, waves[p])[0] for p in (True, False)}
        q3 = dm._check_query(q, D)

        def paged(c=cfg, s=splits[True], q=q, pool=pool, table=table, lens=lens, n=n):
            return dm.tq_paged_decode(
                q, pool, lay, table, lens, rot, cb, cb, validate=False, max_seq_len=n, config=c, num_splits=s
            )

        def contiguous(c=cfg, s=splits[False], q=q, kp=kp, kn=kn, vp=vp, vn=vn):
            return dm.tq_decode(q[:, :, None], kp, kn, vp, vn, rot, cb, cb, config=c, num_splits=s)[:, :, 0]

        def launch(t, st, bt, p, c=cfg, s=splits[True], q3=q3, lens=lens, n=n):
            return dm._launch(
                q3, H, 4, 4, t, st, rot, cb, cb, None, lens=lens, seq_len_all=0, block_table=bt, page=p,
                max_len=n, num_splits=s, config=c,
            )  # fmt: skip

        fns = {"flash": lambda q=q, k=k, v=v: flash(q[:, :, None], k, v), "token-major": paged}
        fns["contiguous"] = contiguous
        for page in args.pages:
            tensors, strides, hm_table = head_major(kp, kn, vp, vn, page, gen)
            fns[f"head-major/{page}"] = lambda t=tensors, st=strides, bt=hm_table, p=page: launch(
                t, st, bt, p
            )
            if page == 16:  # held to the token-major kernel's registers (12 programs per SM)
                capped = dataclasses.replace(cfg, maxnreg=168)
                fns["head-major/16/168regs"] = lambda t=tensors, st=strides, bt=hm_table, c=capped: launch(
                    t, st, bt, 16, c=c
                )
            if splits[False] != splits[True]:  # the contiguous kernel's plan (8 programs per SM), in
                # case the head-major pages compile to its registers rather than the paged kernel's
                s8 = splits[False]
                fns[f"head-major/{page}@{s8}"] = lambda t=tensors, st=strides, bt=hm_table, p=page, s8=s8: (
                    launch(t, st, bt, p, s=s8)
                )
        ref = fns["token-major"]().float()
        diffs = {
            nm: round((fn().float() - ref).abs().max().item(), 7) for nm, fn in fns.items() if nm != "flash"
        }
        us, spread = bd.interleaved_medians(fns, args.rounds)
        mb = b * H * n * 2 * (NB + 4) / 1e6  # compressed MB; MB per µs = TB/s
        row = dict(
            B=b,
            N=n,
            config=f"{cfg.block_n}/{cfg.num_warps}/{cfg.ctas_per_sm}",
            splits=[splits[True], splits[False]],
            us=us,
            x_flash={nm: round(us["flash"] / u, 3) for nm, u in us.items() if nm != "flash"},
            tb_s={nm: round(mb / u, 3) for nm, u in us.items() if nm != "flash"},
            spread=spread,
            max_diff=diffs,
        )
        print(json.dumps(row), flush=True)
        del pool, k, v, kp, vp, fns
    for cache in dm._split_kernel.device_caches.values():  # registers of every compiled variant
        for key, kernel in cache[0].items():
            print(json.dumps(dict(n_regs=kernel.n_regs, shared=kernel.metadata.shared, key=str(key)[:300])))


if __name__ == "__main__":
    main()
