#!/usr/bin/env bash
# Session 34 run 1: sorted indices (ab_old/turboquant_old, the tree before) against
# sign-magnitude codes (this tree): decode, prefill and compress A/B with output checks, then
# the kernel test files on the GPU.
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
unset TRITON_INTERPRET
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 300 python3 docs/results/h100-2026-12-07-s34/scripts/format_ab.py --old ab_old --shapes 8x32768 8x4096 8x1024 32x32768 >"$OUT/format_ab.jsonl" 2>"$OUT/format_ab.err"
echo "format_ab rc=$?"; cut -c1-700 "$OUT/format_ab.jsonl"; tail -n 4 "$OUT/format_ab.err"
timeout 200 python3 -m pytest -q -n 8 -p no:cacheprovider tests/test_packing.py tests/test_triton_compress.py \
  tests/test_triton_attention.py tests/test_triton_decode.py tests/test_paged.py tests/test_paged_batch.py \
  tests/test_decode_graphs.py >"$OUT/tests.log" 2>&1
echo "tests rc=$?"; grep -E "^FAILED|passed|failed" "$OUT/tests.log" | tail -n 12
