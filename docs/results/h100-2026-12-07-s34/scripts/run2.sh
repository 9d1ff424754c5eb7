#!/usr/bin/env bash
# Session 34 run 2 (final code): the README decode grid, the compress and prefill rows of
# bench_kernels, and the end-to-end decode at B=8.
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 230 python3 scripts/bench_decode.py --graph --check --batches 8 32 1 --contexts 1024 4096 16384 32768 65536 \
  >"$OUT/decode.jsonl" 2>"$OUT/decode.err"
echo "decode rc=$?"; grep -E '"B": (8|32)' "$OUT/decode.jsonl" | grep -v check | cut -c1-260; tail -n 3 "$OUT/decode.err"
timeout 130 python3 scripts/bench_kernels.py --suite compress,prefill --bits 4,3 --compress-tokens 256k --kv-bits k4v4 \
  >"$OUT/kernels.jsonl" 2>"$OUT/kernels.err"
echo "kernels rc=$?"; cut -c1-300 "$OUT/kernels.jsonl"; tail -n 3 "$OUT/kernels.err"
timeout 200 python3 scripts/bench_e2e_decode.py --contexts 16384 32768 --batch 8 --new-tokens 32 --reps 3 \
  >"$OUT/e2e.jsonl" 2>"$OUT/e2e.err"
echo "e2e rc=$?"; cut -c1-300 "$OUT/e2e.jsonl"; tail -n 3 "$OUT/e2e.err"
