#!/usr/bin/env bash
# Session 31 run 2: k_byte_planes on by default (WAVE_PROGRAMS contiguous 8 -> 12): the decode
# GPU tests, then the README grid; v_byte_planes (off by default) against the default.
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
git rev-parse HEAD > "$OUT/tree.txt"; sha1sum turboquant/triton/*.py tests/test_triton_decode.py >> "$OUT/tree.txt"
timeout 300 python3 -m pytest -q -p no:cacheprovider -x tests/test_triton_decode.py tests/test_decode_graphs.py >"$OUT/gpu_tests.txt" 2>&1
echo "tests rc=$?"; grep -E "FAILED|ERROR|Error" "$OUT/gpu_tests.txt" | head -20; tail -2 "$OUT/gpu_tests.txt"
timeout 200 python3 scripts/bench_decode.py --graph --check --batches 8 1 32 --contexts 1024 4096 16384 32768 65536 >"$OUT/bench_decode.jsonl" 2>"$OUT/bench_decode.err"
echo "grid rc=$?"; tail -3 "$OUT/bench_decode.err"
python3 - "$OUT/bench_decode.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    keep = {k: r[k] for k in r if k in ("impl", "B", "N", "us", "speedup_vs_flash", "x_flash", "tb_s", "max_abs_err", "splits", "config")}
    print(keep)
PY
timeout 60 python3 docs/results/h100-2026-12-07-s31/scripts/regs.py | tee "$OUT/regs.jsonl"
timeout 120 python3 docs/results/h100-2026-12-07-s31/scripts/vbytes_ab.py >"$OUT/vbytes_ab.jsonl" 2>"$OUT/vbytes_ab.err"
echo "vbytes rc=$?"; tail -2 "$OUT/vbytes_ab.err"; python3 -c "
import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l); print(r['B'],r['N'],r['config'],r['us'],r['x_flash'],r['max_diff'])" "$OUT/vbytes_ab.jsonl"
timeout 100 python3 docs/results/h100-2026-12-07-s31/scripts/short_ab.py >"$OUT/short_ab.jsonl" 2>"$OUT/short_ab.err"
echo "short rc=$?"; tail -2 "$OUT/short_ab.err"; python3 -c "
import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l); print(r['B'],r['N'],r['config'],r['us'],r['x_flash'],r['max_diff'])" "$OUT/short_ab.jsonl"
