#!/usr/bin/env bash
# Session 32 run 3: the GPU tests that touch the compress launcher (rewritten: tuned configs
# launched directly), the #3 kernel figures (compress now timed by CUDA-graph replays), and
# the compress A/B at 256K under the same timing. From the repository root:
#   OUT=... bash docs/results/h100-2026-12-07-s32/scripts/run3.sh
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
timeout 240 python3 -m pytest -q -n 4 -p no:cacheprovider tests/test_triton_compress.py tests/test_paged.py \
  tests/test_paged_batch.py tests/test_cache.py tests/test_hf_attention.py tests/test_decode_graphs.py \
  tests/test_vllm_plugin.py >"$OUT/tests.log" 2>&1
echo "tests rc=$?"; tail -n 3 "$OUT/tests.log"
timeout 200 python3 scripts/bench_kernels.py --suite compress,prefill --compress-tokens 64k,256k --kv-bits k4v4 \
  >"$OUT/kernels.jsonl" 2>"$OUT/kernels.err"
echo "kernels rc=$?"; cut -c1-300 "$OUT/kernels.jsonl"; tail -n 3 "$OUT/kernels.err"
timeout 120 python3 scripts/compress_ab.py --tokens 262144 --variant cfg=64/4/1 --variant BF16_PIECES=2 \
  --variant BUCKET_TABLE=0 --variant PREFETCH_ROWS=0 >"$OUT/compress_ab.jsonl" 2>"$OUT/compress_ab.err"
echo "ab rc=$?"; cat "$OUT/compress_ab.jsonl"; tail -n 3 "$OUT/compress_ab.err"
