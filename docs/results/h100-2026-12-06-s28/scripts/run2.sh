#!/usr/bin/env bash
# Session 28 run 2 (H100): GPU tests, split-count A/B, the README decode grid with the wave cap.
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
d=docs/results/h100-2026-12-06-s28/scripts
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
sha1sum turboquant/triton/decode.py tests/test_triton_decode.py | tee "$OUT/tree.txt"
timeout 170 python3 $d/splits_ab.py >"$OUT/splits.jsonl" 2>"$OUT/splits.err"; echo "splits rc=$?"
timeout 220 python3 -m pytest -q -n 8 -p no:cacheprovider tests/test_codebook.py tests/test_packing.py \
  tests/test_quantizer.py tests/test_compressors.py tests/test_storage.py tests/test_triton_compress.py \
  tests/test_triton_attention.py tests/test_triton_decode.py tests/test_paged.py tests/test_paged_batch.py \
  tests/test_cache.py tests/test_hf_attention.py tests/test_decode_graphs.py tests/test_vllm_plugin.py >"$OUT/gpu_tests.txt" 2>&1
echo "tests rc=$?"; tail -4 "$OUT/gpu_tests.txt"
timeout 200 python3 scripts/bench_decode.py --graph --check --batches 8 1 32 --contexts 1024 4096 16384 32768 65536 >"$OUT/decode.jsonl" 2>"$OUT/decode.err"
echo "decode rc=$?"
python3 $d/summarize.py "$OUT/splits.jsonl"
grep -h "wave cap\|tq_paged_k4v4\"\|contiguous_k4v4\"\|flash" "$OUT/decode.jsonl" | cut -c60-200
tail -n 3 "$OUT"/*.err
