#!/usr/bin/env bash
# Session 28 run 1 (H100): the README decode grid, compress/prefill, the wave A/B of session 25.
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
unset TRITON_INTERPRET
d=docs/results/h100-2026-12-06-s28/scripts
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c 'import torch, triton, transformers; print("torch", torch.__version__, "triton", triton.__version__, "transformers", transformers.__version__)' | tee -a "$OUT/gpu.txt"
sha1sum turboquant/triton/decode.py | tee -a "$OUT/gpu.txt"
timeout 270 python3 scripts/bench_decode.py --graph --check --batches 8 1 32 --contexts 1024 4096 16384 32768 65536 >"$OUT/decode.jsonl" 2>"$OUT/decode.err"
echo "decode rc=$?"
timeout 110 python3 scripts/bench_kernels.py --suite compress,prefill --compress-tokens 64k,256k --kv-bits k4v4 >"$OUT/kernels.jsonl" 2>"$OUT/kernels.err"
echo "kernels rc=$?"
timeout 170 python3 docs/results/h200-2026-12-04-s25/scripts/wave_ab.py >"$OUT/wave.jsonl" 2>"$OUT/wave.err"
echo "wave rc=$?"
python3 $d/summarize.py "$OUT/decode.jsonl" "$OUT/kernels.jsonl" "$OUT/wave.jsonl"
tail -3 "$OUT"/*.err
