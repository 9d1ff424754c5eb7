"""A/B benchmark: the 16-bit KV cache against TurboQuant caches on the same prompt (and clip).

Library: :func:`run_comparison` (used by the CLI and the Gradio app) runs greedy generation once
per mode and reports, per mode, the answer, the cache's measured bytes against 16-bit, prefill
and decode time, agreement with the baseline tokens, and per-layer K/V cosine similarity with
the 16-bit cache. :func:`load_model` resolves ``tiny-molmo2``, ``tiny-llama``, a local path or
a Hub id. Modes:

=========  ===============================================================================
baseline   transformers ``DynamicCache`` (16-bit K/V, the model's own attention)
tq4        ``CompressedDynamicCache`` K4/V4 (incremental dequantization, model's attention)
k4v3       ``CompressedDynamicCache`` K4/V3
fused      ``CompressedDynamicCache`` K4/V4 in fused mode: the Triton kernels attend from the
           compressed cache (``install_fused_tq4_kv``; uninstalled afterwards)
=========  ===============================================================================

CLI (offline on the tiny models; on a machine without CUDA it turns on ``TRITON_INTERPRET=1``
for the fused mode and says so)::

    python -m turboquant.benchmark --model tiny-molmo2 --video clip.mp4 --prompt "What moves?" \\
        --modes baseline,tq4,k4v3,fused --max-new-tokens 16 [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlparse

import torch

from . import storage

MODES = ("baseline", "tq4", "k4v3", "fused")
# (k_bits, v_bits) of each mode; None: the uncompressed cache.
MODE_BITS = {"baseline": (None, None), "tq4": (4, 4), "k4v3": (4, 3), "fused": (4, 4)}
TINY_MODELS = ("tiny-molmo2", "tiny-llama")
MAX_NEW_TOKENS = 4096

Progress = Callable[[float, str], object]


@contextlib.contextmanager
def switched(module, **values):
    """Set the module switches ``values`` (e.g. ``compress.BUCKET_ASM``) for the block, then
    restore them: the kernels read them at launch (the benchmarks' A/B rows)."""
    before = {name: getattr(module, name) for name in values}
    for name, value in values.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(module, name, value)


def check_max_new_tokens(max_new_tokens: object) -> int:
    """Raise unless ``max_new_tokens`` is an int in [1, 4096]."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise TypeError(f"max_new_tokens: expected an int, got {max_new_tokens!r}")
    if not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise ValueError(f"max_new_tokens: expected 1..{MAX_NEW_TOKENS}, got {max_new_tokens}")
    return max_new_tokens


def check_modes(modes: object) -> tuple[str, ...]:
    """Validate mode names (an iterable of strings, or one comma-separated string)."""
    if isinstance(modes, str):
        modes = [m.strip() for m in modes.split(",") if m.strip()]
    if not isinstance(modes, Iterable):
        raise TypeError(f"modes: expected names from {MODES}, got {type(modes).__name__}")
    modes = tuple(modes)
    bad = [m for m in modes if m not in MODES]
    if bad or not modes or len(set(modes)) != len(modes):
        raise ValueError(f"modes: expected distinct names from {MODES}, got {modes!r}")
    return modes


def enable_triton_interpreter_without_cuda() -> bool:
    """Turn on ``TRITON_INTERPRET=1`` when no CUDA GPU is present, so the fused kernels run on CPU.

    Must run before :mod:`turboquant.triton` is imported (the kernels read the variable when
    they are defined). Returns whether the interpreter is on afterwards.
    """
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True
    if torch.cuda.is_available() or any(m.startswith("turboquant.triton") for m in sys.modules):
        return False
    os.environ["TRITON_INTERPRET"] = "1"
    return True


# ----------------------------------------------------------------------------- models


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check of the Hub endpoint, so a missing network fails in seconds rather than
    after the Hub client's retries. Behind a proxy the client decides."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _load_pretrained(name: str, dtype: torch.dtype):
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForImageTextToText,
        AutoProcessor,
        AutoTokenizer,
    )

    local = Path(name).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ValueError(f"model: {name!r} is not a transformers checkpoint folder (no config.json)")
        source, offline = str(local), True
    else:
        source = name
        try:  # already in the local Hub cache: no network needed
            AutoConfig.from_pretrained(name, local_files_only=True)
            offline = True
        except OSError:
            offline = False
            if (
                os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
                or not _hub_reachable()
            ):
                raise ValueError(
                    f"model: cannot download {name!r}: no network or HF_HUB_OFFLINE is set, and it is not in "
                    f"the local Hugging Face cache; pass a local checkpoint path or one of {TINY_MODELS}"
                ) from None
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=offline)
        if config.model_type == "molmo2":
            model = AutoModelForImageTextToText.from_pretrained(source, dtype=dtype, local_files_only=offline)
            proc = AutoProcessor.from_pretrained(source, local_files_only=offline)
        else:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=offline)
            proc = AutoTokenizer.from_pretrained(source, local_files_only=offline)
    except OSError as e:
        raise ValueError(f"model: cannot load {name!r}: {str(e).splitlines()[0]}") from None
    return model, proc


def load_model(name: str, *, dtype: torch.dtype = torch.bfloat16, device: str | torch.device | None = None):
    """``(model, processor_or_tokenizer)`` for a model name, in eval mode.

    Args:
        name: ``"tiny-molmo2"`` (:func:`turboquant.hf.tiny_molmo2.build_tiny_molmo2`),
            ``"tiny-llama"`` (:func:`turboquant.hf.tiny.build_tiny_llama`), a local checkpoint
            folder, or a Hub id (Molmo2 checkpoints load with their processor, others as
            causal LMs with their tokenizer).
        dtype: weights dtype (bf16 by default: what the fused kernels run in).
        device: default CUDA when available, else CPU.

    Raises:
        ValueError: a Hub id that is neither cached nor downloadable (no network or
            ``HF_HUB_OFFLINE``), a folder that is not a checkpoint.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"model: expected {TINY_MODELS}, a local path or a Hub id, got {name!r}")
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype: expected float32, float16 or bfloat16, got {dtype}")
    if name == "tiny-molmo2":
        from .hf.tiny_molmo2 import build_tiny_molmo2

        model, proc = build_tiny_molmo2(dtype=dtype)
    elif name == "tiny-llama":
        from .hf.tiny import build_tiny_llama

        model, proc = build_tiny_llama()
        model = model.to(dtype)
    else:
        model, proc = _load_pretrained(name, dtype)
    if name in TINY_MODELS:
        model.name_or_path = model.config._name_or_path = name  # reported by run_comparison
    device = device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), proc


# ----------------------------------------------------------------------------- measuring


class _Clock:
    """A ``generate`` streamer that timestamps the prompt and every new token (batch 1)."""

    def __init__(self, device: torch.device, on_token: Callable[[int], object] | None) -> None:
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.times: list[float] = []
        self.on_token = on_token

    def put(self, value: torch.Tensor) -> None:
        self.sync()
        self.times.append(time.perf_counter())
        if self.on_token is not None and len(self.times) > 1:
            self.on_token(len(self.times) - 1)

    def end(self) -> None:
        pass


def timed_generate(
    model, inputs, cache, max_new_tokens: int, on_token: Callable[[int], object] | None = None
) -> dict:
    """Greedy ``model.generate(**inputs, cache=cache)`` with prefill and decode timed (the
    keyword is ``past_key_values`` before transformers 5.24: :func:`turboquant.hf.cache_kwargs`).

    ``inputs`` holds ``input_ids`` ``[1, S]`` (batch 1) and whatever else the model takes.
    ``on_token(i)`` is called after the i-th new token (1-based).

    Returns:
        ``tokens`` (new token ids, list of int), ``prompt_tokens`` (S), ``prefill_ms`` (to the
        first new token: vision encoder + prompt forward), ``decode_ms`` (the remaining
        tokens), ``decode_tokens_per_s`` (None with a single new token).
    """
    from .hf import cache_kwargs

    clock = _Clock(model.device, on_token)
    prompt_len = inputs["input_ids"].shape[1]
    with torch.inference_mode():
        out = model.generate(
            **inputs, **cache_kwargs(cache), max_new_tokens=max_new_tokens, do_sample=False, streamer=clock
        )
    tokens = out[0, prompt_len:].tolist()
    start, first, last = clock.times[0], clock.times[1], clock.times[-1]
    decode_s = last - first
    return {
        "tokens": tokens,
        "prompt_tokens": prompt_len,
        "prefill_ms": (first - start) * 1e3,
        "decode_ms": decode_s * 1e3,
        "decode_tokens_per_s": (len(tokens) - 1) / decode_s if len(tokens) > 1 and decode_s > 0 else None,
    }


def token_agreement(reference: list[int], tokens: list[int]) -> tuple[float, int | None]:
    """``(agreement, first_divergence)``: the fraction of ``reference`` positions where
    ``tokens`` holds the same id (missing positions count as different), and the first
    position where the sequences differ (None if identical)."""
    same = [a == b for a, b in zip(reference, tokens, strict=False)]
    agreement = sum(same) / len(reference) if reference else 1.0
    if False in same:
        return agreement, same.index(False)
    return agreement, None if len(reference) == len(tokens) else len(same)


def _cache_kv(cache, layer_idx: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """K and V ``[B, H_kv, length, D]`` fp32 of the first ``length`` positions of a layer, as the
    cache holds them (dequantized for compressed layers)."""
    from .cache import CompressedDynamicCache

    if isinstance(cache, CompressedDynamicCache) and cache.is_compressed(layer_idx):
        kp, kn, vp, vn = cache.get_compressed(layer_idx)
        kq, vq = cache.get_quantizers(layer_idx)
        return (
            kq.dequantize_packed(kp[:, :, :length], kn[:, :, :length], torch.float32),
            vq.dequantize_packed(vp[:, :, :length], vn[:, :, :length], torch.float32),
        )
    layer = cache.layers[layer_idx]
    return layer.keys[:, :, :length].float(), layer.values[:, :, :length].float()


def layer_fidelity(reference_cache, cache, length: int) -> list[dict]:
    """Per layer, the mean cosine similarity of K and of V vectors between ``cache`` and the
    16-bit ``reference_cache`` over the first ``length`` positions (the prompt: both runs saw
    the same tokens there). Returns ``[{"layer", "k_cosine", "v_cosine"}, ...]``."""
    rows = []
    for i in range(len(reference_cache.layers)):
        k_ref, v_ref = _cache_kv(reference_cache, i, length)
        k, v = _cache_kv(cache, i, length)
        rows.append(
            {
                "layer": i,
                "k_cosine": float(torch.nn.functional.cosine_similarity(k, k_ref, dim=-1).mean()),
                "v_cosine": float(torch.nn.functional.cosine_similarity(v, v_ref, dim=-1).mean()),
            }
        )
    return rows


def _cache_storage(cache) -> dict[str, int]:
    """Measured from a cache's tensors: ``kv_bytes`` (what it stores), ``baseline_kv_bytes``
    (the same tokens at 16 bits) and ``working_buffer_bytes`` (the 16-bit dequantized buffer
    the unfused compressed cache keeps for standard attention; 0 otherwise)."""
    from .cache import CompressedDynamicCache

    if isinstance(cache, CompressedDynamicCache):
        report = cache.storage_report()
        return {
            "kv_bytes": report["total_bytes"],
            "baseline_kv_bytes": report["baseline_bytes"],
            "working_buffer_bytes": report["working_buffer_bytes"],
        }
    tensors = [t for layer in cache.layers for t in (layer.keys, layer.values) if isinstance(t, torch.Tensor)]
    return {
        "kv_bytes": sum(t.numel() * t.element_size() for t in tensors),
        "baseline_kv_bytes": sum(t.numel() * 2 for t in tensors),
        "working_buffer_bytes": 0,
    }


def kv_memory_vs_context(result: dict, context_lengths: Iterable[int]) -> dict[str, list[int]]:
    """KV-cache bytes per mode of :func:`run_comparison`'s ``result`` at each context length
    (per sequence; from :func:`turboquant.storage.kv_cache_bytes` and the model's dims)."""
    m = result["model"]
    lengths = list(context_lengths)
    return {
        mode: [
            storage.kv_cache_bytes(
                n, m["num_layers"], m["num_kv_heads"], m["head_dim"], r["k_bits"], r["v_bits"]
            )
            for n in lengths
        ]
        for mode, r in result["modes"].items()
    }


# ----------------------------------------------------------------------------- comparison


def _prepare_inputs(model, proc, prompt: str, video_path, is_vlm: bool):
    if is_vlm:
        from .hf.molmo2 import build_molmo2_inputs

        return build_molmo2_inputs(proc, prompt, video_path, device=model.device)
    if video_path is not None:
        raise ValueError(
            f"video_path: {type(model).__name__} takes no video (only Molmo2 models do); "
            "leave video_path unset"
        )
    tokenizer = getattr(proc, "tokenizer", proc)
    if not callable(tokenizer) or not hasattr(tokenizer, "decode"):
        raise TypeError(
            f"processor_or_tokenizer: expected a tokenizer or processor, got {type(proc).__name__}"
        )
    if getattr(tokenizer, "chat_template", None):
        inputs = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
    else:
        inputs = tokenizer(prompt, return_tensors="pt")
    return inputs.to(model.device)


def _new_cache(model, mode: str, seed: int):
    from transformers import DynamicCache

    from .cache import CompressedDynamicCache

    if mode == "baseline":
        return DynamicCache(config=model.config)
    k_bits, v_bits = MODE_BITS[mode]
    return CompressedDynamicCache(config=model.config, k_bits=k_bits, v_bits=v_bits, seed=seed)


WARMUP_TOKENS = 2


def needs_warmup(model) -> bool:
    """Whether :func:`run_comparison` runs each mode once untimed first (on CUDA: kernels compile
    and autotune on first use; under the CPU interpreter nothing is compiled)."""
    return model.device.type == "cuda"


def _generate_mode(model, inputs, mode: str, seed: int, max_new_tokens: int, on_token=None):
    """:func:`timed_generate` with a fresh cache of ``mode`` (the fused kernels installed for
    ``fused`` and removed afterwards). Returns ``(run, cache)``."""
    from .hf.attention import install_fused_tq4_kv, uninstall_fused_tq4_kv

    cache = _new_cache(model, mode, seed)
    if mode == "fused":
        install_fused_tq4_kv(model, cache)
    try:
        return timed_generate(model, inputs, cache, max_new_tokens, on_token), cache
    finally:
        if mode == "fused":
            uninstall_fused_tq4_kv(model)


def run_comparison(
    model,
    processor_or_tokenizer,
    prompt: str,
    video_path=None,
    modes=MODES,
    max_new_tokens: int = 32,
    progress: Progress | None = None,
    seed: int = 42,
) -> dict:
    """Answer one prompt (about one clip) once per mode and compare with the 16-bit baseline.

    The baseline always runs first (it is the reference) and is reported when asked for.

    Args:
        model: a Molmo2 model (with ``video_path``) or a causal LM.
        processor_or_tokenizer: the Molmo2 processor, or the causal LM's tokenizer.
        prompt: the question (non-empty).
        video_path: a clip for Molmo2 (see :func:`turboquant.video.load_video_frames`).
        modes: names from ``MODES``.
        max_new_tokens: greedy tokens per mode (1..4096; fewer when EOS comes first).
        progress: ``progress(fraction in [0, 1], description)``, called through frame
            extraction, each mode's prefill and each decoded token.
        seed: rotation seed of the compressed caches.

    Returns:
        A JSON-safe dict: ``model`` (``name``, ``model_type``, ``num_layers``,
        ``num_kv_heads``, ``head_dim``, ``dtype``, ``device``), ``context_tokens`` (prompt
        tokens incl. video), ``video_frames``, ``max_new_tokens``, and ``modes``: per mode
        ``text``, ``token_ids``, ``new_tokens``, ``k_bits``/``v_bits`` (None for baseline),
        ``kv_bytes`` (measured from the cache's tensors after generation),
        ``baseline_kv_bytes`` (the same tokens at 16 bits), ``ratio``,
        ``working_buffer_bytes`` (the unfused compressed cache's 16-bit dequantized buffer,
        held on top of ``kv_bytes``; 0 for baseline and fused), ``prefill_ms``,
        ``decode_ms``, ``decode_tokens_per_s``, ``agreement`` (fraction of baseline tokens
        matched position by position), ``first_divergence`` (token index, or None),
        ``layer_fidelity`` (per layer ``k_cosine``/``v_cosine`` against the 16-bit cache over
        the prompt positions).

    Raises:
        TypeError/ValueError: bad arguments, a video for a text-only model, a bad clip, or a
            ``fused`` mode the model cannot run (checked before any generation).

    On CUDA every mode first runs once untimed (:data:`WARMUP_TOKENS` tokens): Triton
    compiles and autotunes its kernels on first use and cuBLAS/cuDNN initialize, which would
    otherwise land in the first run's prefill time. The timings are then steady-state.

    Not for concurrent calls on one model: the fused mode switches the model's attention
    while it runs (serialize calls, e.g. with a queue).
    """
    from transformers import PreTrainedModel

    from .hf.attention import install_fused_tq4_kv, uninstall_fused_tq4_kv
    from .hf.molmo2 import is_molmo2, text_dims

    if not isinstance(model, PreTrainedModel):
        raise TypeError(f"model: expected a transformers PreTrainedModel, got {type(model).__name__}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt: expected a non-empty string, got {prompt!r}")
    modes = check_modes(modes)
    check_max_new_tokens(max_new_tokens)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {seed!r}")
    if progress is not None and not callable(progress):
        raise TypeError(
            f"progress: expected a callable(fraction, description) or None, got {type(progress).__name__}"
        )
    report = progress if progress is not None else (lambda fraction, description: None)
    if "fused" in modes:
        # Fail before any work if the kernels cannot run this model (dtype, device, head_dim).
        install_fused_tq4_kv(model, _new_cache(model, "fused", seed))
        uninstall_fused_tq4_kv(model)

    report(0.0, "extracting video frames" if video_path is not None else "tokenizing the prompt")
    inputs = _prepare_inputs(model, processor_or_tokenizer, prompt, video_path, is_molmo2(model))
    tokenizer = getattr(processor_or_tokenizer, "tokenizer", processor_or_tokenizer)
    grids = inputs.get("video_grids")
    runs = ("baseline",) + tuple(m for m in modes if m != "baseline")
    start = 0.05
    step = (1.0 - start) / len(runs)

    if needs_warmup(model):
        report(start, "warming up the kernels")
        for mode in runs:
            _generate_mode(model, inputs, mode, seed, WARMUP_TOKENS)

    results, reference, reference_cache = {}, None, None
    for i, mode in enumerate(runs):
        base = start + i * step
        report(base, f"{mode}: prefill")

        def on_token(n, base=base, mode=mode):
            report(base + step * n / max_new_tokens, f"{mode}: decoding token {n}/{max_new_tokens}")

        run, cache = _generate_mode(model, inputs, mode, seed, max_new_tokens, on_token)
        if mode == "baseline":
            reference, reference_cache = run["tokens"], cache
        sizes = _cache_storage(cache)
        agreement, divergence = token_agreement(reference, run["tokens"])
        k_bits, v_bits = MODE_BITS[mode]
        results[mode] = {
            "text": tokenizer.decode(run["tokens"], skip_special_tokens=True),
            "token_ids": run["tokens"],
            "new_tokens": len(run["tokens"]),
            "k_bits": k_bits,
            "v_bits": v_bits,
            **sizes,
            "ratio": sizes["baseline_kv_bytes"] / sizes["kv_bytes"] if sizes["kv_bytes"] else None,
            "prefill_ms": run["prefill_ms"],
            "decode_ms": run["decode_ms"],
            "decode_tokens_per_s": run["decode_tokens_per_s"],
            "agreement": agreement,
            "first_divergence": divergence,
            "layer_fidelity": layer_fidelity(reference_cache, cache, run["prompt_tokens"]),
        }
        del cache
    report(1.0, "done")
    return {
        "model": {
            "name": getattr(model, "name_or_path", None) or type(model).__name__,
            "class": type(model).__name__,
            "model_type": model.config.model_type,
            **text_dims(model),
            "dtype": str(model.dtype).replace("torch.", ""),
            "device": str(model.device),
        },
        "prompt": prompt,
        "context_tokens": int(inputs["input_ids"].shape[1]),
        "video_frames": int(grids[:, 0].sum()) if grids is not None else 0,
        "max_new_tokens": max_new_tokens,
        "modes": {m: results[m] for m in modes},
    }


# ----------------------------------------------------------------------------- CLI


def format_table(result: dict) -> str:
    """A plain-text report of :func:`run_comparison`'s result: one row per mode, then answers."""
    m = result["model"]
    lines = [
        f"model: {m['name']} ({m['class']}), {m['num_layers']} layers, {m['num_kv_heads']} KV heads, "
        f"head_dim {m['head_dim']}, {m['dtype']} on {m['device']}",
        f"context: {result['context_tokens']} tokens ({result['video_frames']} video frames), "
        f"up to {result['max_new_tokens']} new tokens",
        "",
        f"{'mode':<9} {'KV bytes':>10} {'16-bit':>10} {'ratio':>6} {'prefill ms':>10} {'decode tok/s':>12} "
        f"{'agree':>6} {'1st div':>7} {'min K cos':>9} {'min V cos':>9}",
    ]
    for mode, r in result["modes"].items():
        tps = r["decode_tokens_per_s"]
        div = r["first_divergence"]
        lines.append(
            f"{mode:<9} {r['kv_bytes']:>10} {r['baseline_kv_bytes']:>10} {r['ratio'] or 0:>6.2f} "
            f"{r['prefill_ms']:>10.1f} {(f'{tps:.1f}' if tps else '-'):>12} {r['agreement']:>6.2f} "
            f"{('-' if div is None else str(div)):>7} "
            f"{min(x['k_cosine'] for x in r['layer_fidelity']):>9.4f} "
            f"{min(x['v_cosine'] for x in r['layer_fidelity']):>9.4f}"
        )
    lines.append("")
    lines += [f"[{mode}] {r['text']!r}" for mode, r in result["modes"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m turboquant.benchmark",
        description="A/B benchmark of the 16-bit KV cache against TurboQuant caches.",
    )
    parser.add_argument(
        "--model", default="tiny-molmo2", help=f"{' or '.join(TINY_MODELS)}, a local path or a Hub id"
    )
    parser.add_argument("--video", default=None, help="a video clip (Molmo2 models)")
    parser.add_argument("--prompt", default="What is happening in this video?")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from {','.join(MODES)}")
    # 16 by default: the fused mode under the CPU interpreter takes about a second per token.
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=42, help="rotation seed")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        modes = check_modes(args.modes)
    except ValueError as e:
        parser.error(str(e))
    if (
        "fused" in modes
        and os.environ.get("TRITON_INTERPRET") != "1"
        and enable_triton_interpreter_without_cuda()
    ):
        print(
            "no CUDA device: running the Triton kernels on CPU with TRITON_INTERPRET=1 (slow)",
            file=sys.stderr,
        )
    try:
        model, proc = load_model(args.model, dtype=getattr(torch, args.dtype))
        result = run_comparison(
            model, proc, args.prompt, args.video, modes, args.max_new_tokens, seed=args.seed
        )
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
