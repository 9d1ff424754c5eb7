"""vLLM plugin: a TurboQuant-compressed paged KV cache served by vLLM (>= 0.32).

Installing turboquant registers :func:`register_tq4_backend` under vLLM's
``vllm.general_plugins`` entry point, so every vLLM process registers the TQ4 backend as
``AttentionBackendEnum.CUSTOM``; select it with ``vllm serve MODEL --attention-backend CUSTOM``
(or ``LLM(..., attention_config={"backend": "CUSTOM"})``).

Environment variables (read by every vLLM process, validated with clear errors):

- ``TURBOQUANT_K_BITS``, ``TURBOQUANT_V_BITS``: bits per coordinate of keys / values, one of
  2, 3, 4 (default 4).
- ``TURBOQUANT_ROTATION``: ``qr`` (Haar-random, default) or ``hadamard`` (randomized
  Hadamard, power-of-two head sizes): the rotation of keys and values; with ``hadamard`` the
  compress kernel rotates with one tensor-core product instead of three.
- ``TURBOQUANT_VLLM_OVERRIDE``: comma-separated names of vLLM backends to route to TQ4 as
  well (e.g. ``CPU_ATTN`` on the CPU platform, whose selector ignores
  ``--attention-backend``); empty by default.

Importing this package does not import vllm: the backend classes (``TQ4AttentionBackend``,
``TQ4AttentionImpl``, ``TQ4AttentionMetadata``, ``TQ4AttentionMetadataBuilder``,
``TQ4FullAttentionSpec``) live in :mod:`turboquant.vllm.backend` and are imported on first
access.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping

K_BITS_ENV = "TURBOQUANT_K_BITS"
V_BITS_ENV = "TURBOQUANT_V_BITS"
OVERRIDE_ENV = "TURBOQUANT_VLLM_OVERRIDE"
ROTATION_ENV = "TURBOQUANT_ROTATION"
DEFAULT_BITS = 4
BACKEND_PATH = "turboquant.vllm.backend.TQ4AttentionBackend"

_BACKEND_NAMES = (
    "TQ4AttentionBackend",
    "TQ4AttentionImpl",
    "TQ4AttentionMetadata",
    "TQ4AttentionMetadataBuilder",
    "TQ4FullAttentionSpec",
)

__all__ = [
    "BACKEND_PATH",
    "K_BITS_ENV",
    "OVERRIDE_ENV",
    "ROTATION_ENV",
    "V_BITS_ENV",
    "bits_from_env",
    "capacity_gain",
    "override_backends_from_env",
    "register_tq4_backend",
    "rotation_from_env",
    *_BACKEND_NAMES,
]


def _parse_bits(name: str, raw: str | None) -> int:
    from ..paged import PAGED_BITS

    if raw is None or raw.strip() == "":
        return DEFAULT_BITS
    try:
        bits = int(raw.strip())
    except ValueError:
        bits = None
    if bits not in PAGED_BITS:
        allowed = ", ".join(map(str, PAGED_BITS))
        raise ValueError(f"{name}: expected one of {allowed} (bits per coordinate), got {raw!r}")
    return bits


def bits_from_env(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(k_bits, v_bits)`` from ``TURBOQUANT_K_BITS`` / ``TURBOQUANT_V_BITS`` (default 4 each).

    Raises ``ValueError`` naming the variable, the allowed values and the value given.
    """
    env = os.environ if environ is None else environ
    return _parse_bits(K_BITS_ENV, env.get(K_BITS_ENV)), _parse_bits(V_BITS_ENV, env.get(V_BITS_ENV))


def rotation_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The rotation kind from ``TURBOQUANT_ROTATION`` (``qr``, the default, or ``hadamard``).

    Raises ``ValueError`` naming the variable, the allowed values and the value given.
    """
    from ..rotation import ROTATION_KINDS

    env = os.environ if environ is None else environ
    raw = env.get(ROTATION_ENV)
    kind = (raw or "").strip().lower() or "qr"
    if kind not in ROTATION_KINDS:
        raise ValueError(f"{ROTATION_ENV}: expected one of {', '.join(ROTATION_KINDS)}, got {raw!r}")
    return kind


def override_backends_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """Names listed in ``TURBOQUANT_VLLM_OVERRIDE`` (comma-separated, blanks ignored).

    Names are checked against vLLM's ``AttentionBackendEnum`` by :func:`register_tq4_backend`.
    """
    env = os.environ if environ is None else environ
    names = [n.strip() for n in env.get(OVERRIDE_ENV, "").split(",") if n.strip()]
    bad = [n for n in names if not n.isidentifier()]
    if bad:
        raise ValueError(
            f"{OVERRIDE_ENV}: expected comma-separated vLLM attention backend names such as "
            f"'CPU_ATTN' or 'FLASH_ATTN', got {env.get(OVERRIDE_ENV)!r}"
        )
    return names


def capacity_gain(head_dim: int, k_bits: int = 4, v_bits: int = 4, dtype=None) -> float:
    """Tokens per GiB of TQ4 pages over tokens per GiB of 16-bit (``dtype``) pages.

    Computed from the page arithmetic of the spec: a 16-bit page holds ``2 * D * itemsize``
    bytes per token and KV head; a TurboQuant page holds one K and one V record
    (``D*b/8`` packed bytes + a 4-byte norm) per token and KV head. Heads, layers and block
    size cancel. ``dtype`` defaults to ``torch.bfloat16``; d=128 K4/V4 gives 512/136 = 3.76.
    """
    import torch

    from ..paged import PagedKVLayout

    dtype = torch.bfloat16 if dtype is None else dtype
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating torch.dtype of the uncompressed cache, got {dtype!r}")
    layout = PagedKVLayout(1, head_dim, k_bits, v_bits)
    baseline = 2 * head_dim * dtype.itemsize
    return baseline / layout.bytes_per_token


def register_tq4_backend() -> None:
    """Register the TQ4 backend with vLLM (the ``vllm.general_plugins`` entry point).

    Registers :class:`~turboquant.vllm.backend.TQ4AttentionBackend` as
    ``AttentionBackendEnum.CUSTOM`` and as every backend named in ``TURBOQUANT_VLLM_OVERRIDE``.
    Validates the bit-width variables first so a typo fails at startup, not at the first
    forward. Safe to call more than once (vLLM loads plugins in every process).
    """
    bits_from_env()
    rotation_from_env()
    try:
        from vllm.v1.attention.backends.registry import AttentionBackendEnum, register_backend
    except ImportError as err:
        raise ImportError(
            "register_tq4_backend needs vllm (>= 0.32): pip install 'turboquant[vllm]'"
        ) from err

    targets = [AttentionBackendEnum.CUSTOM]
    for name in override_backends_from_env():
        if name not in AttentionBackendEnum.__members__:
            valid = ", ".join(AttentionBackendEnum.__members__)
            raise ValueError(f"{OVERRIDE_ENV}: unknown vLLM attention backend {name!r}; valid names: {valid}")
        targets.append(AttentionBackendEnum[name])
    for target in targets:
        register_backend(target, BACKEND_PATH)


def __getattr__(name: str):
    if name in _BACKEND_NAMES:
        try:
            module = importlib.import_module(".backend", __name__)
        except ImportError as err:
            if err.name is None or err.name.split(".")[0] != "vllm":
                raise
            raise ImportError(
                f"turboquant.vllm.{name} needs vllm (>= 0.32): pip install 'turboquant[vllm]'"
            ) from err
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'turboquant.vllm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
