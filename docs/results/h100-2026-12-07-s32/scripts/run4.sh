#!/usr/bin/env bash
# Session 32 run 4: four layers of Llama-3-8B's shape end to end at B=8 (product masks on),
# and the 2- and 3-bit compress (now through the cell table) in GPU time. From the repository
# root:   OUT=... bash docs/results/h100-2026-12-07-s32/scripts/run4.sh
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
timeout 100 python3 scripts/bench_kernels.py --suite compress --bits 2,3 --compress-tokens 256k \
  >"$OUT/compress_bits.jsonl" 2>"$OUT/compress_bits.err"
echo "compress rc=$?"; cut -c1-260 "$OUT/compress_bits.jsonl"; tail -n 2 "$OUT/compress_bits.err"
timeout 200 python3 scripts/bench_e2e_decode.py --model 8b-layers --contexts 16384 32768 --batch 8 --new-tokens 32 \
  >"$OUT/e2e_8b.jsonl" 2>"$OUT/e2e_8b.err"
echo "e2e rc=$?"; cut -c1-120,400-700 "$OUT/e2e_8b.jsonl"; grep -c "capture of the decode step failed" "$OUT/e2e_8b.err"
