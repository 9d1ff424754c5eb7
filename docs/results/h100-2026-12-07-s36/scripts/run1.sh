#!/usr/bin/env bash
# Session 36, device run 1 (H100), as run: the page-layout A/B of session 35 and the README
# decode grid at B=8 on both trees. The tree with head-major pages (then uncommitted, now
# 656d6b8) was the repository root; main before it (dd9861a, token-major pages) was copied
# beside it first, untracked so that it travelled with the tree:
#   mkdir ab_old && git archive dd9861a turboquant scripts docs/results/2026-12-07-s35-no-gpu | tar -x -C ab_old
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1; unset TRITON_INTERPRET
S=docs/results/2026-12-07-s35-no-gpu/scripts
G="--graph --check --batches 8 --contexts 1024 4096 16384 32768 65536"
nvidia-smi --query-gpu=name --format=csv,noheader
cd ab_old
PYTHONPATH=. timeout 200 python3 $S/page_layout_ab.py --pages 16 >$OUT/page_layout.jsonl 2>$OUT/page_layout.err
cd ..
PYTHONPATH=. timeout 130 python3 -m pytest -q -x -p no:cacheprovider tests/test_paged.py tests/test_paged_batch.py \
  tests/test_triton_decode.py tests/test_triton_compress.py >$OUT/hm_tests.txt 2>&1  # timed out: see run2
PYTHONPATH=. timeout 110 python3 scripts/bench_decode.py $G >$OUT/hm_decode.jsonl 2>$OUT/hm_decode.err
cd ab_old
PYTHONPATH=. timeout 110 python3 scripts/bench_decode.py $G >$OUT/decode.jsonl 2>$OUT/decode.err
