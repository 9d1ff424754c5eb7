#!/usr/bin/env bash
# Set up (idempotent) and start the Gradio app. Without a GPU or Hub access it serves the
# embedded offline default (a tiny random Molmo2); set TURBOQUANT_MODEL to pick another
# model, GRADIO_SERVER_NAME / GRADIO_SERVER_PORT to choose the address.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! .venv/bin/python -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
  export TRITON_INTERPRET=1
fi
exec .venv/bin/python space/app.py "$@"
