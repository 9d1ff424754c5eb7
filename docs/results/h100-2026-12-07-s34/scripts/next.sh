#!/usr/bin/env bash
# Superseded (session 35): DecodeConfig.head_major was reverted, so the first step fails;
# see docs/results/2026-12-07-s35-no-gpu/scripts/run1.sh.
# Prepared for the next device session (session 34 ran out of device time): the untimed
# DecodeConfig.head_major against the default, then the README decode grid at B=8, the
# compress and prefill rows of bench_kernels and the end-to-end decode at B=8, all on the
# sign-magnitude codes. About 8 minutes; highest priority first.
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 130 python3 scripts/decode_switch_ab.py --set head_major=True --shapes 8x32768 8x4096 32x32768 \
  >"$OUT/head_major.jsonl" 2>"$OUT/head_major.err"
echo "head_major rc=$?"; grep -v n_regs "$OUT/head_major.jsonl" | cut -c1-600; tail -n 2 "$OUT/head_major.err"
timeout 140 python3 scripts/bench_decode.py --graph --check --batches 8 --contexts 1024 4096 16384 32768 65536 \
  >"$OUT/decode.jsonl" 2>"$OUT/decode.err"
echo "decode rc=$?"; grep -v check "$OUT/decode.jsonl" | cut -c1-260; tail -n 2 "$OUT/decode.err"
timeout 110 python3 scripts/bench_kernels.py --suite compress,prefill --bits 4,3 --compress-tokens 256k --kv-bits k4v4 \
  >"$OUT/kernels.jsonl" 2>"$OUT/kernels.err"
echo "kernels rc=$?"; cut -c1-260 "$OUT/kernels.jsonl"; tail -n 2 "$OUT/kernels.err"
timeout 160 python3 scripts/bench_e2e_decode.py --contexts 16384 32768 --batch 8 --new-tokens 32 --reps 3 \
  >"$OUT/e2e.jsonl" 2>"$OUT/e2e.err"
echo "e2e rc=$?"; cut -c1-300 "$OUT/e2e.jsonl"; tail -n 2 "$OUT/e2e.err"
