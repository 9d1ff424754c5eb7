"""turboquant: TurboQuant KV-cache compression (arXiv 2504.19874) for transformer inference.

Every public name is importable from here. Names resolve lazily, so ``import turboquant``
imports neither triton, transformers nor vllm until a name that needs them is used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "turboquant.codebook": ["LloydMaxCodebook", "solve_lloyd_max"],
    "turboquant.rotation": ["random_rotation"],
    "turboquant.packing": ["pack_indices", "unpack_indices", "packed_nbytes", "index_codes", "code_order"],
    "turboquant.quantizer": ["TurboQuantMSE", "TurboQuantProd"],
    "turboquant.compressors": [
        "TurboQuantCompressorMSE",
        "TurboQuantCompressorV2",
        "CompressedKeys",
        "CompressedValues",
    ],
    "turboquant.storage": [
        "record_bytes",
        "token_bytes",
        "baseline_token_bytes",
        "compression_ratio",
        "kv_cache_bytes",
        "max_context_tokens",
    ],
    "turboquant.cache": ["CompressedDynamicCache", "CompressedKVStore"],
    "turboquant.hf.tiny": ["build_tiny_llama", "build_offline_tokenizer"],
    "turboquant.hf.attention": [
        "triton_fa_forward",
        "triton_fa_tq4_kv_forward",
        "register_triton_fa",
        "install_triton_fa",
        "install_fused_tq4_kv",
        "uninstall_fused_tq4_kv",
    ],
    "turboquant.paged": ["PagedKVLayout", "allocate_pool", "write_kv", "gather_kv"],
    "turboquant.paged_batch": ["paged_attention_forward", "paged_attention_reference"],
    "turboquant.vllm": [
        "register_tq4_backend",
        "capacity_gain",
        "bits_from_env",
        "TQ4AttentionBackend",
        "TQ4AttentionImpl",
        "TQ4FullAttentionSpec",
    ],
    "turboquant.triton": [
        "tq4_compress",
        "tq4_decompress",
        "triton_flash_attention",
        "triton_flash_attention_tq4",
        "triton_flash_attention_tq4_kv",
        "fused_qk_scores",
        "tq_paged_decode",
        "tq_decode",
    ],
    "turboquant.hf.tiny_molmo2": ["build_tiny_molmo2"],
    "turboquant.hf.molmo2": ["install_fused_attention", "uninstall_fused_attention", "FusedTurboQuantRunner"],
    "turboquant.video": ["load_video_frames", "probe_video"],
    "turboquant.benchmark": ["run_comparison", "load_model", "kv_memory_vs_context"],
}

_NAME_TO_MODULE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_NAME_TO_MODULE)


def __getattr__(name: str):
    module = _NAME_TO_MODULE.get(name)
    if module is None:
        raise AttributeError(f"module 'turboquant' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
