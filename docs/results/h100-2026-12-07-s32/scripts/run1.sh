#!/usr/bin/env bash
# Session 32 run 1 (one device call): the compress cell table against the searches, the whole
# GPU test list (PyAV carried as a wheel in .whl/ for the video tests), the README decode grid
# with product_masks on, and the end-to-end B=8 decode. From the repository root:
#   OUT=... bash docs/results/h100-2026-12-07-s32/scripts/run1.sh
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:. || export PYTHONPATH=.
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
sha1sum turboquant/triton/compress.py turboquant/triton/decode.py | tee "$OUT/tree.txt"
timeout 170 python3 scripts/bench_kernels.py --suite compress --bits 4,3 --compress-tokens 64k,256k \
  >"$OUT/compress.jsonl" 2>"$OUT/compress.err"
echo "compress rc=$?"; cut -c1-230 "$OUT/compress.jsonl"; tail -n 3 "$OUT/compress.err"
OUT=$OUT bash scripts/gpu_check.sh tests
timeout 170 python3 scripts/bench_decode.py --graph --check --batches 8 1 32 --contexts 1024 4096 16384 32768 65536 \
  >"$OUT/decode.jsonl" 2>"$OUT/decode.err"
echo "decode rc=$?"; grep -v check "$OUT/decode.jsonl" | grep -E '"B": 8' | cut -c1-200; tail -n 2 "$OUT/decode.err"
timeout 120 python3 scripts/bench_e2e_decode.py --contexts 16384 32768 --batch 8 --new-tokens 32 --reps 3 \
  >"$OUT/e2e.jsonl" 2>"$OUT/e2e.err"
echo "e2e rc=$?"; cut -c1-260 "$OUT/e2e.jsonl"; grep -c "capture of the decode step failed" "$OUT/e2e.err"
