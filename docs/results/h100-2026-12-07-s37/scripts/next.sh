#!/usr/bin/env bash
# For the next device session (one call, ~6 minutes), highest priority first:
# 1. balanced decode launches against the split plan (DecodeConfig.balanced; the kernel and
#    the A/B landed in session 37 without a device run);
# 2. the causal prefill's heads-first launch order (flash_attention.HEADS_FIRST; the
#    `[k4v4,heads first=True]` row against `triton_flash_attention_tq4_kv[k4v4]`);
# 3. the GPU tests of both.
#   PYTHONPATH=. bash docs/results/h100-2026-12-07-s37/scripts/next.sh
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
unset TRITON_INTERPRET
nvidia-smi --query-gpu=name --format=csv,noheader
timeout ${AB_LIMIT:-240} python3 docs/results/h100-2026-12-07-s37/scripts/balanced_ab.py \
  --shapes ${AB_SHAPES:-8x32768 8x16384 32x32768 8x65536 8x4096 1x32768} >"$OUT/balanced_ab.jsonl" 2>"$OUT/balanced_ab.err"
echo "balanced_ab rc=$?"
python3 - "$OUT/balanced_ab.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(r["B"], r["N"], r["split_config"], r["plans"])
    print("  us", r["us"])
    print("  diff", r["max_diff"])
PY
tail -n 3 "$OUT/balanced_ab.err"
timeout 80 python3 scripts/bench_kernels.py --suite prefill --prefill-lens 8k --kv-bits k4v4 \
  >"$OUT/prefill.jsonl" 2>"$OUT/prefill.err"
echo "prefill rc=$?"
cut -c1-260 "$OUT/prefill.jsonl"
timeout 70 python3 -m pytest -q -p no:cacheprovider tests/test_triton_decode.py tests/test_triton_attention.py \
  -k "balanced or wave_programs or launch_orders" 2>&1 | tail -n 3
