#!/usr/bin/env bash
# Session 29 run 1: where an end-to-end decode step goes at B=8 (profile), the e2e bench at B=8
# again, and the launch switches at short contexts (knobs_ab.py).
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
S=docs/results/h100-2026-12-07-s29/scripts
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
nproc; lscpu | grep -i "model name"
git log -1 --format=%H 2>/dev/null | tee "$OUT/tree.txt"
timeout 200 python3 $S/profile_e2e.py 8 16384 >"$OUT/profile_e2e_b8.txt" 2>"$OUT/profile_e2e.err"
echo "profile rc=$?"; grep intervals "$OUT/profile_e2e_b8.txt" | cut -c1-200; grep -v intervals "$OUT/profile_e2e_b8.txt" | head -120
timeout 150 python3 $S/knobs_ab.py >"$OUT/knobs_ab.jsonl" 2>"$OUT/knobs_ab.err"
echo "knobs rc=$?"; cat "$OUT/knobs_ab.jsonl" | python3 -c "
import json,sys
for l in sys.stdin:
    r=json.loads(l); print(r['B'],r['N'],r['config'],'flash',r['us']['flash']); print('   ',{k:(r['us'][k],v) for k,v in r['x_flash'].items()})"
timeout 150 python3 scripts/bench_e2e_decode.py --contexts 16384 32768 --batch 8 --new-tokens 32 --reps 3 >"$OUT/e2e_b8.jsonl" 2>"$OUT/e2e.err"
echo "e2e rc=$?"; cut -c150-420 "$OUT/e2e_b8.jsonl"
tail -n 3 "$OUT"/*.err
