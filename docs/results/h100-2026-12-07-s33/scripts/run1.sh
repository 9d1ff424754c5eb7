#!/usr/bin/env bash
# Session 33 run 1: the compress GPU tests (incl. session 32's PACK3_WORDS and the new
# Hadamard sign piece), the 3-bit word stores A/B (session 32's run5), the sign piece A/B
# and its launch configs, then the compress suite of bench_kernels. From the repository root:
#   OUT=... bash docs/results/h100-2026-12-07-s33/scripts/run1.sh
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader
timeout 150 python3 scripts/compress_ab.py --rotation hadamard --tokens 65536 262144 \
  --variant SIGN_ROTATION=0 --variant cfg=64/4/1/128 --variant cfg=64/4/1/168 --variant cfg=128/8/1 \
  --variant cfg=32/4/1 >"$OUT/signs_ab.jsonl" 2>"$OUT/signs_ab.err"
echo "signs rc=$?"; cat "$OUT/signs_ab.jsonl"; tail -n 3 "$OUT/signs_ab.err"
timeout 150 python3 -m pytest -q -n 4 -p no:cacheprovider tests/test_triton_compress.py >"$OUT/tests.log" 2>&1
echo "tests rc=$?"; tail -n 3 "$OUT/tests.log"
timeout 100 python3 scripts/compress_ab.py --bits 3 --tokens 65536 262144 --variant PACK3_WORDS=1 \
  >"$OUT/pack3_ab.jsonl" 2>"$OUT/pack3_ab.err"
echo "pack3 rc=$?"; cat "$OUT/pack3_ab.jsonl"; tail -n 3 "$OUT/pack3_ab.err"
timeout 120 python3 scripts/bench_kernels.py --suite compress --compress-tokens 64k,256k >"$OUT/bench_compress.jsonl" 2>"$OUT/bench_compress.err"
echo "bench rc=$?"; cat "$OUT/bench_compress.jsonl"; tail -n 3 "$OUT/bench_compress.err"
