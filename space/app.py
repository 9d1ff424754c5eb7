"""TurboQuant Space: ask a question about a video clip and compare a 16-bit KV cache with
TurboQuant-compressed ones, side by side.

A thin layer over :mod:`turboquant`: :func:`turboquant.benchmark.run_comparison` answers the
question once per mode and measures it, :func:`turboquant.video.probe_video` validates uploads,
:mod:`turboquant.storage` turns bytes per token into "how much context fits".

    python space/app.py          # honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, prints the URL

Environment: ``TURBOQUANT_MODEL`` (default model: ``tiny-molmo2`` offline, or
``allenai/Molmo2-4B`` / ``-8B`` where a GPU and the Hub exist), ``TURBOQUANT_MAX_UPLOAD_MB``
(default 50), ``TURBOQUANT_MAX_CLIP_SECONDS`` (default 60), ``TURBOQUANT_SAMPLES_DIR`` (where the
example clips are generated, default a folder in the system temp dir).

The named endpoint ``/compare`` serves ``gradio_client``::

    Client(url).predict(handle_file("clip.mp4"), "What moves?", api_name="/compare")

returns a JSON dict: ``answers`` (mode → text), ``modes`` (mode → stats: ``kv_bytes``, ``ratio``,
``prefill_ms``, ``decode_ms``, ``decode_tokens_per_s``, ``agreement``, ``first_divergence``,
``layer_fidelity``, ...; see :func:`turboquant.benchmark.run_comparison`), ``model`` (name and
decoder dims), ``context_tokens``, ``video_frames`` and ``memory`` (KV bytes per token per mode,
the GPU memory left for KV and the max context that fits, ``None`` without a GPU), with
``error`` ``None``; a bad input gives ``{"error": "message"}`` instead. Optional inputs:
``modes``, ``max_new_tokens``, ``model``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
# On a Space, turboquant/ and scripts/ sit next to app.py; in a checkout, one level up.
REPO = HERE if (HERE / "turboquant").is_dir() else HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

try:  # ZeroGPU: `spaces` must be imported before torch initialises CUDA.
    import spaces

    gpu_task = spaces.GPU(duration=180)
    ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")
except ImportError:
    ZERO_GPU = False

    def gpu_task(fn):
        return fn


import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from turboquant import benchmark, storage  # noqa: E402
from turboquant.video import probe_video  # noqa: E402

# Without a GPU the fused mode runs the Triton kernels in Triton's interpreter (before triton
# loads). On ZeroGPU no CUDA is visible at start-up, but the GPU arrives inside gpu_task calls.
if not ZERO_GPU:
    benchmark.enable_triton_interpreter_without_cuda()

log = logging.getLogger("turboquant.space")

TINY_MODEL = "tiny-molmo2"
GPU_MODELS = ("allenai/Molmo2-4B", "allenai/Molmo2-8B")
MODE_LABELS = {
    "baseline": "Baseline (16-bit)",
    "tq4": "TQ4 K+V",
    "k4v3": "K4/V3",
    "fused": "Fused TQ4 kernels",
}
# Without a GPU the fused kernels run in Triton's interpreter (about a minute on the tiny model),
# so there they are offered but not ticked by default.
DEFAULT_MODES = tuple(MODE_LABELS) if torch.cuda.is_available() else ("baseline", "tq4", "k4v3")
DEFAULT_QUESTION = "What is happening in this video?"
DEFAULT_MAX_NEW_TOKENS = 32
MAX_NEW_TOKENS = 256
MAX_QUESTION_CHARS = 1000
MAX_UPLOAD_MB = float(os.environ.get("TURBOQUANT_MAX_UPLOAD_MB", "50"))
MAX_CLIP_SECONDS = float(os.environ.get("TURBOQUANT_MAX_CLIP_SECONDS", "60"))
SAMPLES_DIR = Path(os.environ.get("TURBOQUANT_SAMPLES_DIR", Path(tempfile.gettempdir()) / "turboquant-space"))
# (file name, seconds, seed, question) of the example clips.
SAMPLE_CLIPS = (
    ("shapes_3s.mp4", 3, 0, "What is happening in this video?"),
    ("shapes_2s_seed1.mp4", 2, 1, "How many objects are moving?"),
)
GIB = 1024**3


class InputError(ValueError):
    """A request the app refuses, with a message meant for the user."""


# ---------------------------------------------------------------------------------------------
# Models: loaded once, one at a time (a second large checkpoint would not fit beside the first).

_model_lock = threading.Lock()
_loaded: dict[str, tuple] = {}


def available_models() -> list[str]:
    """The tiny offline model everywhere; the Molmo2 checkpoints only where a GPU exists."""
    names = [TINY_MODEL, *GPU_MODELS] if torch.cuda.is_available() else [TINY_MODEL]
    chosen = os.environ.get("TURBOQUANT_MODEL")
    if chosen and chosen not in names:
        names.insert(0, chosen)
    return names


def default_model() -> str:
    return os.environ.get("TURBOQUANT_MODEL") or TINY_MODEL


def get_model(name: str) -> tuple:
    """``(model, processor)`` for ``name``, loaded on first use and cached (caller holds the lock)."""
    if name not in _loaded:
        _loaded.clear()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        _loaded[name] = benchmark.load_model(name)
    return _loaded[name]


# ---------------------------------------------------------------------------------------------
# Example clips


def _make_sample_clip():
    """``make_sample_clip`` from scripts/make_sample_clip.py (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location(
        "make_sample_clip", REPO / "scripts" / "make_sample_clip.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_sample_clip


def sample_clips() -> list[list[str]]:
    """Generate the example clips into SAMPLES_DIR if missing; ``[[path, question], ...]``."""
    make = None
    examples = []
    for name, seconds, seed, question in SAMPLE_CLIPS:
        path = SAMPLES_DIR / name
        if not path.is_file():
            make = make or _make_sample_clip()
            tmp = path.with_suffix(".part.mp4")  # atomic: a half-written clip is never served
            make(tmp, seconds=seconds, seed=seed)
            tmp.replace(path)
        examples.append([str(path), question])
    return examples


# ---------------------------------------------------------------------------------------------
# The comparison


def _check_request(video_path, question, modes, max_new_tokens, model_name) -> tuple:
    """Validate everything cheap before touching the model; raise InputError with a message."""
    if not video_path:
        raise InputError("Upload a video clip first.")
    path = Path(video_path)
    if not path.is_file():
        raise InputError("The uploaded file is missing on the server; upload it again.")
    size_mb = path.stat().st_size / 2**20
    if size_mb > MAX_UPLOAD_MB:
        raise InputError(
            f"The file is {size_mb:.1f} MB; the limit is {MAX_UPLOAD_MB:g} MB. Upload a shorter clip."
        )
    if not isinstance(question, str) or not question.strip():
        raise InputError("Type a question about the clip.")
    question = question.strip()
    if len(question) > MAX_QUESTION_CHARS:
        raise InputError(f"The question has {len(question)} characters; the limit is {MAX_QUESTION_CHARS}.")
    modes = list(modes or [])
    unknown = [m for m in modes if m not in MODE_LABELS]
    if unknown:
        raise InputError(f"Unknown mode(s) {unknown}; choose from {list(MODE_LABELS)}.")
    if not modes:
        raise InputError("Pick at least one mode.")
    if "baseline" not in modes:
        modes.insert(0, "baseline")  # agreement and ratios are measured against it
    if isinstance(max_new_tokens, float) and max_new_tokens.is_integer():
        max_new_tokens = int(max_new_tokens)
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or not 1 <= max_new_tokens <= MAX_NEW_TOKENS
    ):
        raise InputError(
            f"Max new tokens must be a whole number from 1 to {MAX_NEW_TOKENS}, got {max_new_tokens!r}."
        )
    if model_name not in available_models():
        raise InputError(f"Model {model_name!r} is not available here; choose from {available_models()}.")
    return path, question, modes, max_new_tokens, model_name


def _memory_summary(result: dict) -> dict:
    """KV bytes per token of each mode, and how many tokens fit in the GPU memory left for KV."""
    per_token = {m: b[0] for m, b in benchmark.kv_memory_vs_context(result, [1]).items()}
    budget = None
    if torch.cuda.is_available():
        # What the weights and the runtime hold now is not available to the KV cache.
        budget = torch.cuda.get_device_properties(0).total_memory - torch.cuda.memory_allocated()
    dims = result["model"]
    return {
        "kv_bytes_per_token": per_token,
        "gpu_kv_budget_bytes": budget,
        "max_context_tokens": None
        if budget is None
        else {
            m: storage.max_context_tokens(
                budget, dims["num_layers"], dims["num_kv_heads"], dims["head_dim"], r["k_bits"], r["v_bits"]
            )
            for m, r in result["modes"].items()
        },
    }


@gpu_task
def _run(path: Path, question: str, modes: list[str], max_new_tokens: int, model_name: str, progress) -> dict:
    with _model_lock:
        progress(0.0, desc=f"Loading {model_name}")
        model, processor = get_model(model_name)
        return benchmark.run_comparison(
            model,
            processor,
            question,
            video_path=str(path),
            modes=tuple(modes),
            max_new_tokens=max_new_tokens,
            progress=progress,
        )


def compare(video_path, question, modes, max_new_tokens, model_name, progress) -> dict:
    """Validate, run every mode and return a JSON-ready dict; raises InputError for bad input.

    ``progress(fraction, desc=...)`` is told each step (a ``gr.Progress``)."""
    path, question, modes, max_new_tokens, model_name = _check_request(
        video_path, question, modes, max_new_tokens, model_name
    )
    progress(0.0, desc="Checking the clip")
    try:
        probe_video(path, max_seconds=MAX_CLIP_SECONDS)
    except (ValueError, TypeError) as e:
        raise InputError(str(e).removeprefix("video_path: ")) from None
    try:
        result = _run(path, question, modes, max_new_tokens, model_name, progress)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        raise InputError(
            "The GPU ran out of memory: try a shorter clip, fewer new tokens or a smaller model."
        ) from None
    except ValueError as e:  # the library's input validation (e.g. a clip it cannot decode)
        raise InputError(str(e).removeprefix("video_path: ")) from None
    result["model"]["name"] = model_name
    # The library's JSON-safe result, plus the answers up front and the memory outlook.
    return {
        "error": None,
        "answers": {m: r["text"] for m, r in result["modes"].items()},
        **result,
        "memory": _memory_summary(result),
    }


# ---------------------------------------------------------------------------------------------
# Presentation


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def _fmt(value, spec: str, suffix: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{suffix}"


def stats_table(out: dict) -> pd.DataFrame:
    """One row per mode: what it stored, how fast it ran, how close it stayed to the baseline."""
    return pd.DataFrame(
        [
            {
                "mode": MODE_LABELS[mode],
                "KV bytes": _fmt_bytes(s["kv_bytes"]),
                "ratio": _fmt(s["ratio"], ".2f", "×"),
                "prefill ms": _fmt(s["prefill_ms"], ".0f"),
                "decode ms": _fmt(s["decode_ms"], ".0f"),
                "tok/s": _fmt(s["decode_tokens_per_s"], ".1f"),
                "agree": f"{100 * s['agreement']:.0f}%",
                "diverges at": "–" if s["first_divergence"] is None else f"token {s['first_divergence']}",
            }
            for mode, s in out["modes"].items()
        ]
    )


def fidelity_table(out: dict) -> pd.DataFrame:
    """Per layer and mode, the mean cosine similarity of K and V to the 16-bit cache."""
    rows = [
        {
            "mode": MODE_LABELS[mode],
            "layer": f["layer"],
            "K cosine": round(f["k_cosine"], 5),
            "V cosine": round(f["v_cosine"], 5),
        }
        for mode, s in out["modes"].items()
        for f in s["layer_fidelity"]
    ]
    return pd.DataFrame(rows, columns=["mode", "layer", "K cosine", "V cosine"])


def memory_plot(out: dict) -> pd.DataFrame:
    """KV memory (GiB) against context length per mode, plus the GPU's KV budget as a flat line."""
    mem = out["memory"]
    budget = mem["gpu_kv_budget_bytes"]
    # Far enough right that every mode's line crosses the GPU line; 128K tokens without a GPU.
    x_max = (
        1.25 * max(mem["max_context_tokens"].values()) if budget else max(131072, 4 * out["context_tokens"])
    )
    xs = [round(x_max * i / 20) for i in range(21)]
    rows = [
        {"context tokens": x, "KV memory (GiB)": b / GIB, "series": MODE_LABELS[m]}
        for m, ys in benchmark.kv_memory_vs_context(out, xs).items()
        for x, b in zip(xs, ys, strict=True)
    ]
    if budget:
        rows += [
            {"context tokens": x, "KV memory (GiB)": budget / GIB, "series": "GPU memory for KV"} for x in xs
        ]
    return pd.DataFrame(rows)


def memory_summary_md(out: dict) -> str:
    """Context size and model dims; the max context per mode (with a GPU) or bytes per token."""
    m, mem = out["model"], out["memory"]
    lines = [
        f"**{m['name']}**: {out['context_tokens']} context tokens ({out['video_frames']} video frames), "
        f"{m['num_layers']} layers, {m['num_kv_heads']} KV heads of head_dim {m['head_dim']}, {m['dtype']} "
        f"on {m['device']}."
    ]
    if mem["gpu_kv_budget_bytes"]:
        base = mem["max_context_tokens"]["baseline"]
        lines.append(
            f"GPU memory left for the KV cache: {_fmt_bytes(mem['gpu_kv_budget_bytes'])}. "
            "Max context that fits:"
        )
        lines += [
            f"- {MODE_LABELS[m]}: {n:,} tokens ({n / base:.2f}× the baseline)"
            for m, n in mem["max_context_tokens"].items()
        ]
    else:
        lines.append("No GPU: line omitted (the plot shows KV memory only). KV bytes per token:")
        lines += [f"- {MODE_LABELS[m]}: {b:,} bytes" for m, b in mem["kv_bytes_per_token"].items()]
    return "\n".join(lines)


def _user_error(e: Exception) -> str:
    """The message for a failed request; unexpected errors are logged with their traceback."""
    if isinstance(e, InputError):
        return str(e)
    log.exception("comparison failed")
    return f"The comparison failed ({type(e).__name__}: {e}). The app is still running; try again."


def compare_api(video, question, modes, max_new_tokens, model, progress=gr.Progress()) -> dict:  # noqa: B008
    """The ``/compare`` endpoint: the answers and per-mode stats, or ``{"error": message}``."""
    try:
        return compare(video, question, modes, max_new_tokens, model, progress)
    except Exception as e:  # noqa: BLE001 - the client gets a message, the app keeps serving
        return {"error": _user_error(e)}


def compare_ui(video, question, modes, max_new_tokens, model, progress=gr.Progress()):  # noqa: B008
    try:
        out = compare(video, question, modes, max_new_tokens, model, progress)
    except Exception as e:  # noqa: BLE001
        raise gr.Error(_user_error(e)) from None
    answers = [gr.update(value=out["answers"].get(m, ""), visible=m in out["answers"]) for m in MODE_LABELS]
    return (*answers, stats_table(out), memory_summary_md(out), memory_plot(out), fidelity_table(out), out)


# ---------------------------------------------------------------------------------------------
# The UI

INTRO = """# TurboQuant: a compressed KV cache for video questions
Upload a short clip and ask a question. The model answers once with its ordinary 16-bit KV
cache and once per TurboQuant mode (keys and values rotated, then quantized to 4 or 3 bits per
coordinate with a Lloyd-Max codebook, [arXiv 2504.19874](https://arxiv.org/abs/2504.19874)).
Compare the answers, the memory and the speed."""


def build_app() -> gr.Blocks:
    """The Gradio Blocks app (queued): the UI plus the ``/compare`` API endpoint."""
    examples = sample_clips()
    models = available_models()
    with gr.Blocks(title="TurboQuant KV-cache compression") as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.Video(label="Video clip", sources=["upload"], height=240, elem_id="video-input")
                question = gr.Textbox(
                    label="Question", value=DEFAULT_QUESTION, lines=2, max_length=MAX_QUESTION_CHARS
                )
                modes = gr.CheckboxGroup(
                    label="Modes",
                    choices=[(v, k) for k, v in MODE_LABELS.items()],
                    value=list(DEFAULT_MODES),
                    info=None
                    if torch.cuda.is_available()
                    else "No GPU: the fused kernels run in Triton's interpreter (about a minute).",
                )
                max_new = gr.Slider(
                    label="Max new tokens",
                    elem_id="max-new-tokens",
                    minimum=1,
                    maximum=MAX_NEW_TOKENS,
                    step=1,
                    value=DEFAULT_MAX_NEW_TOKENS,
                )
                model = gr.Dropdown(
                    label="Model",
                    choices=models,
                    value=default_model(),
                    info="tiny-molmo2 has random weights: its answers are noise, its measurements real."
                    + ("" if torch.cuda.is_available() else " Molmo2-4B/8B need a GPU."),
                )
                run = gr.Button("Compare", variant="primary", elem_id="compare-button")
                gr.Examples(examples=examples, inputs=[video, question], label="Sample clips")
                gr.Markdown(
                    f"Limits: {MAX_UPLOAD_MB:g} MB, {MAX_CLIP_SECONDS:g} s per clip, "
                    f"{MAX_QUESTION_CHARS} characters per question."
                )
            with gr.Column(scale=2):
                with gr.Row():
                    answers = [
                        gr.Textbox(label=label, lines=3, interactive=False, elem_id=f"answer-{mode}")
                        for mode, label in MODE_LABELS.items()
                    ]
                table = gr.Dataframe(label="Per mode", interactive=False, wrap=True, elem_id="stats-table")
                summary = gr.Markdown(elem_id="memory-summary")
                plot = gr.LinePlot(
                    x="context tokens",
                    y="KV memory (GiB)",
                    color="series",
                    label="KV memory against context length",
                )
                with gr.Accordion(
                    "Per-layer K/V fidelity (cosine similarity to the 16-bit cache)", open=False
                ):
                    fidelity = gr.Dataframe(interactive=False, elem_id="fidelity-table")
                with gr.Accordion("Raw stats (JSON)", open=False):
                    raw = gr.JSON()
        run.click(
            compare_ui,
            inputs=[video, question, modes, max_new, model],
            outputs=[*answers, table, summary, plot, fidelity, raw],
            concurrency_id="model",
            api_visibility="private",
        )
        # /compare for gradio_client: a plain file input (handle_file) instead of gr.Video's dict.
        with gr.Column(visible=False):
            api_video = gr.File(label="video", file_types=None)
            api_out = gr.JSON(label="result")
            api_button = gr.Button("compare (API)")
        api_button.click(
            compare_api,
            inputs=[api_video, question, modes, max_new, model],
            outputs=api_out,
            api_name="compare",
            concurrency_id="model",
        )
    # One comparison at a time (the model is shared); the UI and /compare wait in one queue.
    demo.queue(default_concurrency_limit=1, max_size=32)
    return demo


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    demo = build_app()
    with _model_lock:  # load the default model now, so the first request does not wait for it
        get_model(default_model())
    # Gradio reads GRADIO_SERVER_NAME / GRADIO_SERVER_PORT itself (as Spaces set them).
    demo.launch(
        max_file_size=f"{2 * MAX_UPLOAD_MB:g}mb",  # hard cap; uploads over MAX_UPLOAD_MB get a message
        prevent_thread_lock=True,
    )
    print(f"turboquant app serving {default_model()} at {demo.local_url}", flush=True)
    demo.block_thread()


if __name__ == "__main__":
    main()
