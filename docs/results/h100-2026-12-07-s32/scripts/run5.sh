#!/usr/bin/env bash
# Prepared in session 32 (no device time left to run it): the 3-bit rows stored as int32 words
# (compress.PACK3_WORDS, off until this has run): the compress
# GPU tests, then the A/B against the single-byte stores in GPU time. From the repository root:
#   OUT=... bash docs/results/h100-2026-12-07-s32/scripts/run5.sh
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
timeout 100 python3 -m pytest -q -n 4 -p no:cacheprovider tests/test_triton_compress.py >"$OUT/tests.log" 2>&1
echo "tests rc=$?"; tail -n 3 "$OUT/tests.log"
timeout 100 python3 scripts/compress_ab.py --bits 3 --tokens 65536 262144 --variant PACK3_WORDS=1 \
  >"$OUT/pack3_ab.jsonl" 2>"$OUT/pack3_ab.err"
echo "ab rc=$?"; cat "$OUT/pack3_ab.jsonl"; tail -n 3 "$OUT/pack3_ab.err"
