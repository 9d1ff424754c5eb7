#!/usr/bin/env bash
# Session 31 run 1 (written in session 30): k_byte_planes on a GPU (its tests, then its A/B against the default K path), the
# capture tests of session 29's fix, and the small model end to end at B=8.
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
S=docs/results/h100-2026-12-07-s31/scripts  # written in session 30 under docs/results/2026-12-07-s30-no-gpu/
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 45 python3 -m pytest -v -p no:cacheprovider tests/test_triton_decode.py -k "plane_dots or word_lookup or programmatic" >"$OUT/tests.log" 2>&1
timeout 45 python3 -m pytest -v -p no:cacheprovider tests/test_decode_graphs.py >>"$OUT/tests.log" 2>&1
echo "tests rc=$?"; grep -E "FAILED|ERROR|garbage|dropped|collector" "$OUT/tests.log" | head -20; tail -1 "$OUT/tests.log"
timeout 60 python3 $S/regs.py | tee "$OUT/regs.jsonl"
timeout 120 python3 $S/byte_planes_ab.py >"$OUT/byte_planes_ab.jsonl" 2>"$OUT/byte_planes_ab.err"
echo "ab rc=$?"; python3 -c "
import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l); print(r['B'],r['N'],r['config'],r['us'],r['x_flash'],r['max_diff'])" "$OUT/byte_planes_ab.jsonl"; tail -2 "$OUT/byte_planes_ab.err"
timeout 90 python3 scripts/bench_e2e_decode.py --contexts 16384 32768 --batch 8 --new-tokens 32 --reps 3 >"$OUT/e2e_small_b8.jsonl" 2>"$OUT/e2e_small.err"
echo "e2e small rc=$?"; python3 -c "
import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l); print(r['model'],r['B'],r['N'],r['impl'],r['tokens_per_s'],r['step_ms'],r.get('speedup_vs_bf16'),r.get('speedup_per_rep'))" "$OUT/e2e_small_b8.jsonl"
echo "failed captures: $(grep -c 'capture of the decode step failed' "$OUT/e2e_small.err")"
