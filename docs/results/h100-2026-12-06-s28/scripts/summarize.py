"""Print the main rows of bench_decode / bench_kernels / wave_ab JSON lines compactly."""

import json
import sys

MAIN = {"sdpa_flash_bf16", "sdpa_cudnn_bf16", "tq_paged_k4v4", "tq_contiguous_k4v4", "tq_paged_k3v3"}
for path in sys.argv[1:]:
    print("==", path)
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        print(e)
        continue
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("suite") == "decode":
            if r["impl"] in MAIN or r["impl"].startswith("check"):
                keys = ("us", "speedup_vs_flash", "tb_s", "max_abs_err")
                print(r["B"], r["N"], r["impl"], *(f"{k}={r[k]}" for k in keys if k in r))
        elif "x_flash" in r:
            print(r["B"], r["N"], r["config"], "default", r["default_splits"], r["x_flash"], r.get("waves", ""))
            print("    us", r["us"], "max_diff", max(r["max_diff"].values()))
        else:
            print({k: v for k, v in r.items() if k not in ("gpu", "suite")})
