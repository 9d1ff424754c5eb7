"""Hugging Face attention backends over the Triton kernels, through ``AttentionInterface``.

Two named backends, registered in transformers' ``AttentionInterface`` (and, with them,
``sdpa_mask`` in ``AttentionMaskInterface`` so that models build the same boolean padding /
causal masks they build for SDPA; a pure causal mask arrives as ``None``):

* ``"triton_fa"`` → :func:`triton_fa_forward`: FlashAttention over the 16-bit K/V the model
  hands over (GQA without repeating K/V).
* ``"triton_fa_tq4_kv"`` → :func:`triton_fa_tq4_kv_forward`: attention straight from the
  compressed K/V of a :class:`~turboquant.cache.CompressedDynamicCache` (or a
  :class:`~turboquant.cache.CompressedKVStore` with compressed values). The cache reaches the
  attention function through a side channel, ``module._tq4_cache`` on every decoder attention
  module; the cache runs in ``fused_mode`` (no dequantized working buffer).

Installs are reversible and touch no model code: :func:`install_triton_fa` and
:func:`install_fused_tq4_kv` switch the decoder text config's attention implementation and
remember the previous one; :func:`uninstall_fused_tq4_kv` undoes either install exactly.
Only the decoder (the text config) is switched: vision towers keep their implementation.
The kernels run on CUDA, or on CPU under ``TRITON_INTERPRET=1``, in fp16/bf16.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from ..cache import CompressedDynamicCache, CompressedKVStore

TRITON_FA = "triton_fa"
TRITON_FA_TQ4_KV = "triton_fa_tq4_kv"
KERNEL_DTYPES = (torch.float16, torch.bfloat16)
FUSED_BITS = (2, 3, 4)

_PREVIOUS_ATTR = "_tq_previous_attn_implementation"
_CACHE_ATTR = "_tq4_cache"


def _check_call(dropout: float, kwargs: dict) -> None:
    if dropout:
        raise ValueError(f"dropout: the Triton attention backends are inference-only, got dropout={dropout}")
    for name in ("softcap", "position_bias"):
        if kwargs.get(name) is not None:
            raise ValueError(
                f"{name}: not supported by the Triton attention backends (use 'sdpa' or 'eager')"
            )


def _causal(module: torch.nn.Module, query: torch.Tensor, attention_mask, is_causal: bool | None) -> bool:
    # Same rule as transformers' sdpa_attention_forward: a materialized mask already holds the
    # causal pattern; a single query attends to every cached key.
    is_causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    return bool(is_causal) and attention_mask is None and query.shape[2] > 1


def triton_fa_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """``AttentionInterface`` function (signature of transformers' ``sdpa_attention_forward``).

    Args:
        module: the attention layer (``is_causal`` is read from it unless given).
        query: ``[B, H_q, Q, D]``; key, value: ``[B, H_kv, K, D]``; fp16/bf16.
        attention_mask: ``None`` (causal when ``Q > 1``), or a bool (True = attend) / additive
            float mask ``[B or 1, 1 or H_q, Q, K]``.
        dropout: must be 0. scaling: softmax scale (default ``D**-0.5``).

    Returns:
        ``(attn_output [B, Q, H_q, D], None)``.
    """
    from ..triton.flash_attention import triton_flash_attention

    _check_call(dropout, kwargs)
    causal = _causal(module, query, attention_mask, is_causal)
    if causal and key.shape[2] > query.shape[2]:
        # As SDPA: with no mask and more keys than queries (an empty static-cache tail), the
        # causal window is the first Q keys.
        key, value = key[:, :, : query.shape[2]], value[:, :, : query.shape[2]]
    out = triton_flash_attention(query, key, value, scaling, causal, attention_mask)
    return out.transpose(1, 2), None


def triton_fa_tq4_kv_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """``AttentionInterface`` function reading compressed K/V from ``module._tq4_cache``.

    Decode without a mask (``Q == 1``) runs ``tq_decode`` (on CUDA as the cache's replayed
    graphs, :mod:`turboquant.decode_graphs`, when its ``cuda_graphs`` is on); prefill, chunked
    prefill and padded batches run ``triton_flash_attention_tq4_kv`` with the model's mask.
    Per call the Python work is constant (a few attribute reads and views; no cache copies).
    ``key``/``value`` are only used when the layer is not compressed (sliding-window layers),
    when no cache is attached, or when they did not come from the attached cache (e.g. a
    forward with another ``past_key_values``); then it computes :func:`triton_fa_forward` on
    them.

    Returns:
        ``(attn_output [B, Q, H_q, D], None)``.
    """
    cache = getattr(module, _CACHE_ATTR, None)
    if cache is not None and query.shape[2] == 1 and attention_mask is None:
        graphed = getattr(cache, "graphed_decode", None)  # CompressedDynamicCache's CUDA graphs
        out = graphed(module.layer_idx, query, key, scaling) if graphed is not None else None
        if out is not None:
            _check_call(dropout, kwargs)
            return out.transpose(1, 2), None
    compressed = cache.compressed_for(module.layer_idx, key) if cache is not None else None
    if compressed is None:
        return triton_fa_forward(
            module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs
        )
    _check_call(dropout, kwargs)
    k_packed, k_norms, v_packed, v_norms = compressed
    k_quant, v_quant = cache.get_quantizers(module.layer_idx)
    if query.shape[2] == 1 and attention_mask is None:
        from ..triton.decode import tq_decode

        out = tq_decode(
            query,
            k_packed,
            k_norms,
            v_packed,
            v_norms,
            k_quant.rotation,
            k_quant.centroids,
            v_quant.centroids,
            sm_scale=scaling,
        )
    else:
        from ..triton.flash_attention_tq4 import triton_flash_attention_tq4_kv

        out = triton_flash_attention_tq4_kv(
            query,
            k_packed,
            k_norms,
            v_packed,
            v_norms,
            k_quant.centroids,
            k_quant.rotation,
            scaling,
            _causal(module, query, attention_mask, is_causal),
            attention_mask,
            v_centroids=v_quant.centroids,
        )
    return out.transpose(1, 2), None


def _register(name: str, fn) -> None:
    AttentionInterface.register(name, fn)
    AttentionMaskInterface.register(name, sdpa_mask)


def register_triton_fa() -> None:
    """Register ``"triton_fa"`` in transformers' ``AttentionInterface`` (and its mask function).

    Idempotent: a second call overwrites the same entries. Models then accept
    ``attn_implementation="triton_fa"``.
    """
    _register(TRITON_FA, triton_fa_forward)


def _decoder_attention(model: object) -> tuple[object, list[torch.nn.Module]]:
    """The decoder text config and the attention modules that read it, after checking that the
    model can run the kernels (fp16/bf16, supported head_dim, CUDA or the interpreter)."""
    from ..triton.compress import INTERPRET, SUPPORTED_HEAD_DIMS

    if not isinstance(model, PreTrainedModel):
        raise TypeError(f"model: expected a transformers PreTrainedModel, got {type(model).__name__}")
    config = model.config.get_text_config(decoder=True)
    modules = [
        m
        for m in model.modules()
        if getattr(m, "config", None) is config
        and isinstance(getattr(m, "layer_idx", None), int)
        and hasattr(m, "num_key_value_groups")
    ]
    if not modules:
        raise ValueError(
            f"model: found no decoder attention modules (with layer_idx and num_key_value_groups) "
            f"using the text config in {type(model).__name__}"
        )
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if head_dim not in SUPPORTED_HEAD_DIMS:
        raise ValueError(
            f"model: head_dim must be one of {SUPPORTED_HEAD_DIMS} for the kernels, got {head_dim}"
        )
    param = next(modules[0].parameters())
    if param.dtype not in KERNEL_DTYPES:
        raise ValueError(
            f"model: the Triton kernels run in float16/bfloat16, the decoder is {param.dtype} "
            "(convert it, e.g. model.to(torch.bfloat16))"
        )
    if param.device.type != "cuda" and not (INTERPRET and param.device.type == "cpu"):
        raise ValueError(
            "model: the Triton kernels need CUDA (or CPU with TRITON_INTERPRET=1), "
            f"the decoder is on {param.device}"
        )
    return config, modules


def _activate(model: PreTrainedModel, config: object, name: str) -> None:
    if not hasattr(model, _PREVIOUS_ATTR):  # a second install keeps the original to restore
        setattr(model, _PREVIOUS_ATTR, config._attn_implementation_internal)
    # The internal attribute: the public setter would also rewrite sub-configs.
    config._attn_implementation_internal = name


def install_triton_fa(model: PreTrainedModel) -> None:
    """Register ``"triton_fa"`` and make the decoder of ``model`` use it from the next forward.

    Undo with :func:`uninstall_fused_tq4_kv`. Raises ``TypeError`` for a non-model and
    ``ValueError`` when the decoder's dtype, head_dim or device cannot run the kernels.
    """
    config, _ = _decoder_attention(model)
    register_triton_fa()
    _activate(model, config, TRITON_FA)


def _check_fused_cache(cache: object) -> None:
    if isinstance(cache, CompressedDynamicCache):
        bits = {"k_bits": cache.k_bits, "v_bits": cache.v_bits}
    elif isinstance(cache, CompressedKVStore):
        if cache.v_quantizer is None:
            raise ValueError(
                "cache: the fused K+V path needs compressed values (CompressedKVStore(q, v_quantizer=...))"
            )
        kq, vq = cache.quantizer, cache.v_quantizer
        if (kq.head_dim, kq.seed, kq.rotation_kind) != (vq.head_dim, vq.seed, vq.rotation_kind):
            raise ValueError(
                "cache: K and V quantizers must share the rotation (same head_dim, seed and rotation kind), "
                f"got {kq!r} and {vq!r}"
            )
        bits = {"k_bits": kq.bits, "v_bits": vq.bits}
    else:
        raise TypeError(
            f"cache: expected a CompressedDynamicCache or CompressedKVStore, got {type(cache).__name__}"
        )
    for name, b in bits.items():
        if b not in FUSED_BITS:
            raise ValueError(
                f"cache: the fused kernels support {name} in {FUSED_BITS}, got {b} (use the unfused cache)"
            )


def install_fused_tq4_kv(model: PreTrainedModel, cache: CompressedDynamicCache | CompressedKVStore) -> None:
    """Make the decoder attend straight from ``cache``'s compressed K/V.

    Registers ``"triton_fa_tq4_kv"`` (and ``"triton_fa"``, used for uncompressed layers),
    stores ``cache`` as ``module._tq4_cache`` on every decoder attention module, switches the
    decoder's attention implementation, and puts a ``CompressedDynamicCache`` in
    ``fused_mode`` (no dequantized working buffer). Then pass the same cache to
    ``model.generate(**cache_kwargs(cache))``; install again with a fresh cache for the next
    generation. Undo with :func:`uninstall_fused_tq4_kv`.

    Raises:
        TypeError: ``model`` is not a ``PreTrainedModel`` or ``cache`` not a compressed cache.
        ValueError: bits outside (2, 3, 4), uncompressed values, or a decoder the kernels
            cannot run (dtype, head_dim, device).
    """
    config, modules = _decoder_attention(model)
    _check_fused_cache(cache)
    register_triton_fa()
    _register(TRITON_FA_TQ4_KV, triton_fa_tq4_kv_forward)
    for m in modules:
        setattr(m, _CACHE_ATTR, cache)
    if isinstance(cache, CompressedDynamicCache):
        cache.fused_mode = True
    _activate(model, config, TRITON_FA_TQ4_KV)


def uninstall_fused_tq4_kv(model: PreTrainedModel) -> None:
    """Undo :func:`install_fused_tq4_kv` or :func:`install_triton_fa`.

    Restores the decoder's previous attention implementation exactly (e.g. ``"sdpa"``),
    removes ``module._tq4_cache`` and the saved state, and takes the cache out of fused mode
    (its next update rebuilds the dequantized buffer). A model with nothing installed is left
    as is. The registered backends stay available in ``AttentionInterface``.
    """
    if not isinstance(model, PreTrainedModel):
        raise TypeError(f"model: expected a transformers PreTrainedModel, got {type(model).__name__}")
    for m in model.modules():
        cache = m.__dict__.pop(_CACHE_ATTR, None)
        if isinstance(cache, CompressedDynamicCache):
            cache.fused_mode = False
    if hasattr(model, _PREVIOUS_ATTR):
        model.config.get_text_config(decoder=True)._attn_implementation_internal = getattr(
            model, _PREVIOUS_ATTR
        )
        delattr(model, _PREVIOUS_ATTR)
