#!/usr/bin/env bash
# Session 34 run 4 (final code, what fits the device time left): the README decode grid at
# B=8, the compress and prefill rows of bench_kernels, the end-to-end decode at B=8.
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
timeout 140 python3 scripts/bench_decode.py --graph --check --batches 8 --contexts 1024 4096 16384 32768 65536 \
  >"$OUT/decode.jsonl" 2>"$OUT/decode.err"
echo "decode rc=$?"; grep -v check "$OUT/decode.jsonl" | cut -c1-260; tail -n 2 "$OUT/decode.err"
timeout 110 python3 scripts/bench_kernels.py --suite compress,prefill --bits 4,3 --compress-tokens 256k --kv-bits k4v4 \
  >"$OUT/kernels.jsonl" 2>"$OUT/kernels.err"
echo "kernels rc=$?"; cut -c1-260 "$OUT/kernels.jsonl"; tail -n 2 "$OUT/kernels.err"
timeout 160 python3 scripts/bench_e2e_decode.py --contexts 16384 32768 --batch 8 --new-tokens 32 --reps 3 \
  >"$OUT/e2e.jsonl" 2>"$OUT/e2e.err"
echo "e2e rc=$?"; cut -c1-300 "$OUT/e2e.jsonl"; tail -n 2 "$OUT/e2e.err"
