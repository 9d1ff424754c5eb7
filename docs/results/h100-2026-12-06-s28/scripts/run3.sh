#!/usr/bin/env bash
# Session 28 run 3: the decode GPU tests with the whole-wave cap, the decode grid where the cap
# acts (with its [no wave cap] A/B rows), end to end at B=1.
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
sha1sum turboquant/triton/decode.py tests/test_triton_decode.py scripts/bench_decode.py | tee "$OUT/tree.txt"
timeout 90 python3 -m pytest -q -n 8 -p no:cacheprovider tests/test_triton_decode.py >"$OUT/gpu_tests.txt" 2>&1
echo "tests rc=$?"; tail -3 "$OUT/gpu_tests.txt"
timeout 120 python3 scripts/bench_decode.py --graph --check --batches 8 16 32 --contexts 4096 32768 65536 >"$OUT/decode.jsonl" 2>"$OUT/decode.err"
echo "decode rc=$?"
grep -h "wave cap\|tq_paged_k4v4\"\|contiguous_k4v4\"\|flash\|check_k4" "$OUT/decode.jsonl" | cut -c40-190
timeout 130 python3 scripts/bench_e2e_decode.py --contexts 16384 32768 --batch 1 --new-tokens 64 >"$OUT/e2e.jsonl" 2>"$OUT/e2e.err"
echo "e2e rc=$?"
cut -c1-300 "$OUT/e2e.jsonl"
tail -n 2 "$OUT"/*.err
