#!/usr/bin/env bash
# Session 32 run 2: compress launch configurations / Pi pieces (occupancy: 16 warps per SM)
# against the default, then the GPU tests that failed in run 1 (video tests: molmo-utils now
# carried too; the wave test at N=64K). From the repository root:
#   OUT=... bash docs/results/h100-2026-12-07-s32/scripts/run2.sh
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:. || export PYTHONPATH=.
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
timeout 240 python3 scripts/compress_ab.py --variant cfg=64/4/1 --variant cfg=64/8/1/128,PREFETCH_ROWS=0 \
  --variant cfg=32/8/1 --variant cfg=128/16/1 --variant BF16_PIECES=2 \
  --variant cfg=64/8/1/128,PREFETCH_ROWS=0,BF16_PIECES=2 --variant cfg=64/8/1/128,BF16_PIECES=2 \
  --variant cfg=32/8/1,BF16_PIECES=2 --variant BUCKET_TABLE=0 >"$OUT/compress_ab.jsonl" 2>"$OUT/compress_ab.err"
echo "ab rc=$?"; cat "$OUT/compress_ab.jsonl"; tail -n 3 "$OUT/compress_ab.err"
timeout 200 python3 -m pytest -q -n 4 -p no:cacheprovider tests/test_video.py tests/test_benchmark.py \
  "tests/test_triton_decode.py::test_wave_programs_match_the_compiled_kernel" >"$OUT/tests.log" 2>&1
echo "tests rc=$?"; tail -n 4 "$OUT/tests.log"
