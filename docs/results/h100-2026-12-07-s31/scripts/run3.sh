#!/usr/bin/env bash
# Session 31 run 3: K and V byte planes on by default: the decode GPU tests, the README grid,
# the small model end to end at B=8.
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
sha1sum turboquant/triton/*.py tests/test_triton_decode.py > "$OUT/tree.txt"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_triton_decode.py tests/test_decode_graphs.py >"$OUT/gpu_tests.txt" 2>&1
echo "tests rc=$?"; grep -E "FAILED|ERROR" "$OUT/gpu_tests.txt" | head -20; tail -n 2 "$OUT/gpu_tests.txt"
timeout 150 python3 scripts/bench_decode.py --graph --check --batches 8 1 32 --contexts 1024 4096 16384 32768 65536 >"$OUT/bench_decode.jsonl" 2>"$OUT/bench_decode.err"
echo "grid rc=$?"; tail -n 3 "$OUT/bench_decode.err"
python3 - "$OUT/bench_decode.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["impl"] in ("sdpa_flash_bf16", "sdpa_cudnn_bf16", "tq_paged_k4v4", "tq_contiguous_k4v4", "tq_paged_k3v3") or r["impl"].startswith("check"):
        print(r["B"], r["N"], r["impl"], r.get("us"), r.get("speedup_vs_flash"), r.get("tb_s"), r.get("max_abs_err"))
PY
timeout 90 python3 scripts/bench_e2e_decode.py --contexts 16384 32768 --batch 8 --new-tokens 32 --reps 3 >"$OUT/e2e_small_b8.jsonl" 2>"$OUT/e2e_small.err"
echo "e2e small rc=$?"; python3 -c "
import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l); print(r['model'],r['B'],r['N'],r['impl'],r['tokens_per_s'],r['step_ms'],r.get('speedup_vs_bf16'))" "$OUT/e2e_small_b8.jsonl"
echo "failed captures: $(grep -c 'capture of the decode step failed' "$OUT/e2e_small.err")"
