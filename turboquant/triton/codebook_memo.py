"""Facts about a codebook tensor computed once and remembered (a device read is a sync)."""

from __future__ import annotations

import weakref

import torch

_PER_CODEBOOK: dict[tuple[int, object], tuple[weakref.ref, int | None, object]] = {}


def per_codebook(centroids: torch.Tensor, what: object, compute, while_capturing=None):
    """``compute(centroids)``, computed once per codebook tensor and in-place version and then
    remembered under ``what`` (inference-mode tensors keep no version counter: remembered by
    identity alone). While a CUDA graph is being captured a miss is not remembered and
    returns ``while_capturing(centroids)`` when given (e.g. to avoid a device sync)."""
    version = None if centroids.is_inference() else centroids._version
    hit = _PER_CODEBOOK.get((id(centroids), what))
    if hit is not None and hit[0]() is centroids and hit[1] == version:
        return hit[2]
    if centroids.is_cuda and torch.cuda.is_current_stream_capturing():
        return (while_capturing or compute)(centroids)
    value = compute(centroids)
    if len(_PER_CODEBOOK) > 256:  # drop entries of freed tensors
        for key in [k for k, v in _PER_CODEBOOK.items() if v[0]() is None]:
            del _PER_CODEBOOK[key]
    _PER_CODEBOOK[(id(centroids), what)] = (weakref.ref(centroids), version, value)
    return value


def is_symmetric(centroids: torch.Tensor) -> bool:
    """Whether ``centroids`` (sorted centroids or boundaries) satisfy ``c[n-1-i] == -c[i]``
    exactly. Read once per tensor and in-place version (a device sync), then remembered; while
    a CUDA graph is being captured an unseen tensor counts as asymmetric (the general lookup
    is always right)."""
    return per_codebook(
        centroids,
        "symmetric",
        lambda c: bool(torch.equal(c, -c.flip(0))),
        while_capturing=lambda c: False,
    )
