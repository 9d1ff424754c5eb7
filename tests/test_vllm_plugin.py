"""The vLLM plugin's vllm-free parts: env-var validation, capacity gain, lazy imports.

(The backend itself is tested against the real vllm package by scripts/test_vllm.sh.)
"""

import subprocess
import sys

import pytest
import torch

from turboquant.vllm import bits_from_env, capacity_gain, override_backends_from_env, rotation_from_env


def test_bits_from_env_defaults_and_values():
    assert bits_from_env({}) == (4, 4)
    assert bits_from_env({"TURBOQUANT_K_BITS": "3", "TURBOQUANT_V_BITS": " 2 "}) == (3, 2)
    assert bits_from_env({"TURBOQUANT_K_BITS": ""}) == (4, 4)


@pytest.mark.parametrize(
    "env, match",
    [
        ({"TURBOQUANT_K_BITS": "5"}, r"TURBOQUANT_K_BITS: expected one of 2, 3, 4 .*got '5'"),
        ({"TURBOQUANT_V_BITS": "four"}, r"TURBOQUANT_V_BITS: expected one of 2, 3, 4 .*got 'four'"),
        ({"TURBOQUANT_V_BITS": "8"}, r"TURBOQUANT_V_BITS.*got '8'"),
        ({"TURBOQUANT_K_BITS": "4.0"}, r"TURBOQUANT_K_BITS.*got '4.0'"),
    ],
)
def test_bits_from_env_rejects_bad_values(env, match):
    with pytest.raises(ValueError, match=match):
        bits_from_env(env)


def test_rotation_from_env():
    assert rotation_from_env({}) == "qr" and rotation_from_env({"TURBOQUANT_ROTATION": " "}) == "qr"
    assert rotation_from_env({"TURBOQUANT_ROTATION": " Hadamard"}) == "hadamard"
    with pytest.raises(ValueError, match=r"TURBOQUANT_ROTATION: expected one of qr, hadamard, got 'haar'"):
        rotation_from_env({"TURBOQUANT_ROTATION": "haar"})


def test_override_backend_names():
    assert override_backends_from_env({}) == []
    assert override_backends_from_env({"TURBOQUANT_VLLM_OVERRIDE": " CPU_ATTN, ,FLASH_ATTN "}) == [
        "CPU_ATTN",
        "FLASH_ATTN",
    ]
    with pytest.raises(ValueError, match="TURBOQUANT_VLLM_OVERRIDE: expected comma-separated"):
        override_backends_from_env({"TURBOQUANT_VLLM_OVERRIDE": "CPU-ATTN"})


def tokens_per_gib(bytes_per_token: int) -> int:
    return 2**30 // bytes_per_token


@pytest.mark.parametrize(
    "d, k_bits, v_bits, dtype, tq_bytes, dense_bytes",
    [
        # independent arithmetic per token and KV head: K and V records of d*b/8 + 4 bytes
        (128, 4, 4, torch.bfloat16, 64 + 4 + 64 + 4, 2 * 128 * 2),  # 512 / 136
        (128, 3, 3, torch.float16, 48 + 4 + 48 + 4, 2 * 128 * 2),  # 512 / 104
        (128, 4, 2, torch.bfloat16, 64 + 4 + 32 + 4, 2 * 128 * 2),  # 512 / 104
        (64, 4, 4, torch.float32, 32 + 4 + 32 + 4, 2 * 64 * 4),  # 512 / 72
    ],
)
def test_capacity_gain_matches_page_arithmetic(d, k_bits, v_bits, dtype, tq_bytes, dense_bytes):
    gain = capacity_gain(d, k_bits, v_bits, dtype)
    assert gain == pytest.approx(dense_bytes / tq_bytes, rel=1e-12)
    # tokens per GiB, in whole tokens, agree to the rounding of the floors
    assert tokens_per_gib(tq_bytes) / tokens_per_gib(dense_bytes) == pytest.approx(gain, rel=1e-6)


def test_capacity_gain_headline_and_errors():
    assert capacity_gain(128) == pytest.approx(512 / 136) and round(capacity_gain(128), 2) == 3.76
    with pytest.raises(ValueError, match="k_bits"):
        capacity_gain(128, 5, 4)
    with pytest.raises(TypeError, match="dtype"):
        capacity_gain(128, 4, 4, torch.int8)


def test_import_does_not_import_vllm():
    # `vllm` made unimportable: the package and its vllm-free API must work, and the backend
    # classes must fail with an error that says what to install.
    code = """
import sys
sys.modules["vllm"] = None  # any `import vllm` now raises ImportError
import turboquant, turboquant.vllm as tv
assert round(tv.capacity_gain(128), 2) == 3.76 and tv.bits_from_env({}) == (4, 4)
assert not [m for m, mod in sys.modules.items() if mod is not None and m.split(".")[0] == "vllm"]
for name in ("TQ4AttentionBackend", "register_tq4_backend"):
    try:
        getattr(tv, name)() if name.startswith("register") else getattr(tv, name)
    except ImportError as err:
        assert "pip install 'turboquant[vllm]'" in str(err), err
    else:
        raise AssertionError(name + " did not need vllm")
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
