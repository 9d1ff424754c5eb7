"""The TQ4 attention backend for vLLM 0.32: compressed paged KV cache (imports vllm).

How vLLM meets it:

- **Selection**: :func:`turboquant.vllm.register_tq4_backend` registers
  :class:`TQ4AttentionBackend` as ``AttentionBackendEnum.CUSTOM`` (``--attention-backend
  CUSTOM``); ``get_name()`` is ``"CUSTOM"`` because attention layers look their backend up in
  that enum by name.
- **Pages**: :meth:`TQ4AttentionBackend.customize_spec` (vLLM's hook for backends that pack
  their cache) turns each layer's ``FullAttentionSpec`` into a :class:`TQ4FullAttentionSpec`:
  uint8, one "head slot" of ``bytes_per_token`` bytes per token. vLLM's own
  ``page_size_bytes`` (``num_heads * block_size * state_content_bytes``) is then the compressed
  page, so its allocator provisions compressed pages and hands each layer a uint8
  ``[num_blocks, 1, block_size, bytes_per_token]`` view: the pool of
  :mod:`turboquant.paged` with a unit head axis.
- **Forward**: :class:`TQ4AttentionImpl` writes the new K/V through ``slot_mapping`` and
  attends with :func:`turboquant.paged_batch.paged_attention_forward` (paged decode kernel
  for decodes, fused FlashAttention on bounded scratch for prefills).
- **CUDA graphs**: the builder declares ``AttentionCGSupport.NEVER``, so vLLM runs attention
  outside its (piecewise) graphs; the decode-only path itself has no host syncs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from vllm.v1.attention.backend import (
    AttentionBackend,
    AttentionCGSupport,
    AttentionImpl,
    AttentionMetadata,
    AttentionMetadataBuilder,
    AttentionType,
    CommonAttentionMetadata,
)
from vllm.v1.kv_cache_interface import AttentionSpec, FullAttentionSpec, KVCacheLayout, replace_as

from ..paged import PagedKVLayout
from ..paged_batch import paged_attention_forward
from ..quantizer import TurboQuantMSE
from . import ROTATION_ENV, bits_from_env, rotation_from_env

# Block sizes the paged kernels take (powers of two; vLLM splits larger manager blocks).
KERNEL_BLOCK_SIZES = [16, 32, 64, 128]
HEAD_SIZES = [64, 96, 128, 256]
ROTATION_SEED = 42


@dataclass(frozen=True, kw_only=True)
class TQ4FullAttentionSpec(FullAttentionSpec):
    """A ``FullAttentionSpec`` whose pages hold TurboQuant records.

    ``dtype`` is uint8, ``num_head_slots`` 1 and ``state_content_bytes`` the layout's
    ``bytes_per_token`` (all KV heads' K indices and norms, then their V's; laid out
    head-major within each page, :mod:`turboquant.paged`), so vLLM's
    ``page_size_bytes`` is ``block_size * bytes_per_token``. Grouped with full attention by
    vLLM's spec registry (it is a subclass).
    """

    k_bits: int = 4
    v_bits: int = 4

    @classmethod
    def from_spec(cls, spec: AttentionSpec, k_bits: int, v_bits: int) -> TQ4FullAttentionSpec:
        """The TQ4 spec of a layer whose uncompressed spec is ``spec``."""
        if not isinstance(spec, FullAttentionSpec) or spec.sliding_window or spec.attention_chunk_size:
            raise ValueError(
                f"TQ4 attention supports full (global) attention layers only, got {type(spec).__name__} "
                f"(sliding_window={getattr(spec, 'sliding_window', None)}, "
                f"attention_chunk_size={getattr(spec, 'attention_chunk_size', None)})"
            )
        if spec.head_size_v != spec.head_size:
            raise ValueError(
                f"TQ4 attention needs equal K and V head sizes, got {spec.head_size}/{spec.head_size_v}"
            )
        layout = PagedKVLayout(spec.num_kv_heads, spec.head_size, k_bits, v_bits)
        return replace_as(
            spec,
            cls,
            dtype=torch.uint8,
            num_head_slots=1,
            state_content_bytes=layout.bytes_per_token,
            k_bits=k_bits,
            v_bits=v_bits,
        )

    @property
    def layout(self) -> PagedKVLayout:
        """The byte layout of the pages."""
        return PagedKVLayout(self.num_kv_heads, self.head_size, self.k_bits, self.v_bits)

    @classmethod
    def merge(cls, specs: list[TQ4FullAttentionSpec]) -> TQ4FullAttentionSpec:
        bits = {(s.k_bits, s.v_bits) for s in specs}
        if len(bits) != 1:
            raise ValueError(
                f"All TQ4 layers of one KV cache group must use the same bits, got {sorted(bits)}"
            )
        k_bits, v_bits = bits.pop()
        merged = super().merge(specs)  # keeps the AttentionSpec fields, not ours
        return replace(merged, k_bits=k_bits, v_bits=v_bits)


@dataclass
class TQ4AttentionMetadata(AttentionMetadata):
    """Per-batch metadata (vLLM's varlen form, see :mod:`turboquant.paged_batch`)."""

    num_actual_tokens: int  # tokens without padding
    num_reqs: int
    max_query_len: int
    max_seq_len: int  # host upper bound of seq_lens
    query_start_loc: torch.Tensor  # int32 [num_reqs + 1], device
    query_start_loc_cpu: torch.Tensor  # the same on the host (prefill bookkeeping without a sync)
    seq_lens: torch.Tensor  # int32 [num_reqs], cached + new tokens, device
    seq_lens_cpu: torch.Tensor | None  # host copy, exact for prefill rows (all the host path reads)
    block_table: torch.Tensor  # int32 [num_reqs, max_blocks]
    slot_mapping: torch.Tensor  # int64 [num_tokens]


class TQ4AttentionMetadataBuilder(AttentionMetadataBuilder[TQ4AttentionMetadata]):
    """Builds :class:`TQ4AttentionMetadata`; asks vLLM to put decodes first in the batch."""

    _cudagraph_support: ClassVar[AttentionCGSupport] = AttentionCGSupport.NEVER

    def __init__(self, kv_cache_spec, layer_names, vllm_config, device) -> None:
        super().__init__(kv_cache_spec, layer_names, vllm_config, device)
        # Decodes first: the decode rows are then a prefix of the batch (slices, no gathers).
        self._init_reorder_batch_threshold(1)

    def build(
        self, common_prefix_len: int, common_attn_metadata: CommonAttentionMetadata, fast_build: bool = False
    ) -> TQ4AttentionMetadata:
        cam = common_attn_metadata
        return TQ4AttentionMetadata(
            num_actual_tokens=cam.num_actual_tokens,
            num_reqs=cam.num_reqs,
            max_query_len=cam.max_query_len,
            max_seq_len=cam.max_seq_len,
            query_start_loc=cam.query_start_loc,
            query_start_loc_cpu=cam.query_start_loc_cpu,
            seq_lens=cam.seq_lens,
            seq_lens_cpu=cam.seq_lens_cpu_upper_bound,
            block_table=cam.block_table_tensor,
            slot_mapping=cam.slot_mapping,
        )


class TQ4AttentionBackend(AttentionBackend):
    """TurboQuant compressed paged KV cache (K/V bits from ``TURBOQUANT_K_BITS``/``_V_BITS``)."""

    accept_output_buffer: bool = True
    forward_includes_kv_cache_update: bool = True
    supported_dtypes: ClassVar[list[torch.dtype]] = [torch.float16, torch.bfloat16]
    # The cache format is ours: vLLM's own kv-cache dtypes (fp8, ...) do not apply.
    supported_kv_cache_dtypes: ClassVar[list[str]] = ["auto"]

    @staticmethod
    def get_name() -> str:
        return "CUSTOM"

    @staticmethod
    def get_impl_cls() -> type[TQ4AttentionImpl]:
        return TQ4AttentionImpl

    @staticmethod
    def get_builder_cls() -> type[TQ4AttentionMetadataBuilder]:
        return TQ4AttentionMetadataBuilder

    @staticmethod
    def get_supported_kernel_block_sizes(kv_cache_spec=None) -> list[int]:
        return list(KERNEL_BLOCK_SIZES)

    @classmethod
    def get_supported_head_sizes(cls) -> list[int]:
        return list(HEAD_SIZES)

    @classmethod
    def supports_attn_type(cls, attn_type: str) -> bool:
        return attn_type == AttentionType.DECODER

    @classmethod
    def supported_kv_cache_layouts(cls) -> tuple[KVCacheLayout, ...]:
        # Layer-major layouts keep each layer's pages one contiguous [blocks, block_size, bytes]
        # tensor, which the kernels address by byte offsets (with one head slot, H is trivial).
        return (KVCacheLayout.LBNHC, KVCacheLayout.LBHNC)

    @classmethod
    def customize_spec(cls, spec: AttentionSpec) -> AttentionSpec:
        if isinstance(spec, TQ4FullAttentionSpec):
            return spec
        k_bits, v_bits = bits_from_env()
        return TQ4FullAttentionSpec.from_spec(spec, k_bits, v_bits)

    @staticmethod
    def get_kv_cache_shape(
        num_blocks: int, block_size: int, num_kv_heads: int, head_size: int, cache_dtype_str: str = "auto"
    ) -> tuple[int, int, int]:
        """Packed pool shape ``(num_blocks, block_size, bytes_per_token)`` for the env's bits.

        A block's ``block_size * bytes_per_token`` bytes hold, head-major, ``[K indices
        [H, block_size, D*k_bits/8] | K norms fp32 [H, block_size] | V indices | V norms]``
        (:class:`turboquant.paged.PagedKVLayout`). (vLLM 0.32
        derives the cache view from the spec instead; this is the same shape without the unit
        head-slot axis.)
        """
        if cache_dtype_str != "auto":
            raise ValueError(
                f"cache_dtype_str: TQ4 pages have their own format, expected 'auto', got {cache_dtype_str!r}"
            )
        k_bits, v_bits = bits_from_env()
        layout = PagedKVLayout(num_kv_heads, head_size, k_bits, v_bits)
        return (num_blocks, block_size, layout.bytes_per_token)


_QUANTIZERS: dict[tuple[int, int, str, torch.device], TurboQuantMSE] = {}


def _quantizer(head_dim: int, bits: int, rotation: str, device: torch.device) -> TurboQuantMSE:
    """One quantizer per (head_dim, bits, rotation kind, device), shared by all layers (same
    rotation seed)."""
    key = (head_dim, bits, rotation, device)
    if key not in _QUANTIZERS:
        _QUANTIZERS[key] = TurboQuantMSE(head_dim, bits, seed=ROTATION_SEED, rotation=rotation).to(device)
    return _QUANTIZERS[key]


class TQ4AttentionImpl(AttentionImpl[TQ4AttentionMetadata]):
    """Compress new K/V into the paged pool, attend over it (decode kernel / fused prefill)."""

    def __init__(
        self,
        num_heads: int,
        head_size: int,
        scale: float,
        num_kv_heads: int | None = None,
        alibi_slopes: list[float] | None = None,
        sliding_window: int | None = None,
        kv_cache_dtype: str = "auto",
        logits_soft_cap: float | None = None,
        attn_type: str = AttentionType.DECODER,
        kv_sharing_target_layer_name: str | None = None,
        **extra_impl_args,
    ) -> None:
        options = {
            "alibi_slopes": alibi_slopes,
            "sliding_window": sliding_window,
            "logits_soft_cap": logits_soft_cap,
            "kv_sharing_target_layer_name": kv_sharing_target_layer_name,
            **extra_impl_args,  # e.g. sinks
        }
        unsupported = sorted(name for name, value in options.items() if value is not None)
        if unsupported:
            raise NotImplementedError(f"TQ4 attention does not support {unsupported}")
        if attn_type != AttentionType.DECODER:
            raise NotImplementedError(f"TQ4 attention supports decoder self-attention only, got {attn_type}")
        if kv_cache_dtype != "auto":
            raise ValueError(
                f"kv_cache_dtype: TQ4 pages have their own format, expected 'auto', got {kv_cache_dtype!r}"
            )
        self.num_heads = num_heads
        self.head_size = head_size
        self.scale = float(scale) if scale is not None else 1.0 / math.sqrt(head_size)
        self.num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        self.kv_cache_dtype = kv_cache_dtype
        self.attn_type = attn_type
        k_bits, v_bits = bits_from_env()
        self.layout = PagedKVLayout(self.num_kv_heads, head_size, k_bits, v_bits)
        self.rotation = rotation_from_env()
        if self.rotation == "hadamard" and head_size & (head_size - 1):
            raise ValueError(
                f"{ROTATION_ENV}=hadamard needs a power-of-two head size, got {head_size}; use qr"
            )

    def forward(
        self,
        layer,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        kv_cache: torch.Tensor,
        attn_metadata: TQ4AttentionMetadata | None,
        output: torch.Tensor,
        output_scale: torch.Tensor | None = None,
        output_block_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """query ``[T, H_q, D]``, key/value ``[T, H_kv, D]``, kv_cache uint8
        ``[num_blocks, 1, block_size, bytes_per_token]``, output ``[T, H_q, D]``."""
        if output_scale is not None or output_block_scale is not None:
            raise NotImplementedError("TQ4 attention does not support fused output quantization")
        if attn_metadata is None:  # profiling / warm-up run without a batch
            return output
        bpt = self.layout.bytes_per_token
        if kv_cache.dim() != 4 or kv_cache.shape[1] != 1 or kv_cache.shape[3] != bpt:
            raise ValueError(
                f"kv_cache: expected [num_blocks, 1, block_size, {bpt}] (TQ4 pages of {self.layout}), "
                f"got {tuple(kv_cache.shape)}: was the spec built with other TURBOQUANT_*_BITS?"
            )
        if not kv_cache.is_contiguous():
            raise ValueError(
                "kv_cache: expected contiguous pages (a layer-major KV cache layout, LBNHC or LBHNC)"
            )
        pool = kv_cache.view(kv_cache.shape[0], kv_cache.shape[2], kv_cache.shape[3])
        device = query.device
        k_q = _quantizer(self.head_size, self.layout.k_bits, self.rotation, device)
        v_q = _quantizer(self.head_size, self.layout.v_bits, self.rotation, device)
        md = attn_metadata
        n = md.num_actual_tokens
        paged_attention_forward(
            query[:n],
            key[:n],
            value[:n],
            pool,
            self.layout,
            slot_mapping=md.slot_mapping[:n],
            block_table=md.block_table,
            seq_lens=md.seq_lens,
            query_start_loc=md.query_start_loc,
            k_quantizer=k_q,
            v_quantizer=v_q,
            sm_scale=self.scale,
            max_query_len=md.max_query_len if n == md.num_reqs else None,
            max_seq_len=min(md.max_seq_len, md.block_table.shape[1] * pool.shape[1]),
            query_start_loc_cpu=md.query_start_loc_cpu,
            seq_lens_cpu=md.seq_lens_cpu,
            validate=False,  # block tables come from vLLM's allocator; checking them costs a sync
            out=output[:n],
        )
        return output
