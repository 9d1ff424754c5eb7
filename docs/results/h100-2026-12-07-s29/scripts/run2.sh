#!/usr/bin/env bash
# Session 29 run 2: host cost of one layer's decode-step cache + attention calls (both paths),
# end to end with the small model at B=8 (5 repetitions, per-repetition ratios), and end to
# end with four layers of Llama-3-8B's shape (--model 8b-layers) at B=8 and B=1.
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
S=docs/results/h100-2026-12-07-s29/scripts
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
sha1sum scripts/bench_e2e_decode.py turboquant/decode_graphs.py turboquant/cache.py turboquant/hf/attention.py | tee "$OUT/tree.txt"
timeout 120 python3 $S/host_layer_step.py 8 16384 8 2 >"$OUT/host_layer_step.jsonl" 2>"$OUT/host.err"
timeout 120 python3 $S/host_layer_step.py 8 16384 32 8 >>"$OUT/host_layer_step.jsonl" 2>>"$OUT/host.err"
echo "host rc=$?"; cut -c1-260 "$OUT/host_layer_step.jsonl"
timeout 200 python3 scripts/bench_e2e_decode.py --model 8b-layers --contexts 16384 32768 --batch 8 --new-tokens 32 --reps 3 >"$OUT/e2e_8b_b8.jsonl" 2>"$OUT/e2e_8b.err"
echo "e2e 8b rc=$?"; python3 -c "
import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l); print(r['model'],r['B'],r['N'],r['impl'],r['tokens_per_s'],r['step_ms'],r.get('speedup_vs_bf16'),r.get('speedup_per_rep'))" "$OUT/e2e_8b_b8.jsonl"
timeout 150 python3 scripts/bench_e2e_decode.py --contexts 16384 32768 --batch 8 --new-tokens 32 --reps 5 >"$OUT/e2e_small_b8.jsonl" 2>"$OUT/e2e_small.err"
echo "e2e small rc=$?"; python3 -c "
import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l); print(r['model'],r['B'],r['N'],r['impl'],r['tokens_per_s'],r['step_ms'],r.get('speedup_vs_bf16'),r.get('speedup_per_rep'))" "$OUT/e2e_small_b8.jsonl"
timeout 100 python3 scripts/bench_e2e_decode.py --model 8b-layers --contexts 16384 32768 --batch 1 --new-tokens 32 --reps 3 >"$OUT/e2e_8b_b1.jsonl" 2>>"$OUT/e2e_8b.err"
echo "e2e 8b b1 rc=$?"; python3 -c "
import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l); print(r['model'],r['B'],r['N'],r['impl'],r['tokens_per_s'],r['step_ms'],r.get('speedup_vs_bf16'),r.get('speedup_per_rep'))" "$OUT/e2e_8b_b1.jsonl"
tail -n 3 "$OUT"/*.err
