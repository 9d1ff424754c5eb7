#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite on CPU, Triton kernels under the interpreter:
# ruff (lint and format check), tests/ in .venv, then the vLLM plugin against the real vllm package (tests_vllm/, in its own
# .venv-vllm: scripts/test_vllm.sh).
#   bash scripts/test.sh                  # everything
#   bash scripts/test.sh [pytest args...] # only these, in .venv (e.g. tests/test_cache.py -x)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
# Without a GPU, Triton kernels run in its interpreter on torch CPU tensors.
if ! .venv/bin/python -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
  export TRITON_INTERPRET=1
fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
# lint first (seconds): the pinned ruff of the dev extra, configured in pyproject.toml
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest tests
# the interpreter does not type-check kernels as the compiler does: compile the decode kernels
# for sm_90a as well (seconds per variant, no GPU needed)
if [ "${TRITON_INTERPRET:-0}" = 1 ]; then
  env -u TRITON_INTERPRET .venv/bin/python scripts/compile_check.py
fi
bash scripts/test_vllm.sh
