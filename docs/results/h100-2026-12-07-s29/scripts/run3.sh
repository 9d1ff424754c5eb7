#!/usr/bin/env bash
# Session 29 run 3: the capture fix (no cyclic garbage collection while capturing; no
# reference cycles in a fused cache): the decode-graph and attention GPU tests, end to end at B=8
# with the small model (5 repetitions) and with four layers of Llama-3-8B's shape.
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
sha1sum turboquant/decode_graphs.py turboquant/cache.py tests/test_decode_graphs.py scripts/bench_e2e_decode.py | tee "$OUT/tree.txt"
timeout 170 python3 -m pytest -q -n 4 -p no:cacheprovider tests/test_decode_graphs.py tests/test_hf_attention.py >"$OUT/gpu_tests.txt" 2>&1
echo "tests rc=$?"; tail -4 "$OUT/gpu_tests.txt"
show() { python3 -c "
import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l); print(r['model'],r['B'],r['N'],r['impl'],r['tokens_per_s'],r['step_ms'],r.get('speedup_vs_bf16'),r.get('speedup_per_rep'))" "$1"; }
timeout 170 python3 scripts/bench_e2e_decode.py --contexts 16384 32768 --batch 8 --new-tokens 32 --reps 5 >"$OUT/e2e_small_b8.jsonl" 2>"$OUT/e2e_small.err"
echo "e2e small rc=$?"; show "$OUT/e2e_small_b8.jsonl"
timeout 170 python3 scripts/bench_e2e_decode.py --model 8b-layers --contexts 16384 32768 --batch 8 --new-tokens 32 --reps 3 >"$OUT/e2e_8b_b8.jsonl" 2>"$OUT/e2e_8b.err"
echo "e2e 8b rc=$?"; show "$OUT/e2e_8b_b8.jsonl"
echo "capture warnings:"; grep -c "capture of the decode step failed\|not permitted when stream is capturing" "$OUT"/*.err
