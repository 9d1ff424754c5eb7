"""Facts about a codebook tensor computed once and remembered (a device read is a sync)."""

from __future__ import annotations

import weakref

import torch

from ..packing import code_order

_PER_CODEBOOK: dict[tuple[tuple[int, ...], object], tuple[tuple[weakref.ref, ...], tuple, object]] = {}


def per_codebook(centroids, what: object, compute, while_capturing=None):
    """``compute(centroids)``, computed once per codebook tensor (or tuple of tensors, e.g. a K
    and a V codebook) and in-place version and then remembered under ``what`` (inference-mode
    tensors keep no version counter: remembered by identity alone). While a CUDA graph is
    being captured a miss is not remembered and returns ``while_capturing(centroids)`` when
    given (e.g. to avoid a device sync)."""
    tensors = centroids if isinstance(centroids, tuple) else (centroids,)
    key = (tuple(map(id, tensors)), what)
    versions = tuple(None if t.is_inference() else t._version for t in tensors)
    hit = _PER_CODEBOOK.get(key)
    if hit is not None and all(r() is t for r, t in zip(hit[0], tensors, strict=True)) and hit[1] == versions:
        return hit[2]
    if tensors[0].is_cuda and torch.cuda.is_current_stream_capturing():
        return (while_capturing or compute)(centroids)
    value = compute(centroids)
    if len(_PER_CODEBOOK) > 256:  # drop entries of freed tensors
        for k in [k for k, v in _PER_CODEBOOK.items() if any(r() is None for r in v[0])]:
            del _PER_CODEBOOK[k]
    _PER_CODEBOOK[key] = (tuple(map(weakref.ref, tensors)), versions, value)
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


def code_table(centroids: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The kernels' gather table of a sorted codebook: entry ``c`` is the centroid of the index
    whose packed code is ``c`` (:func:`turboquant.packing.code_order`), in ``dtype`` (default:
    the codebook's), contiguous. Built once per codebook tensor, in-place version and dtype."""
    return per_codebook(
        centroids, ("code order", dtype), lambda c: code_order(c).to(dtype or c.dtype).contiguous()
    )
