#!/usr/bin/env bash
# Prepared in session 31 (no device time left to run it): the whole GPU test list with the byte
# planes on (decode and decode-graph tests passed in session 31; the rest last ran in session
# 28), then product_masks: the compiled kernels' registers and its A/B against the default.
# From the repository root: OUT=... bash docs/results/2026-12-07-s31-prepared/scripts/run.sh
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
S=docs/results/2026-12-07-s31-prepared/scripts
OUT=$OUT bash scripts/gpu_check.sh tests
timeout 60 python3 $S/regs.py | tee "$OUT/regs.jsonl"
timeout 150 python3 $S/masks_ab.py >"$OUT/masks_ab.jsonl" 2>"$OUT/masks_ab.err"
echo "ab rc=$?"; tail -n 2 "$OUT/masks_ab.err"; python3 -c "
import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l); print(r['B'],r['N'],r['config'],r['us'],r['x_flash'],r['max_diff'])" "$OUT/masks_ab.jsonl"
