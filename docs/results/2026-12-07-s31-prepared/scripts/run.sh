#!/usr/bin/env bash
# Prepared in session 31 (no device time left to run it): the whole GPU test list with the byte
# planes on (decode and decode-graph tests passed in session 31; the rest last ran in session
# 28), then product_masks against the default (registers of the compiled kernels, then the A/B;
# the contiguous kernel also at the split count of 8 programs per SM, what 203 registers fit).
# From the repository root: OUT=... bash docs/results/2026-12-07-s31-prepared/scripts/run.sh
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
OUT=$OUT bash scripts/gpu_check.sh tests
timeout 200 python3 scripts/decode_switch_ab.py --set product_masks=True --splits-per-sm 8 \
  >"$OUT/masks_ab.jsonl" 2>"$OUT/masks_ab.err"
echo "ab rc=$?"; tail -n 2 "$OUT/masks_ab.err"; cat "$OUT/masks_ab.jsonl"
