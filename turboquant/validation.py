"""Input checks shared by every public function.

Each check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong
shape, size, value, device) with a message that names the argument, what was expected and
what was given, before any work or kernel launch happens.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _names(items: Iterable) -> str:
    return ", ".join(str(i).replace("torch.", "") for i in items)


def check_tensor(
    name: str,
    t: object,
    *,
    ndim: int | Iterable[int] | None = None,
    dtypes: Iterable[torch.dtype] | None = None,
    device: torch.device | str | None = None,
    last_dim: int | None = None,
) -> torch.Tensor:
    """Check that ``t`` is a tensor with the given rank, dtype, device and last dimension.

    Returns ``t`` so calls can be chained. ``ndim`` may be one rank or several.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if ndim is not None:
        ranks = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if t.dim() not in ranks:
            raise ValueError(
                f"{name}: expected a tensor of rank {' or '.join(map(str, ranks))}, "
                f"got rank {t.dim()} with shape {tuple(t.shape)}"
            )
    if dtypes is not None:
        dtypes = tuple(dtypes)
        if t.dtype not in dtypes:
            raise TypeError(f"{name}: expected dtype in ({_names(dtypes)}), got {t.dtype}")
    if device is not None and t.device != torch.device(device):
        raise ValueError(f"{name}: expected a tensor on {torch.device(device)}, got one on {t.device}")
    if last_dim is not None and (t.dim() == 0 or t.shape[-1] != last_dim):
        raise ValueError(f"{name}: expected last dimension {last_dim}, got shape {tuple(t.shape)}")
    return t


def check_float_tensor(name: str, t: object, *, last_dim: int | None = None) -> torch.Tensor:
    """Check a floating-point input (fp16, bf16 or fp32) of rank >= 1."""
    check_tensor(name, t, dtypes=FLOAT_DTYPES)
    if t.dim() < 1:
        raise ValueError(f"{name}: expected a tensor of rank >= 1, got a scalar")
    return check_tensor(name, t, last_dim=last_dim)


def check_finite(name: str, t: torch.Tensor) -> torch.Tensor:
    """Raise ``ValueError`` if ``t`` holds NaN or Inf (reads the tensor: a device sync)."""
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name}: expected finite values, got {bad} NaN/Inf entries")
    return t


def check_bits(name: str, bits: object, allowed: Iterable[int]) -> int:
    """Check a bit width against the supported ones."""
    allowed = tuple(allowed)
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"{name}: expected an int in ({_names(allowed)}), got {bits!r}")
    if bits not in allowed:
        raise ValueError(f"{name}: expected one of ({_names(allowed)}), got {bits}")
    return bits


def check_head_dim(d: object, allowed: Iterable[int] | None = None, *, name: str = "head_dim") -> int:
    """Check a head dimension: an int >= 2, and one of ``allowed`` when given."""
    if isinstance(d, bool) or not isinstance(d, int):
        raise TypeError(f"{name}: expected an int, got {d!r}")
    if allowed is not None:
        allowed = tuple(allowed)
        if d not in allowed:
            raise ValueError(f"{name}: expected one of ({_names(allowed)}), got {d}")
    elif d < 2:
        raise ValueError(f"{name}: expected an int >= 2, got {d}")
    return d
