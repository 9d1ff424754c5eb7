"""Fused TurboQuant attention for Molmo2 (transformers' native ``Molmo2ForConditionalGeneration``).

* :func:`install_fused_attention` / :func:`uninstall_fused_attention`: the low-level switch
  (the seed API). Install makes the Molmo2 text decoder attend straight from compressed K and
  V through :func:`turboquant.hf.attention.install_fused_tq4_kv` and returns the
  :class:`~turboquant.cache.CompressedKVStore` to pass as ``generate``'s cache
  (:func:`turboquant.hf.cache_kwargs`). That store also keeps the 16-bit K/V (so it saves no
  memory); uninstall restores the model exactly.
* :class:`FusedTurboQuantRunner`: the high-level path. It samples the clip's frames
  (:func:`turboquant.video.load_video_frames`), runs the model's own processor, attends from
  a :class:`~turboquant.cache.CompressedDynamicCache` in fused mode (only packed indices and
  fp32 norms are stored: the memory-saving cache), generates greedily, uninstalls, and
  reports the cache's measured bytes and the prefill/decode times.

The vision tower is untouched; only the decoder's attention changes. The kernels run on CUDA
in bf16/fp16, or on CPU under ``TRITON_INTERPRET=1`` (slow, for tests and the tiny model).
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from ..cache import CompressedDynamicCache, CompressedKVStore
from ..quantizer import TurboQuantMSE
from ..validation import check_bits
from ..video import MAX_FRAMES, MAX_PIXELS, load_video_frames
from .attention import FUSED_BITS, install_fused_tq4_kv, uninstall_fused_tq4_kv


def is_molmo2(model: object) -> bool:
    """Whether ``model`` is a Molmo2 model (a ``PreTrainedModel`` whose config is ``molmo2``)."""
    return isinstance(model, PreTrainedModel) and getattr(model.config, "model_type", None) == "molmo2"


def check_molmo2(model: object) -> PreTrainedModel:
    """Raise ``TypeError`` unless ``model`` is a Molmo2 model; return it."""
    if not is_molmo2(model):
        got = type(model).__name__
        if isinstance(model, PreTrainedModel):
            got += f" (config.model_type {getattr(model.config, 'model_type', None)!r})"
        raise TypeError(
            "model: expected a Molmo2 model (transformers' Molmo2ForConditionalGeneration, "
            f"config.model_type 'molmo2', e.g. allenai/Molmo2-4B or build_tiny_molmo2()), got {got}"
        )
    return model


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {seed!r}")
    return seed


def text_dims(model: PreTrainedModel) -> dict[str, int]:
    """``num_layers``, ``num_kv_heads``, ``head_dim`` of a model's decoder (its text config)."""
    config = model.config.get_text_config(decoder=True)
    heads = config.num_attention_heads
    return {
        "num_layers": config.num_hidden_layers,
        "num_kv_heads": getattr(config, "num_key_value_heads", None) or heads,
        "head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads,
    }


def install_fused_attention(model: PreTrainedModel, bits: int = 4, *, seed: int = 42) -> CompressedKVStore:
    """Make every Molmo2 text attention layer attend from TurboQuant-compressed K and V.

    Args:
        model: a Molmo2 model in bf16/fp16, on CUDA (or CPU with ``TRITON_INTERPRET=1``).
        bits: bits per coordinate for K and V, one of 2, 3, 4 (4: nibble packing, 3.76×).
        seed: rotation seed (K and V share the rotation).

    Returns:
        A :class:`~turboquant.cache.CompressedKVStore` (K and V compressed into side storage)
        to pass as ``model.generate(..., **cache_kwargs(store))``; install again for a fresh
        store per generation. Undo with :func:`uninstall_fused_attention`.

    Raises:
        TypeError: not a Molmo2 model; bits or seed not an int.
        ValueError: bits outside (2, 3, 4); a decoder the kernels cannot run (dtype, device).
    """
    check_molmo2(model)
    check_bits("bits", bits, FUSED_BITS)
    _check_seed(seed)
    head_dim = text_dims(model)["head_dim"]
    store = CompressedKVStore(
        TurboQuantMSE(head_dim, bits, seed), v_quantizer=TurboQuantMSE(head_dim, bits, seed)
    )
    install_fused_tq4_kv(model, store)
    return store


def uninstall_fused_attention(model: PreTrainedModel) -> None:
    """Restore the attention of a Molmo2 model patched by :func:`install_fused_attention`
    (or :class:`FusedTurboQuantRunner`); a model with nothing installed is left as is."""
    check_molmo2(model)
    uninstall_fused_tq4_kv(model)


def _check_processor(processor: object):
    needed = ("tokenizer", "apply_chat_template")
    if not (callable(processor) and all(hasattr(processor, a) for a in needed)):
        raise TypeError(
            "processor: expected a Molmo2 processor (AutoProcessor of the checkpoint), "
            f"got {type(processor).__name__}"
        )
    return processor


def build_molmo2_inputs(
    processor,
    prompt: str,
    video_path=None,
    *,
    max_frames: int = MAX_FRAMES,
    max_pixels: int = MAX_PIXELS,
    device: torch.device | str | None = None,
):
    """Molmo2 model inputs for one user turn: ``prompt`` and, optionally, a video clip.

    The frames are sampled by :func:`turboquant.video.load_video_frames` (Molmo2's rule: at
    most 2 per second, at most ``max_frames``) and given to ``processor`` (the model's own
    Molmo2 processor) with their timestamps and ``do_sample_frames=False``; the prompt goes
    through the processor's chat template with a video part before the text.

    Returns:
        A ``BatchFeature`` on ``device``: ``input_ids`` ``[1, S]``, ``attention_mask``,
        ``mm_token_type_ids`` and, with a video, ``pixel_values_videos``,
        ``video_token_pooling``, ``video_grids``.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt: expected a non-empty string, got {prompt!r}")
    _check_processor(processor)
    content = ([{"type": "video"}] if video_path is not None else []) + [{"type": "text", "text": prompt}]
    text = processor.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )
    if video_path is None:
        inputs = processor(text=text, return_tensors="pt")
    else:
        frames, metadata = load_video_frames(video_path, max_frames, max_pixels)
        inputs = processor(
            text=text, videos=[frames], video_metadata=[metadata], do_sample_frames=False, return_tensors="pt"
        )
    return inputs.to(device) if device is not None else inputs


class FusedTurboQuantRunner:
    """Patch a Molmo2 model, answer one prompt (about a clip) with fused TurboQuant attention,
    and clean up.

    Args:
        model: a Molmo2 model (bf16/fp16; CUDA, or CPU with ``TRITON_INTERPRET=1``).
        processor: its Molmo2 processor.
        bits: bits per coordinate for K and V, one of 2, 3, 4.
        seed: rotation seed.
        max_frames: most frames sampled from a clip.

    Example::

        runner = FusedTurboQuantRunner(model, processor, bits=4)
        text, stats = runner.generate("What is moving?", video_path="clip.mp4", max_new_tokens=64)
    """

    def __init__(
        self, model, processor, bits: int = 4, seed: int = 42, *, max_frames: int = MAX_FRAMES
    ) -> None:
        self.model = check_molmo2(model)
        self.bits = check_bits("bits", bits, FUSED_BITS)
        self.seed = _check_seed(seed)
        self.processor = _check_processor(processor)
        if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
            raise ValueError(f"max_frames: expected an int >= 1, got {max_frames!r}")
        self.max_frames = max_frames

    def generate(self, prompt: str, video_path=None, max_new_tokens: int = 256) -> tuple[str, dict]:
        """Answer ``prompt`` (about the clip at ``video_path``, if given) greedily.

        Returns:
            ``(text, stats)``. ``stats``: ``bits``, ``video_frames``, ``prompt_tokens``,
            ``new_tokens``, ``cache_tokens`` (tokens in the cache: prompt + new − 1),
            ``kv_bytes_baseline`` (the same cache in 16 bits), ``kv_bytes_compressed`` (packed
            indices + fp32 norms, measured from the cache's tensors), ``compression_ratio``,
            ``prefill_ms`` (vision + prompt, to the first token), ``decode_ms`` (the other
            tokens), ``decode_tokens_per_s``, ``num_layers``, ``num_kv_heads``, ``head_dim``.

        Raises:
            ValueError: empty prompt, bad ``max_new_tokens``, a missing/corrupt/empty/non-video
                file (see :func:`turboquant.video.probe_video`), or a model the kernels cannot run.
        """
        from ..benchmark import check_max_new_tokens, timed_generate

        check_max_new_tokens(max_new_tokens)
        inputs = build_molmo2_inputs(
            self.processor, prompt, video_path, max_frames=self.max_frames, device=self.model.device
        )
        cache = CompressedDynamicCache(
            config=self.model.config, k_bits=self.bits, v_bits=self.bits, seed=self.seed
        )
        install_fused_tq4_kv(self.model, cache)
        try:
            run = timed_generate(self.model, inputs, cache, max_new_tokens)
        finally:
            uninstall_fused_tq4_kv(self.model)
        report = cache.storage_report()
        grids = inputs.get("video_grids")
        stats = {
            "bits": self.bits,
            "video_frames": int(grids[:, 0].sum()) if grids is not None else 0,
            "prompt_tokens": run["prompt_tokens"],
            "new_tokens": len(run["tokens"]),
            "cache_tokens": report["tokens"],
            "kv_bytes_baseline": report["baseline_bytes"],
            "kv_bytes_compressed": report["total_bytes"],
            "compression_ratio": report["ratio"],
            "prefill_ms": run["prefill_ms"],
            "decode_ms": run["decode_ms"],
            "decode_tokens_per_s": run["decode_tokens_per_s"],
            **text_dims(self.model),
        }
        text = self.processor.tokenizer.decode(run["tokens"], skip_special_tokens=True)
        return text, stats
