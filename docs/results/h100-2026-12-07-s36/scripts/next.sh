#!/usr/bin/env bash
# For the next device session (one 10-minute call, ~8 minutes), highest priority first:
# 1. B=8 N=1K/2K launch choices over head-major pages (#4's last "never slower than bf16" shape);
# 2. the README's big decode grid (B=1, 8, 32) on head-major pages (the table is session 32's);
# 3. compress and prefill (#3's 8K `_tq4_kv` figure, last timed against flash in session 32).
#   PYTHONPATH=. bash docs/results/h100-2026-12-07-s36/scripts/next.sh
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
unset TRITON_INTERPRET
timeout 150 python3 docs/results/h100-2026-12-07-s36/scripts/short_ab.py >"$OUT/short_ab.jsonl" 2>"$OUT/short_ab.err"
echo "short_ab rc=$?"; cut -c1-700 "$OUT/short_ab.jsonl"; tail -n 2 "$OUT/short_ab.err"
bash scripts/gpu_check.sh decode kernels
