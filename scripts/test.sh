#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite on CPU, Triton kernels under the interpreter.
#   bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
# Without a GPU, Triton kernels run in its interpreter on torch CPU tensors.
if ! .venv/bin/python -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
  export TRITON_INTERPRET=1
fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest "${@:-tests}"
