"""Session 34 A/B on a GPU: sorted indices in the packed bytes (``turboquant_old``, the tree
before the change, put on ``sys.path`` by ``--old``) against sign-magnitude codes (this tree).

Same inputs for both sides (the old side's bytes are the new side's with every code mapped back
to its index: the same centroid values), interleaved rounds of CUDA-graph replays, bf16
baselines in the same rounds; outputs compared between the two sides. One JSON line per case.

    PYTHONPATH=. python docs/results/h100-2026-12-07-s34/scripts/format_ab.py --old ab_old
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "scripts"))
import bench_decode as bd  # noqa: E402

from turboquant.packing import index_codes, pack_indices, unpack_indices  # noqa: E402
from turboquant.paged import PagedKVLayout, _record_views  # noqa: E402
from turboquant.quantizer import TurboQuantMSE  # noqa: E402


def recode4(packed: torch.Tensor) -> torch.Tensor:
    """4-bit bytes with every nibble through the code map (its own inverse)."""
    return index_codes(packed & 0xF, 4) | (index_codes(packed >> 4, 4) << 4)


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def decode_cases(new, old, shapes, rounds):
    gen = torch.Generator(device="cuda").manual_seed(0)
    qz = TurboQuantMSE(128, 4).to("cuda")
    for shape in shapes:
        b, n = (int(x) for x in shape.split("x"))
        emit(decode_shape(new, old, qz, b, n, gen, rounds))
        torch.cuda.empty_cache()


def decode_shape(new, old, qz, b, n, gen, rounds):
    rot, cb = qz.rotation, qz.centroids
    flash = bd._sdpa(SDPBackend.FLASH_ATTENTION)
    lay = PagedKVLayout(8, 128, 4, 4)
    pool, table = bd._random_pool(b, n, lay, gen)
    pool_old = pool.clone()
    for which in ("k", "v"):
        src, _ = _record_views(pool, lay, which)
        dst, _ = _record_views(pool_old, lay, which)
        dst.copy_(recode4(src))
    q = torch.randn(b, 32, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
    k = torch.randn(b, 8, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
    v = torch.randn_like(k)
    kp, kn = qz.quantize_packed(k.float())
    vp, vn = qz.quantize_packed(v.float())
    kp_old, vp_old = recode4(kp), recode4(vp)
    lens = torch.full((b,), n, dtype=torch.int32, device="cuda")

    old_lay = sys.modules[old.__name__.split(".")[0] + ".paged"].PagedKVLayout(8, 128, 4, 4)

    def paged(m, p):
        lay_ = old_lay if m is old else lay
        return m.tq_paged_decode(q, p, lay_, table, lens, rot, cb, cb, validate=False, max_seq_len=n)

    def contig(m, kp_, vp_):
        return m.tq_decode(q[:, :, None], kp_, kn, vp_, vn, rot, cb, cb)

    fns = {
        "flash": lambda: flash(q[:, :, None], k, v),
        "paged[old]": lambda: paged(old, pool_old),
        "paged[new]": lambda: paged(new, pool),
        "contiguous[old]": lambda: contig(old, kp_old, vp_old),
        "contiguous[new]": lambda: contig(new, kp, vp),
    }
    diff = {
        w: (fns[f"{w}[old]"]().float() - fns[f"{w}[new]"]().float()).abs().max().item()
        for w in ("paged", "contiguous")
    }
    us, spread = bd.interleaved_medians(fns, rounds)
    return dict(
        case="decode", B=b, N=n, us=us, spread=spread, max_diff_old_new=diff,
        x_flash={nm: round(us["flash"] / u, 3) for nm, u in us.items() if nm != "flash"},
        new_over_old={w: round(us[f"{w}[old]"] / us[f"{w}[new]"], 4) for w in ("paged", "contiguous")},
    )  # fmt: skip


def prefill_case(new_fa, old_fa, new_c, n, rounds):
    gen = torch.Generator(device="cuda").manual_seed(1)
    q, k, v = (
        torch.randn(1, h, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen) for h in (32, 8, 8)
    )
    qz = TurboQuantMSE(128, 4).to("cuda")
    kp, kn = new_c.tq4_compress(k, qz.rotation, qz.boundaries, bits=4)
    vp, vn = new_c.tq4_compress(v, qz.rotation, qz.boundaries, bits=4)
    kp_old, vp_old = recode4(kp), recode4(vp)

    def flash(q, k, v):  # causal, as the fused kernel runs (run 2 timed bd._sdpa: not causal)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)

    def run(m, kp_, vp_):
        return m.triton_flash_attention_tq4_kv(
            q, kp_, kn, vp_, vn, qz.centroids, qz.rotation, is_causal=True, v_centroids=qz.centroids
        )

    fns = {
        "flash": lambda: flash(q, k, v),
        "tq4_kv[old]": lambda: run(old_fa, kp_old, vp_old),
        "tq4_kv[new]": lambda: run(new_fa, kp, vp),
    }
    diff = (fns["tq4_kv[old]"]().float() - fns["tq4_kv[new]"]().float()).abs().max().item()
    us, spread = bd.interleaved_medians(fns, rounds, timer=lambda f: bd.cuda_graph_timer(f, reps=5, graphs=5))
    emit(
        dict(
            case="prefill_tq4_kv", N=n, us=us, spread=spread, max_diff_old_new=diff,
            x_flash={nm: round(us["flash"] / u, 3) for nm, u in us.items() if nm != "flash"},
            new_over_old=round(us["tq4_kv[old]"] / us["tq4_kv[new]"], 4),
        )
    )  # fmt: skip


def compress_case(new_c, old_c, tokens, rounds):
    gen = torch.Generator(device="cuda").manual_seed(2)
    x = torch.randn(tokens, 8, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
    for bits in (4, 3):
        qz = TurboQuantMSE(128, bits).to("cuda")
        a = old_c.tq4_compress(x, qz.rotation, qz.boundaries, bits=bits)[0]
        b = new_c.tq4_compress(x, qz.rotation, qz.boundaries, bits=bits)[0]
        # the old bytes are plain index streams; repacked as codes they must be the new bytes
        same = torch.equal(pack_indices(old_unpack(a, bits), bits), b)
        fns = {
            "copy": lambda: x.clone(),
            f"k{bits}[old]": lambda qz=qz, bits=bits: old_c.tq4_compress(
                x, qz.rotation, qz.boundaries, bits=bits
            ),
            f"k{bits}[new]": lambda qz=qz, bits=bits: new_c.tq4_compress(
                x, qz.rotation, qz.boundaries, bits=bits
            ),
        }
        us, spread = bd.interleaved_medians(
            fns, rounds, timer=lambda f: bd.cuda_graph_timer(f, reps=5, graphs=5)
        )
        moved = x.numel() * 2 + b.numel() + tokens * 8 * 4
        emit(
            dict(
                case="compress", bits=bits, tokens=tokens, us=us, spread=spread, same_bytes=same,
                tb_s={nm: round(moved / u / 1e6, 3) for nm, u in us.items() if nm != "copy"},
                new_over_old=round(us[f"k{bits}[old]"] / us[f"k{bits}[new]"], 4),
            )
        )  # fmt: skip


def old_unpack(packed, bits):
    """The old format's indices: the new unpack decodes codes, so undo that by one more map."""
    return index_codes(unpack_indices(packed, bits, 128), bits)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", required=True, help="folder holding the package turboquant_old")
    p.add_argument("--shapes", nargs="+", default=["8x32768", "8x4096", "8x1024", "8x16384", "32x32768"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--skip", nargs="*", default=[])
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(args.old).resolve()))
    import turboquant_old.triton.compress as old_c
    import turboquant_old.triton.decode as old_dm
    import turboquant_old.triton.flash_attention_tq4 as old_fa

    import turboquant.triton.compress as new_c
    import turboquant.triton.decode as new_dm
    import turboquant.triton.flash_attention_tq4 as new_fa

    print(torch.cuda.get_device_name(), flush=True)
    if "decode" not in args.skip:
        decode_cases(new_dm, old_dm, args.shapes, args.rounds)
    if "prefill" not in args.skip:
        prefill_case(new_fa, old_fa, new_c, 8192, args.rounds)
    if "compress" not in args.skip:
        compress_case(new_c, old_c, 256 * 1024, args.rounds)


if __name__ == "__main__":
    main()
