#!/usr/bin/env bash
# Session 38 (~8 minutes on a fresh machine, most of it compiling; NO_TESTS=1 stops before the tests): the causal prefill's launch order
# in interleaved rounds (dense, K4/V4, K4 at 8K and 16K), then the whole GPU test list
# (scripts/gpu_check.sh tests).
# PyAV and molmo-utils (the video tests) travel as wheels in .whl/ (docs/results README):
#   pip install --no-index --no-deps --target /tmp/site .whl/*.whl; PYTHONPATH=/tmp/site bash docs/results/h100-2026-12-08-s38/scripts/next.sh
set -uo pipefail
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
unset TRITON_INTERPRET
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', transformers.__version__)"
timeout ${AB_LIMIT:-220} python3 docs/results/h100-2026-12-08-s38/scripts/heads_first_ab.py \
  >"$OUT/heads_first_ab.jsonl" 2>"$OUT/heads_first_ab.err"
echo "heads_first_ab rc=$?"
cut -c1-330 "$OUT/heads_first_ab.jsonl"
tail -n 3 "$OUT/heads_first_ab.err"
[ -n "${NO_TESTS:-}" ] && exit 0
bash scripts/gpu_check.sh tests  # the whole GPU test list, log in $OUT/tests.log
