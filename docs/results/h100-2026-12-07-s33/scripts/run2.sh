#!/usr/bin/env bash
# Session 33 run 2: PACK3_WORDS on and a 128-register autotune config: the compress tests and
# bench_kernels' compress rows (4 and 3 bits, 256K tokens).
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
unset TRITON_INTERPRET
timeout 90 python3 -m pytest -q -n 4 -p no:cacheprovider tests/test_triton_compress.py >"$OUT/tests.log" 2>&1
echo "tests rc=$?"; tail -n 2 "$OUT/tests.log"
timeout 120 python3 scripts/bench_kernels.py --suite compress --bits 4,3 --compress-tokens 256k >"$OUT/bench_compress.jsonl" 2>"$OUT/bench_compress.err"
echo "bench rc=$?"; cut -c1-330 "$OUT/bench_compress.jsonl"; tail -n 3 "$OUT/bench_compress.err"
