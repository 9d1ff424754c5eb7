"""Hugging Face KV caches that store TurboQuant-compressed keys and values.

Two caches, both usable as ``model.generate(cache=cache)`` on transformers 5.x (``past_key_values=``
before 5.24; :func:`turboquant.hf.cache_kwargs` picks the keyword):

* :class:`CompressedDynamicCache` — the memory-saving cache. Every ``update`` quantizes the new
  K/V tokens (bit-packed indices + fp32 norms; on CUDA with the fused Triton kernel
  ``tq4_compress`` writing straight into the cache buffers, elsewhere
  ``TurboQuantMSE.quantize_packed``) and keeps only those. For standard attention it also
  keeps a running 16-bit *working buffer* of dequantized K/V into which only the new tokens
  are dequantized per step (incremental dequantization); with ``fused_mode=True`` there is
  no working buffer and the fused kernels (:mod:`turboquant.hf.attention`) read the
  compressed tensors directly.
* :class:`CompressedKVStore` — a ``DynamicCache`` that keeps its ordinary 16-bit K/V and, as
  side storage, compressed K (and V when given a ``v_quantizer``) for fused kernels.

Compressed tensors of one layer (docs/ARCHITECTURE.md): ``packed`` uint8
``[B, H_kv, S, ceil(D*bits/8)]`` and ``norms`` fp32 ``[B, H_kv, S]``. They live in buffers with
spare capacity along ``S`` so that a decode step writes one token in place instead of copying
the whole cache; the tensors handed out are views of the first ``S`` positions (last two dims
contiguous, batch/head strides span the capacity).
"""

from __future__ import annotations

import copy
import math
import weakref
from collections.abc import Callable

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from .packing import packed_nbytes
from .quantizer import TurboQuantMSE
from .rotation import ROTATION_KINDS
from .validation import check_bits, check_tensor

CACHE_BITS = (2, 3, 4, 8)
BASELINE_DTYPE_BYTES = 2  # the reference cache is 16-bit (bf16/fp16), whatever the model runs in


def _capacity(need: int) -> int:
    # ~12.5% slack rounded to 64 tokens: few regrowth copies during decode without doubling
    # the memory of a long prefill.
    return 64 * math.ceil((need + need // 8) / 64)


def _reserve(buf: torch.Tensor, used: int, need: int) -> torch.Tensor:
    """Return ``buf`` (dim 2 = sequence) with capacity >= ``need``, keeping ``[:used]``."""
    if buf.shape[2] >= need:
        return buf
    new = buf.new_empty((*buf.shape[:2], _capacity(need), *buf.shape[3:]))
    new[:, :, :used] = buf[:, :, :used]
    return new


def _use_compress_kernel(x: torch.Tensor, quantizer: TurboQuantMSE) -> bool:
    """Whether :meth:`_PackedStream.append` runs the fused Triton compress kernel (one launch
    per stream and step, output written in place) instead of the plain-torch quantizer (about
    a dozen launches and two copies): on CUDA for the kernel's bit widths and head dims."""
    from .triton.compress import SUPPORTED_BITS, SUPPORTED_HEAD_DIMS

    return x.is_cuda and quantizer.bits in SUPPORTED_BITS and quantizer.head_dim in SUPPORTED_HEAD_DIMS


def _check_kv(key_states: object, value_states: object) -> None:
    check_tensor("key_states", key_states, ndim=4)
    check_tensor("value_states", value_states, ndim=4)
    if key_states.shape[:3] != value_states.shape[:3]:
        raise ValueError(
            "key_states and value_states: expected the same [batch, kv_heads, seq] shape, got "
            f"{tuple(key_states.shape)} and {tuple(value_states.shape)}"
        )


class _PackedStream:
    """Growable compressed storage of one stream (K or V) of one layer.

    ``packed`` uint8 ``[B, H, capacity, nbytes]`` and ``norms`` fp32 ``[B, H, capacity]``; the
    first ``length`` positions are valid.
    """

    def __init__(self, quantizer: TurboQuantMSE) -> None:
        self.quantizer = quantizer
        self.packed: torch.Tensor | None = None
        self.norms: torch.Tensor | None = None
        self.length = 0

    def append(self, x: torch.Tensor) -> None:
        """Quantize ``x`` ``[B, H, n, D]`` and append it along the sequence."""
        b, h, n = x.shape[:3]
        if self.packed is not None and (b, h) != tuple(self.packed.shape[:2]):
            raise ValueError(
                f"key/value states: expected batch and kv_heads {tuple(self.packed.shape[:2])} "
                f"like the cached ones, got {tuple(x.shape[:2])}"
            )
        end = self.length + n
        q = self.quantizer
        nbytes = packed_nbytes(q.head_dim, q.bits)
        if self.packed is None:
            cap = _capacity(end)
            self.packed = torch.empty((b, h, cap, nbytes), dtype=torch.uint8, device=x.device)
            self.norms = torch.empty((b, h, cap), dtype=torch.float32, device=x.device)
        else:
            self.packed = _reserve(self.packed, self.length, end)
            self.norms = _reserve(self.norms, self.length, end)
        packed, norms = self.packed[:, :, self.length : end], self.norms[:, :, self.length : end]
        if _use_compress_kernel(x, q):
            from .triton.compress import tq4_compress

            # [B*H, n, ...] views of the new positions (B and H merge: the buffers are dense)
            tq4_compress(
                x.reshape(b * h, n, q.head_dim),
                q.rotation,
                q.boundaries,
                bits=q.bits,
                out_packed=packed.view(b * h, n, nbytes),
                out_norms=norms.view(b * h, n),
            )
        else:
            new_packed, new_norms = q.quantize_packed(x, validate=False)
            packed.copy_(new_packed)
            norms.copy_(new_norms)
        self.length = end

    def view(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(packed [B, H, S, nbytes], norms [B, H, S])`` views of the valid positions."""
        return self.packed[:, :, : self.length], self.norms[:, :, : self.length]

    def dequantize(self, start: int, end: int, dtype: torch.dtype) -> torch.Tensor:
        """Reconstruct positions ``[start, end)`` in the original space: ``[B, H, n, D]``."""
        return self.quantizer.dequantize_packed(
            self.packed[:, :, start:end], self.norms[:, :, start:end], dtype
        )

    def crop(self, length: int) -> None:
        self.length = min(self.length, length)

    def apply_batch(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Apply a batch-dim transform (select, reorder, repeat) to the valid positions."""
        if self.packed is not None:
            packed, norms = self.view()
            self.packed, self.norms = fn(packed), fn(norms)

    def nbytes(self) -> tuple[int, int]:
        """(bytes of the valid positions, bytes allocated) of packed + norms."""
        if self.packed is None:
            return 0, 0
        used = sum(t.numel() * t.element_size() for t in self.view())
        alloc = sum(t.numel() * t.element_size() for t in (self.packed, self.norms))
        return used, alloc

    def baseline_nbytes(self) -> int:
        """Bytes the valid positions would take as a 16-bit tensor ``[B, H, S, D]``."""
        if self.packed is None:
            return 0
        b, h = self.packed.shape[:2]
        return b * h * self.length * self.quantizer.head_dim * BASELINE_DTYPE_BYTES


class _QuantizerBank:
    """Lazily built quantizers keyed by ``(head_dim, bits, device)``; K and V share a seed and
    therefore the rotation of a head_dim."""

    def __init__(self, seed: int, rotation: str = "qr") -> None:
        self.seed, self.rotation = seed, rotation
        self._bank: dict[tuple[int, int, torch.device], TurboQuantMSE] = {}

    def get(self, head_dim: int, bits: int, device: torch.device) -> TurboQuantMSE:
        key = (head_dim, bits, device)
        if key not in self._bank:
            self._bank[key] = TurboQuantMSE(head_dim, bits, seed=self.seed, rotation=self.rotation).to(device)
        return self._bank[key]


class CompressedLayer(DynamicLayer):
    """One full-attention layer of :class:`CompressedDynamicCache`.

    Holds compressed K and V (:class:`_PackedStream`) and, unless ``fused_mode``, the 16-bit
    working buffer of their dequantized values (``keys``/``values`` are views of it).
    """

    def __init__(
        self, bank: _QuantizerBank, k_bits: int, v_bits: int, fused_mode: bool, cuda_graphs: bool = True
    ) -> None:
        super().__init__()
        self.bank, self.k_bits, self.v_bits = bank, k_bits, v_bits
        self.fused_mode = fused_mode
        self.cuda_graphs = cuda_graphs
        # fused decode steps on CUDA: turboquant.decode_graphs.DecodeGraphs, made on first use
        self.decode_graphs = None
        self.k: _PackedStream | None = None
        self.v: _PackedStream | None = None
        self._kbuf: torch.Tensor | None = None
        self._vbuf: torch.Tensor | None = None
        self._deq_len = 0
        # The tensor last returned by ``update``: the fused attention checks that the key it
        # receives came from this cache before reading the compressed side.
        self.last_returned_key: torch.Tensor | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self.k = _PackedStream(self.bank.get(key_states.shape[-1], self.k_bits, self.device))
        self.v = _PackedStream(self.bank.get(value_states.shape[-1], self.v_bits, self.device))
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Compress the new tokens ``[B, H_kv, n, D]`` and return what attention needs.

        Unfused: the dequantized K/V of all cached tokens (views of the working buffer, only
        the ``n`` new tokens are dequantized). ``fused_mode``: the new ``key_states`` and
        ``value_states`` unchanged; the fused kernels read :meth:`compressed` instead.
        """
        _check_kv(key_states, value_states)
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        graphs = self._graphs(key_states)
        if graphs is None or not graphs.append(key_states, value_states):
            self.k.append(key_states)
            self.v.append(value_states)
        if self.fused_mode:
            self.drop_working_buffer()
            out = key_states, value_states
        else:
            out = self._dequantized()
        self.last_returned_key = out[0]
        return out

    def _graphs(self, key_states: torch.Tensor):
        """The layer's :class:`~turboquant.decode_graphs.DecodeGraphs` for a fused decode step
        on CUDA (one new token), else None."""
        if not (self.fused_mode and self.cuda_graphs and key_states.is_cuda and key_states.shape[2] == 1):
            return None
        if self.decode_graphs is None:
            from .decode_graphs import DecodeGraphs

            self.decode_graphs = DecodeGraphs(self)
        return self.decode_graphs

    def _dequantized(self) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.k.length
        if self._kbuf is None:
            b, h = self.k.packed.shape[:2]
            cap = self.k.packed.shape[2]
            self._kbuf = torch.empty(
                (b, h, cap, self.k.quantizer.head_dim), dtype=self.dtype, device=self.device
            )
            self._vbuf = torch.empty(
                (b, h, cap, self.v.quantizer.head_dim), dtype=self.dtype, device=self.device
            )
        self._kbuf = _reserve(self._kbuf, self._deq_len, end)
        self._vbuf = _reserve(self._vbuf, self._deq_len, end)
        if end > self._deq_len:
            self._kbuf[:, :, self._deq_len : end] = self.k.dequantize(self._deq_len, end, self.dtype)
            self._vbuf[:, :, self._deq_len : end] = self.v.dequantize(self._deq_len, end, self.dtype)
            self._deq_len = end
        self.keys, self.values = self._kbuf[:, :, :end], self._vbuf[:, :, :end]
        return self.keys, self.values

    def drop_working_buffer(self) -> None:
        """Free the dequantized buffer (fused mode reads the compressed tensors)."""
        self._kbuf = self._vbuf = self.keys = self.values = None
        self._deq_len = 0

    def compressed(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(k_packed, k_norms, v_packed, v_norms)`` views of the valid positions."""
        return (*self.k.view(), *self.v.view())

    def get_seq_length(self) -> int:
        return self.k.length if self.is_initialized else 0

    def reset(self) -> None:
        self.k = self.v = self.last_returned_key = self.decode_graphs = None
        self.drop_working_buffer()
        self.is_initialized = False

    def crop(self, tokens_to_remove: int) -> None:
        """Remove the last ``-tokens_to_remove`` tokens (a negative int, as ``DynamicLayer``)."""
        if tokens_to_remove > 0:
            raise ValueError(
                f"crop: expected a negative number of tokens to remove, got {tokens_to_remove} "
                "(the positive 'final length' form is not supported, as in DynamicLayer)"
            )
        if tokens_to_remove == 0 or not self.is_initialized:
            return
        length = max(self.k.length + tokens_to_remove, 0)
        self.k.crop(length)
        self.v.crop(length)
        self._deq_len = min(self._deq_len, length)
        if self._kbuf is not None:
            self.keys, self.values = self._kbuf[:, :, :length], self._vbuf[:, :, :length]

    def _apply_batch(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        if not self.is_initialized:
            return
        self.k.apply_batch(fn)
        self.v.apply_batch(fn)
        if self._kbuf is not None:
            self._kbuf = fn(self._kbuf[:, :, : self._deq_len])
            self._vbuf = fn(self._vbuf[:, :, : self._deq_len])
            self.keys, self.values = self._kbuf, self._vbuf

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._apply_batch(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._apply_batch(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._apply_batch(lambda t: t[indices, ...])

    def working_buffer_nbytes(self) -> int:
        if self._kbuf is None:
            return 0
        return sum(t.numel() * t.element_size() for t in (self._kbuf, self._vbuf))


class _LayerFactory:
    """``layer_class_to_replicate`` of a cache built without a config: makes the cache's next
    layer. It holds the cache weakly (a bound method would make a reference cycle, so a dropped
    cache, with its layers' CUDA graphs, would wait for the cyclic garbage collector)."""

    def __init__(self, cache: CompressedDynamicCache) -> None:
        self._cache = weakref.ref(cache)

    def __call__(self) -> CompressedLayer:
        return self._cache()._new_layer()

    # a copy or a pickle of the cache gets a factory of its own copy (as a bound method would)
    def __deepcopy__(self, memo: dict) -> _LayerFactory:
        return _LayerFactory(copy.deepcopy(self._cache(), memo))

    def __reduce__(self) -> tuple:
        return _LayerFactory, (self._cache(),)


def _layer_nbytes(layer: object) -> int:
    """Bytes of an uncompressed layer's K/V tensors (sliding-window, etc.)."""
    return sum(
        t.numel() * t.element_size()
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None))
        if isinstance(t, torch.Tensor)
    )


class CompressedDynamicCache(Cache):
    """A transformers ``Cache`` whose full-attention layers hold TurboQuant-compressed K/V.

    Pass it as ``model.generate(..., cache=CompressedDynamicCache(config=model.config))``
    (``past_key_values=`` before transformers 5.24)
    or to ``model(...)``. It is a ``Cache`` subclass with one layer object per model layer:

    * full-attention layers are :class:`CompressedLayer`: each ``update`` quantizes the new
      tokens with ``TurboQuantMSE`` (K with ``k_bits``, V with ``v_bits``; bit-packed indices,
      fp32 norms; rotation seeded by ``seed`` and shared by K and V of one head_dim);
    * sliding-window / chunked layers (from the config's ``layer_types``) and any other layer
      type stay the ordinary uncompressed transformers layers: they hold at most a window;
    * quantizers are built lazily per layer from the head_dim of the first update, so layers
      may differ in head_dim.

    Attention input. ``fused_mode=False``: ``update`` returns the dequantized K/V of all
    tokens from a running working buffer in the model dtype, into which only the new tokens are
    dequantized each step (incremental dequantization). ``fused_mode=True`` (set by
    :func:`turboquant.hf.attention.install_fused_tq4_kv`): no working buffer; ``update`` returns
    the new tokens as given and the fused attention reads :meth:`get_compressed` directly.

    Without ``config`` every layer is compressed and layers are created as they are first
    updated. ``crop`` (negative counts, as ``DynamicCache``), ``reset``, ``reorder_cache``
    (beam search), ``batch_repeat_interleave`` and ``batch_select_indices`` work like
    ``DynamicCache``; sliding layers follow their transformers semantics.

    Args:
        config: the model config (its decoder text config is used for ``layer_types``).
        k_bits, v_bits: bits per coordinate of K and V, one of 2, 3, 4, 8.
        seed: rotation seed.
        rotation: ``"qr"`` (Haar-random, the default) or ``"hadamard"`` (randomized Hadamard,
            power-of-two head_dim only): the compress kernel rotates 16-bit K/V against a
            Hadamard rotation's signs with one tensor-core product instead of three.
        fused_mode: start in fused mode (normally left to ``install_fused_tq4_kv``).
        cuda_graphs: in fused mode on CUDA, run each layer's one-token decode steps as two
            replayed CUDA graphs (:mod:`turboquant.decode_graphs`: three tensor copies and two
            replays instead of five Triton launches); False launches the kernels every step.
    """

    def __init__(
        self,
        *,
        config: object | None = None,
        k_bits: int = 4,
        v_bits: int = 4,
        seed: int = 42,
        rotation: str = "qr",
        fused_mode: bool = False,
        cuda_graphs: bool = True,
    ) -> None:
        check_bits("k_bits", k_bits, CACHE_BITS)
        check_bits("v_bits", v_bits, CACHE_BITS)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed: expected an int, got {seed!r}")
        if rotation not in ROTATION_KINDS:
            raise ValueError(f"rotation: expected one of {ROTATION_KINDS}, got {rotation!r}")
        self.k_bits, self.v_bits, self.seed, self.rotation = k_bits, v_bits, seed, rotation
        self._bank = _QuantizerBank(seed, rotation)
        self._fused_mode = bool(fused_mode)
        self.cuda_graphs = bool(cuda_graphs)
        if config is None:
            super().__init__(layer_class_to_replicate=_LayerFactory(self))
            return
        if not hasattr(config, "get_text_config"):
            raise TypeError(
                "config: expected a transformers PreTrainedConfig (e.g. model.config), "
                f"got {type(config).__name__}"
            )
        # The installed transformers' own dispatch (layer_types, sliding windows, shared-KV
        # layers) decides the layer structure; its plain full-attention layers become compressed.
        reference = DynamicCache(config=config)
        layers = [self._new_layer() if type(layer) is DynamicLayer else layer for layer in reference.layers]
        super().__init__(layers=layers)

    def _new_layer(self) -> CompressedLayer:
        return CompressedLayer(self._bank, self.k_bits, self.v_bits, self._fused_mode, self.cuda_graphs)

    @property
    def fused_mode(self) -> bool:
        """True: no dequantized working buffer; fused kernels read the compressed tensors."""
        return self._fused_mode

    @fused_mode.setter
    def fused_mode(self, value: bool) -> None:
        self._fused_mode = bool(value)
        for layer in self.layers:
            if isinstance(layer, CompressedLayer):
                layer.fused_mode = self._fused_mode
                if self._fused_mode:
                    layer.drop_working_buffer()

    def is_compressed(self, layer_idx: int) -> bool:
        """Whether layer ``layer_idx`` stores compressed K/V (False for sliding-window layers)."""
        return 0 <= layer_idx < len(self.layers) and isinstance(self.layers[layer_idx], CompressedLayer)

    def _compressed_layer(self, layer_idx: int) -> CompressedLayer:
        if not self.is_compressed(layer_idx):
            kind = type(self.layers[layer_idx]).__name__ if 0 <= layer_idx < len(self.layers) else "no layer"
            raise ValueError(
                f"layer_idx: expected a compressed layer (0..{len(self.layers) - 1}), "
                f"got {layer_idx} ({kind})"
            )
        layer = self.layers[layer_idx]
        if not layer.is_initialized:
            raise ValueError(f"layer_idx: layer {layer_idx} holds no tokens yet")
        return layer

    def get_compressed(self, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(k_packed, k_norms, v_packed, v_norms)`` of a layer: uint8 ``[B, H_kv, S, D*b/8]``
        and fp32 ``[B, H_kv, S]`` views (last two dims contiguous)."""
        return self._compressed_layer(layer_idx).compressed()

    def compressed_for(
        self, layer_idx: int, key: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """:meth:`get_compressed` if layer ``layer_idx`` is compressed and ``key`` is the tensor
        its last ``update`` returned (so the compressed side holds exactly the tokens the model
        attends to), else None. Constant time: the fused attention calls it every step."""
        layer = self.layers[layer_idx] if layer_idx < len(self.layers) else None
        if not isinstance(layer, CompressedLayer) or layer.last_returned_key is not key:
            return None
        return layer.compressed()

    def graphed_decode(
        self, layer_idx: int, query: torch.Tensor, key: torch.Tensor, scaling: float | None
    ) -> torch.Tensor | None:
        """Decode attention ``[B, H_q, 1, D]`` of layer ``layer_idx`` by its CUDA graphs when
        ``key`` is what its last ``update`` returned and that append went through the graphs
        (fused mode, CUDA, ``cuda_graphs``), else None."""
        layer = self.layers[layer_idx] if layer_idx < len(self.layers) else None
        if not isinstance(layer, CompressedLayer) or layer.last_returned_key is not key:
            return None
        graphs = layer.decode_graphs
        return graphs.attend(query, scaling) if graphs is not None else None

    def get_quantizers(self, layer_idx: int) -> tuple[TurboQuantMSE, TurboQuantMSE]:
        """``(k_quantizer, v_quantizer)`` of a layer: rotation and centroids for the kernels."""
        layer = self._compressed_layer(layer_idx)
        return layer.k.quantizer, layer.v.quantizer

    def nbytes(self) -> int:
        """Bytes of the stored cache: compressed tensors (valid positions) plus uncompressed
        layers' K/V. Excludes the dequantized working buffer (see :meth:`storage_report`)."""
        report = self.storage_report()
        return report["compressed_bytes"] + report["uncompressed_layer_bytes"]

    def storage_report(self) -> dict[str, float | int | bool]:
        """Measured sizes, from the tensors the cache holds.

        Keys: ``tokens`` (sequence length of layer 0), ``compressed_layers``,
        ``uncompressed_layers``, ``compressed_bytes`` (packed indices + fp32 norms of the valid
        positions), ``allocated_compressed_bytes`` (including spare capacity),
        ``uncompressed_layer_bytes`` (sliding-window layers' K/V as stored),
        ``total_bytes`` (compressed + uncompressed layers), ``baseline_bytes`` (the same
        tokens in a 16-bit cache: compressed layers at ``B*H*S*D*2`` bytes per K and per V,
        plus the uncompressed layers' K/V at 2 bytes per element), ``ratio``
        (baseline / total), ``working_buffer_bytes`` (the dequantized buffer of the unfused
        path, 0 in fused mode: memory on top of ``total_bytes``), ``fused_mode``, ``k_bits``,
        ``v_bits``.
        """
        compressed = allocated = baseline = uncompressed = working = 0
        n_comp = n_uncomp = 0
        for layer in self.layers:
            if isinstance(layer, CompressedLayer):
                n_comp += 1
                if layer.is_initialized:
                    for stream in (layer.k, layer.v):
                        used, alloc = stream.nbytes()
                        compressed += used
                        allocated += alloc
                        baseline += stream.baseline_nbytes()
                    working += layer.working_buffer_nbytes()
            else:
                n_uncomp += 1
                nbytes = _layer_nbytes(layer)
                uncompressed += nbytes
                if nbytes:
                    baseline += nbytes // layer.keys.element_size() * BASELINE_DTYPE_BYTES
        total = compressed + uncompressed
        return {
            "tokens": self.get_seq_length(),
            "compressed_layers": n_comp,
            "uncompressed_layers": n_uncomp,
            "compressed_bytes": compressed,
            "allocated_compressed_bytes": allocated,
            "uncompressed_layer_bytes": uncompressed,
            "total_bytes": total,
            "baseline_bytes": baseline,
            "ratio": baseline / total if total else float("nan"),
            "working_buffer_bytes": working,
            "fused_mode": self._fused_mode,
            "k_bits": self.k_bits,
            "v_bits": self.v_bits,
        }

    def __repr__(self) -> str:
        return (
            f"CompressedDynamicCache(k_bits={self.k_bits}, v_bits={self.v_bits}, seed={self.seed}, "
            f"rotation={self.rotation!r}, fused_mode={self._fused_mode}, layers={len(self.layers)})"
        )


class CompressedKVStore(DynamicCache):
    """A ``DynamicCache`` with compressed side storage for fused kernels.

    ``update`` stores K/V in the ordinary ``DynamicCache`` layers (and returns them, so any
    attention implementation still works) and also appends the compressed keys (and values,
    when ``v_quantizer`` is given) to per-layer side storage: packed uint8
    ``[B, H_kv, S, D*b/8]`` + fp32 norms ``[B, H_kv, S]``. It saves no memory by itself (the
    16-bit K/V stay); :class:`CompressedDynamicCache` in fused mode is the memory-saving cache.

    Args:
        quantizer: ``TurboQuantMSE`` for keys (moved in place to the device of the first keys).
        v_quantizer: ``TurboQuantMSE`` for values (K+V path), or None (keys only).

    Attributes:
        quantizer, v_quantizer; rotation_T: ``quantizer.rotation.T`` (``(D, D)`` fp32, for query
        pre-rotation ``q @ rotation.T``); centroids: the key codebook ``(2**bits,)`` fp32.
    """

    def __init__(self, quantizer: TurboQuantMSE, v_quantizer: TurboQuantMSE | None = None) -> None:
        for name, q in (("quantizer", quantizer), ("v_quantizer", v_quantizer)):
            if q is not None and not isinstance(q, TurboQuantMSE):
                raise TypeError(f"{name}: expected a TurboQuantMSE, got {type(q).__name__}")
        if quantizer is None:
            raise TypeError("quantizer: expected a TurboQuantMSE, got None")
        super().__init__()
        self.quantizer, self.v_quantizer = quantizer, v_quantizer
        self._k: list[_PackedStream] = []
        self._v: list[_PackedStream | None] = []
        self.last_returned_keys: list[torch.Tensor | None] = []

    @property
    def rotation_T(self) -> torch.Tensor:
        return self.quantizer.rotation.T

    @property
    def centroids(self) -> torch.Tensor:
        return self.quantizer.centroids

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        layer_idx: int,
        *args,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``[B, H_kv, n, D]`` K/V; returns the full 16-bit ``(keys, values)`` like
        ``DynamicCache.update``; compressed copies go to side storage."""
        _check_kv(key_states, value_states)
        for q in (self.quantizer, self.v_quantizer):
            if q is not None and q.device != key_states.device:
                q.to(key_states.device)
        while len(self._k) <= layer_idx:
            self._k.append(_PackedStream(self.quantizer))
            self._v.append(_PackedStream(self.v_quantizer) if self.v_quantizer is not None else None)
            self.last_returned_keys.append(None)
        self._k[layer_idx].append(key_states)
        if self._v[layer_idx] is not None:
            self._v[layer_idx].append(value_states)
        keys, values = super().update(key_states, value_states, layer_idx, *args, **kwargs)
        self.last_returned_keys[layer_idx] = keys
        return keys, values

    def _stream(self, layer_idx: int) -> int:
        if not 0 <= layer_idx < len(self._k) or self._k[layer_idx].packed is None:
            raise ValueError(
                f"layer_idx: expected a layer holding tokens (0..{len(self._k) - 1}), got {layer_idx}"
            )
        return layer_idx

    def get_compressed_key(self, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(packed uint8 [B, H_kv, S, D*b/8], norms fp32 [B, H_kv, S])`` of a layer's keys."""
        return self._k[self._stream(layer_idx)].view()

    def get_compressed(self, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(k_packed, k_norms, v_packed, v_norms)``; needs a ``v_quantizer``."""
        i = self._stream(layer_idx)
        if self._v[i] is None:
            raise ValueError("get_compressed: values are not compressed (construct with v_quantizer=...)")
        return (*self._k[i].view(), *self._v[i].view())

    def get_quantizers(self, layer_idx: int) -> tuple[TurboQuantMSE, TurboQuantMSE | None]:
        """``(quantizer, v_quantizer)`` (the same for every layer)."""
        self._stream(layer_idx)
        return self.quantizer, self.v_quantizer

    def is_compressed(self, layer_idx: int) -> bool:
        """Whether layer ``layer_idx`` holds compressed keys *and* values."""
        return 0 <= layer_idx < len(self._k) and self._v[layer_idx] is not None

    def compressed_for(
        self, layer_idx: int, key: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """:meth:`get_compressed` if the layer holds compressed K and V and ``key`` is what its
        last ``update`` returned, else None (constant time)."""
        if not self.is_compressed(layer_idx) or self.last_returned_keys[layer_idx] is not key:
            return None
        return self.get_compressed(layer_idx)

    def _streams(self) -> list[_PackedStream]:
        return [s for s in (*self._k, *self._v) if s is not None]

    def storage_report(self) -> dict[str, int | float]:
        """``compressed_bytes`` (side storage, valid positions), ``baseline_bytes`` (those
        streams in 16-bit), ``ratio``, and ``uncompressed_bytes`` (the DynamicCache K/V it also
        keeps)."""
        compressed = sum(s.nbytes()[0] for s in self._streams())
        baseline = sum(s.baseline_nbytes() for s in self._streams())
        return {
            "tokens": self.get_seq_length(),
            "compressed_bytes": compressed,
            "baseline_bytes": baseline,
            "ratio": baseline / compressed if compressed else float("nan"),
            "uncompressed_bytes": sum(_layer_nbytes(layer) for layer in self.layers),
        }

    def reset(self) -> None:
        super().reset()
        self._k, self._v, self.last_returned_keys = [], [], []

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)
        for stream, layer in zip(self._k, self.layers, strict=False):
            stream.crop(layer.get_seq_length())
        for stream, layer in zip(self._v, self.layers, strict=False):
            if stream is not None:
                stream.crop(layer.get_seq_length())

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        super().reorder_cache(beam_idx)
        for s in self._streams():
            s.apply_batch(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_repeat_interleave(self, repeats: int) -> None:
        super().batch_repeat_interleave(repeats)
        for s in self._streams():
            s.apply_batch(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        for s in self._streams():
            s.apply_batch(lambda t: t[indices, ...])
