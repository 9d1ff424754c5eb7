#!/usr/bin/env bash
# Create or update .venv at the repository root and install turboquant into it.
#
#   bash scripts/setup.sh            # library + app (gradio, PyAV, molmo-utils, ...)
#   bash scripts/setup.sh --dev      # also the test tools and Debian's Chromium for the browser test
#
# torch is installed first, on purpose: in a fresh venv a plain `torch` requirement pulls the
# newest CUDA build (several GB). Without a GPU we take the CPU wheel torch==2.13.0; with
# `nvidia-smi` present, the registry's default (CUDA) build. Override with TURBOQUANT_TORCH,
# e.g. TURBOQUANT_TORCH="torch==2.11.0". Safe to run again: it only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

want_dev=0
for arg in "$@"; do
  case "$arg" in
    --dev) want_dev=1 ;;
    *) echo "usage: bash scripts/setup.sh [--dev]" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "turboquant needs Python >= 3.11; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# pip's notes about this machine's extra local indexes ("WARNING: Location ... is ignored") are noise
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "^WARNING: Location" >&2); }

if [ -n "${TURBOQUANT_TORCH:-}" ]; then
  torch_spec=$TURBOQUANT_TORCH
elif command -v nvidia-smi >/dev/null 2>&1; then
  torch_spec=torch
else
  torch_spec=torch==2.13.0
fi
if ! .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
  echo "setup: installing $torch_spec"
  pip install "$torch_spec"
fi

extras=space
[ "$want_dev" = 1 ] && extras=space,dev
# Reinstall only when pyproject.toml or the extras changed.
stamp=.venv/.turboquant-$extras-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "setup: installing turboquant[$extras]"
  pip install -e ".[$extras]"
  rm -f .venv/.turboquant-*
  touch "$stamp"
fi

if [ "$want_dev" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian's chromium for the browser test"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: chromium not found and not root: the browser test will say so and fail" >&2
  fi
fi
echo "setup: ready ($(.venv/bin/python -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)'))"
