#!/usr/bin/env bash
# Prepared in session 35 (the device never started), for the next device session, highest
# priority first (~8 minutes): the page-layout A/B (head-major pages against today's
# token-major pages, same kernel and data, main's package), then the branch head-major-pages:
# its GPU tests of the pool, the paged decode, the vLLM-shaped batches and the compress writes,
# and the README decode grid at B=8 on it; last the same grid on main.
# Before the call, on the CPU machine, put the branch beside the tree (untracked, so carried):
#   rm -rf ab_new && mkdir ab_new && git archive head-major-pages turboquant tests scripts pyproject.toml | tar -x -C ab_new
# and delete ab_new again before committing.
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET
S=docs/results/2026-12-07-s35-no-gpu/scripts
GRID=(--graph --check --batches 8 --contexts 1024 4096 16384 32768 65536)
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 200 python3 $S/page_layout_ab.py --pages 16 >"$OUT/page_layout.jsonl" 2>"$OUT/page_layout.err"
echo "page_layout rc=$?"; cut -c1-900 "$OUT/page_layout.jsonl"; tail -n 3 "$OUT/page_layout.err"
[ -d ab_new ] || { echo "ab_new/ missing: see the top of this script"; exit 1; }
cd ab_new
timeout 120 python3 -m pytest -q -x -p no:cacheprovider tests/test_paged.py tests/test_paged_batch.py \
  tests/test_triton_decode.py tests/test_triton_compress.py >"$OUT/hm_tests.txt" 2>&1
echo "hm tests rc=$?"; tail -n 5 "$OUT/hm_tests.txt"
timeout 130 python3 scripts/bench_decode.py "${GRID[@]}" >"$OUT/hm_decode.jsonl" 2>"$OUT/hm_decode.err"
echo "hm decode rc=$?"; grep -v check "$OUT/hm_decode.jsonl" | cut -c1-260; tail -n 2 "$OUT/hm_decode.err"
cd ..
timeout 130 python3 scripts/bench_decode.py "${GRID[@]}" >"$OUT/decode.jsonl" 2>"$OUT/decode.err"
echo "decode rc=$?"; grep -v check "$OUT/decode.jsonl" | cut -c1-260; tail -n 2 "$OUT/decode.err"
