"""CUDA graphs of the fused decode step of one compressed cache layer.

On a small model the Hugging Face decode step is bound by host work, and a fused step of a
layer makes five Triton launches (compress K, compress V, rotate q, split, reduce), each costing
tens of microseconds of Python in Triton's launcher. Here the two halves of the step run on
static buffers whose state lives on the device, so each half is captured once and replayed:

* **append**: the new K/V token is copied into static inputs; the replay compresses both into
  the cache's buffers at the position held on the device by the per-sequence lengths ``lens``
  (rows addressed by ``tq4_compress``'s slot mapping) and advances ``lens``;
* **attend**: ``q`` is copied into a static input; the replay runs ``tq_decode`` over the
  buffers' whole capacity with the device lengths ``lens`` (splits past a length do no work).

A step then costs three tensor copies and two graph replays. Each half first runs once eagerly
(compiling its kernels; that run is the step's real work) and is captured right after; it is
captured again when the buffers, shapes, dtypes or scale change (capacity growth, batch
reorder), and the device lengths are re-seeded from the host length whenever the two disagree
(a prefill chunk, ``crop``). With ``capture=False`` the same bodies run eagerly every step (on
CPU under ``TRITON_INTERPRET=1``: how the tests check the device-state logic).

The attend output is a static buffer overwritten by the layer's next step (the model consumes it
within the step).
"""

from __future__ import annotations

import gc
import warnings
import weakref

import torch

from . import cache as _cache
from .triton import decode
from .triton.compress import tq4_compress


def _capture(body, device: torch.device) -> tuple[torch.cuda.CUDAGraph, object]:
    """Capture ``body()`` on a side stream of ``device``; returns the graph and what ``body``
    returned.

    Like ``torch.cuda.graph`` without its device synchronize, garbage collection and cache
    emptying, which would cost more than the replays save over a short generation. Thread-local
    capture: other threads (e.g. a server's) may keep using the GPU meanwhile.

    Python's cyclic garbage collector is off while capturing: a collection that frees an
    unreachable ``CUDAGraph`` (say, of a dropped cache) inside the capture destroys a graph
    on this thread, which CUDA refuses while the stream captures, and that invalidates the
    capture. Session 29 caught this on an H100: layers fell back to eager decode steps at random
    (``RuntimeWarning`` "capture of the decode step failed"), ~10x the host time per layer."""
    graph = torch.cuda.CUDAGraph()
    collecting = gc.isenabled()
    gc.disable()
    try:
        with torch.cuda.device(device):
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                graph.capture_begin(capture_error_mode="thread_local")
                try:
                    result = body()
                finally:
                    graph.capture_end()
            torch.cuda.current_stream().wait_stream(stream)
    finally:
        if collecting:
            gc.enable()
    return graph, result


class DecodeGraphs:
    """The append and attend halves of one layer's decode step on static buffers.

    Args:
        layer: a :class:`turboquant.cache.CompressedLayer` (its ``k``/``v`` packed streams).
        capture: capture CUDA graphs (CUDA only); False runs the bodies eagerly each step.
    """

    def __init__(self, layer, capture: bool = True) -> None:
        # weak: the layer holds its DecodeGraphs, so a strong reference back would make a cycle
        # that only the cyclic collector frees (late, and with it the graphs' memory pools)
        self._layer = weakref.ref(layer)
        self.capture = capture
        self.captures = 0  # graphs captured so far
        self.replays = 0  # halves of steps (append or attend) served by a replay
        self._reset()

    @property
    def layer(self):
        return self._layer()

    def _reset(self) -> None:
        self.key = None  # (K input shape, V input shape, dtype, self._buffers())
        self.append_graph = self.attend_graph = None
        self.attend_key = self.out = None
        self.synced_len = -1  # the host length that the device lengths stand for

    def _buffers(self) -> tuple:
        # what the graphs bake in: the addresses and shapes of the cache buffers (not the
        # tensors themselves, which would keep replaced buffers alive)
        k, v = self.layer.k, self.layer.v
        if k.packed is None or v.packed is None:
            return ()
        return (
            k.packed.data_ptr(),
            k.norms.data_ptr(),
            v.packed.data_ptr(),
            v.norms.data_ptr(),
            k.packed.shape,
        )

    def _same_buffers(self, key_states: torch.Tensor, value_states: torch.Tensor) -> bool:
        key = self.key
        return (
            key is not None
            and key_states.shape == key[0]
            and value_states.shape == key[1]
            and key_states.dtype == key[2]
            and value_states.dtype == key[2]
            and self._buffers() == key[3]
        )

    def append(self, key_states: torch.Tensor, value_states: torch.Tensor) -> bool:
        """Append one token ``[B, H_kv, 1, D]`` of K and V; False (nothing done) when the
        buffers cannot take it in place (none yet, full, not dense): the caller appends."""
        k, v = self.layer.k, self.layer.v
        if not self._same_buffers(key_states, value_states):
            # new buffers (first step, growth, batch reorder) or inputs: check, then start over
            self._reset()
            if (
                k.packed is None
                or v.packed is None
                or key_states.shape[2] != 1
                or value_states.shape[2] != 1
                or key_states.dtype != value_states.dtype
                or k.packed.shape[2] != v.packed.shape[2]
                or not all(t.is_contiguous() for t in (k.packed, k.norms, v.packed, v.norms))
                or not _cache._use_compress_kernel(key_states, k.quantizer)
                or not _cache._use_compress_kernel(value_states, v.quantizer)
            ):
                return False
            self.key = (key_states.shape, value_states.shape, key_states.dtype, self._buffers())
            self._static_inputs(key_states, value_states, k.packed.shape[2])
        if k.length >= k.packed.shape[2]:
            return False  # full: the caller's append grows the buffers
        if self.synced_len != k.length:
            self.lens.fill_(k.length)
            self.synced_len = k.length
        self.k_in.copy_(key_states)
        self.v_in.copy_(value_states)
        if self.append_graph is None:
            self._append_body()  # this step's append; compiles the kernels before any capture
            if self.capture:
                self.append_graph, _ = self._try_capture(self._append_body, key_states.device)
        else:
            self.append_graph.replay()
            self.replays += 1
        k.length += 1
        v.length += 1
        self.synced_len += 1
        return True

    def _try_capture(self, body, device: torch.device) -> tuple:
        """``_capture(body)``; if capturing fails, a warning and eager bodies from then on (the
        step's work was already done by the eager run before the capture)."""
        try:
            graph, result = _capture(body, device)
        except RuntimeError as err:
            self.capture = False
            warnings.warn(
                f"turboquant: CUDA-graph capture of the decode step failed ({err}); this layer "
                "runs its decode kernels without graphs from now on",
                RuntimeWarning,
                stacklevel=3,
            )
            return None, None
        self.captures += 1
        return graph, result

    def _static_inputs(self, key_states: torch.Tensor, value_states: torch.Tensor, cap: int) -> None:
        b, h = key_states.shape[:2]
        dev = key_states.device
        self.k_in = torch.empty(key_states.shape, dtype=key_states.dtype, device=dev)
        self.v_in = torch.empty(value_states.shape, dtype=value_states.dtype, device=dev)
        self.lens = torch.zeros(b, dtype=torch.int32, device=dev)  # all equal: the write position
        # row (b, h) of the new token: (b*H + h) * capacity + position in the [B*H*cap] row view
        self.base = torch.arange(b * h, dtype=torch.int64, device=dev) * cap
        self.slot = torch.empty_like(self.base)

    def _append_body(self) -> None:
        torch.add(self.base, self.lens[:1], out=self.slot)
        for stream, x in ((self.layer.k, self.k_in), (self.layer.v, self.v_in)):
            q = stream.quantizer
            b, h, cap, nbytes = stream.packed.shape
            tq4_compress(
                x.view(b * h, 1, x.shape[-1]),
                q.rotation,
                q.boundaries,
                bits=q.bits,
                out_packed=stream.packed.view(b * h * cap, 1, nbytes),
                out_norms=stream.norms.view(b * h * cap, 1),
                slot_mapping=self.slot,
            )
        self.lens += 1

    def attend(self, query: torch.Tensor, scaling: float | None) -> torch.Tensor | None:
        """Decode attention ``[B, H_q, 1, D]`` of ``query`` over the layer's tokens, or None
        when the last append did not go through :meth:`append` (the caller runs ``tq_decode``)."""
        if self.key is None or self.synced_len != self.layer.k.length or query.shape[2] != 1:
            return None
        attend_key = (query.shape, query.dtype, scaling)
        if attend_key != self.attend_key:
            self.attend_key, self.attend_graph = attend_key, None
            self.q_in = torch.empty(query.shape, dtype=query.dtype, device=query.device)
        self.q_in.copy_(query)
        if self.attend_graph is None:
            out = self._attend_body()
            if self.capture:
                self.attend_graph, self.out = self._try_capture(self._attend_body, query.device)
            return out
        self.attend_graph.replay()
        self.replays += 1
        return self.out

    def _attend_body(self) -> torch.Tensor:
        k, v = self.layer.k, self.layer.v
        return decode.tq_decode(
            self.q_in,
            k.packed,
            k.norms,
            v.packed,
            v.norms,
            k.quantizer.rotation,
            k.quantizer.centroids,
            v.quantizer.centroids,
            sm_scale=self.attend_key[2],
            seq_len=self.lens,
            validate=False,
        )
