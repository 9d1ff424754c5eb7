"""The Gradio app (space/app.py), started as a subprocess on 127.0.0.1 and driven with gradio_client.

The app runs the tiny offline Molmo2; numbers are checked against turboquant.storage (an
independent byte count), and every bad input must come back as a message while the app keeps
serving.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import types
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

from turboquant.storage import baseline_token_bytes, compression_ratio, token_bytes  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MAX_UPLOAD_MB = 1  # the app's limits for this test run: small, so the over-limit files are cheap
MAX_CLIP_SECONDS = 4
TINY = {"num_layers": 2, "num_kv_heads": 2, "head_dim": 128}  # turboquant.hf.tiny_molmo2's decoder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppProcess:
    """``python space/app.py`` on a free port; collects its output, knows its URL."""

    def __init__(self, samples_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.samples_dir = samples_dir
        self.lines: list[str] = []
        self.url: str | None = None
        self._ready = threading.Event()
        env = {
            **os.environ,
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(self.port),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            "TURBOQUANT_SAMPLES_DIR": str(samples_dir),
            **env,
        }
        env.pop("TURBOQUANT_MODEL", None)
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "space" / "app.py")],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("turboquant app serving"):
                self.url = line.rsplit(" at ", 1)[1].strip()
                self._ready.set()
        self._ready.set()  # exited

    def wait_ready(self, timeout: float = 120) -> str:
        if not self._ready.wait(timeout) or self.url is None:
            self.stop()
            raise RuntimeError("the app did not start:\n" + "".join(self.lines[-40:]))
        return self.url

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    @property
    def log(self) -> str:
        return "".join(self.lines)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    proc = AppProcess(
        tmp_path_factory.mktemp("samples"),
        TURBOQUANT_MAX_UPLOAD_MB=str(MAX_UPLOAD_MB),
        TURBOQUANT_MAX_CLIP_SECONDS=str(MAX_CLIP_SECONDS),
    )
    proc.wait_ready()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False)


@pytest.fixture(scope="module")
def clip(app) -> Path:
    """The 3-second sample clip the app generated at startup (scripts/make_sample_clip.py)."""
    path = app.samples_dir / "shapes_3s.mp4"
    assert path.is_file()
    return path


def compare(client, clip, question="What moves?", **kwargs) -> dict:
    return client.predict(handle_file(str(clip)), question, api_name="/compare", **kwargs)


def check_kv_bytes(out: dict, mode: str, k_bits: int | None, v_bits: int | None) -> None:
    """kv_bytes is a whole number of tokens × layers × the storage calculator's bytes per token."""
    per_token = TINY["num_layers"] * (
        baseline_token_bytes(TINY["head_dim"], TINY["num_kv_heads"])
        if k_bits is None
        else token_bytes(TINY["head_dim"], k_bits, v_bits, TINY["num_kv_heads"])
    )
    s = out["modes"][mode]
    tokens, rest = divmod(s["kv_bytes"], per_token)
    assert rest == 0
    # The prompt plus every new token but the last (which is never fed back).
    assert out["context_tokens"] <= tokens <= out["context_tokens"] + s["new_tokens"]
    assert out["memory"]["kv_bytes_per_token"][mode] == per_token


def test_compare_stats(client, clip):
    out = compare(client, clip, modes=["baseline", "tq4", "k4v3"], max_new_tokens=8)
    assert out["error"] is None
    assert set(out["modes"]) == {"baseline", "tq4", "k4v3"}
    assert out["answers"] == {m: s["text"] for m, s in out["modes"].items()}
    assert {k: out["model"][k] for k in TINY} == TINY
    assert out["model"]["name"] == "tiny-molmo2"
    assert out["video_frames"] > 0 and out["context_tokens"] > out["video_frames"]

    tq4, k4v3, base = out["modes"]["tq4"], out["modes"]["k4v3"], out["modes"]["baseline"]
    assert tq4["ratio"] >= 3.7
    # d=128: 512 / (2 * (64 + 4)) = 3.765 and 512 / (64 + 4 + 48 + 4) = 4.267
    assert tq4["ratio"] == pytest.approx(compression_ratio(128, 4, 4), rel=1e-9)
    assert k4v3["ratio"] == pytest.approx(compression_ratio(128, 4, 3), rel=1e-9)
    check_kv_bytes(out, "baseline", None, None)
    check_kv_bytes(out, "tq4", 4, 4)
    check_kv_bytes(out, "k4v3", 4, 3)

    assert base["agreement"] == 1.0 and base["first_divergence"] is None
    for s in out["modes"].values():
        assert 1 <= s["new_tokens"] <= 8
        assert s["prefill_ms"] > 0 and s["decode_ms"] >= 0
        assert len(s["layer_fidelity"]) == TINY["num_layers"]
    assert all(f["k_cosine"] == 1.0 and f["v_cosine"] == 1.0 for f in base["layer_fidelity"])
    # 4-bit Lloyd-Max on a unit vector keeps ~99.5% cosine (MSE 0.009); 3-bit V less.
    for f in tq4["layer_fidelity"]:
        assert 0.98 < f["k_cosine"] < 1 and 0.98 < f["v_cosine"] < 1
    for f4, f3 in zip(tq4["layer_fidelity"], k4v3["layer_fidelity"], strict=True):
        assert f3["k_cosine"] == pytest.approx(f4["k_cosine"], abs=2e-2)
        assert 0.9 < f3["v_cosine"] < f4["v_cosine"]
    mem = out["memory"]
    if mem["gpu_kv_budget_bytes"] is None:
        assert mem["max_context_tokens"] is None
    else:  # more tokens fit by exactly the ratio of bytes per token (up to rounding down)
        fit = mem["max_context_tokens"]
        assert fit["tq4"] == mem["gpu_kv_budget_bytes"] // mem["kv_bytes_per_token"]["tq4"]
        assert fit["tq4"] / fit["baseline"] == pytest.approx(compression_ratio(128, 4, 4), rel=1e-3)


def test_defaults_answer_within_a_minute(client, clip):
    """Only the clip and the question: default modes, 32 new tokens, the tiny model."""
    start = time.perf_counter()
    out = compare(client, clip, "What is happening in this video?")
    elapsed = time.perf_counter() - start
    assert out["error"] is None
    assert elapsed < 60, f"/compare took {elapsed:.1f} s"
    assert {"baseline", "tq4", "k4v3"} <= set(out["modes"])
    assert out["max_new_tokens"] == 32


def test_fused_mode(client, clip):
    """The fused path (Triton kernels; the interpreter on CPU) stores exactly what TQ4 stores."""
    out = compare(client, clip, modes=["baseline", "tq4", "fused"], max_new_tokens=2)
    assert out["error"] is None
    fused, tq4 = out["modes"]["fused"], out["modes"]["tq4"]
    assert fused["ratio"] == pytest.approx(compression_ratio(128, 4, 4), rel=1e-9)
    check_kv_bytes(out, "fused", 4, 4)
    assert fused["kv_bytes"] == tq4["kv_bytes"]
    # Same quantizer, same cache contents over the prompt: only the attention kernel differs.
    for f, t in zip(fused["layer_fidelity"], tq4["layer_fidelity"], strict=True):
        assert f["k_cosine"] == pytest.approx(t["k_cosine"], abs=1e-3)
        assert f["v_cosine"] == pytest.approx(t["v_cosine"], abs=1e-3)
    assert fused["token_ids"][0] == tq4["token_ids"][0]


def test_five_concurrent_clients(app, clip):
    def one(_):
        return compare(Client(app.url, verbose=False), clip, modes=["baseline", "tq4"], max_new_tokens=4)

    with ThreadPoolExecutor(5) as pool:
        outs = list(pool.map(one, range(5)))
    assert all(o["error"] is None for o in outs)
    # Greedy decoding on one shared model: every client gets the same answers.
    assert len({(o["answers"]["baseline"], o["answers"]["tq4"]) for o in outs}) == 1
    assert all(o["modes"]["tq4"]["ratio"] >= 3.7 for o in outs)


def _write_wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000)
    return path


def _write_zero_frame_avi(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()  # header with a video stream, then no frames
    return path


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, clip) -> dict[str, Path]:
    sys.path.insert(0, str(REPO / "scripts"))
    from make_sample_clip import make_sample_clip

    d = tmp_path_factory.mktemp("bad")
    data = clip.read_bytes()
    (d / "empty.mp4").write_bytes(b"")
    (d / "notes.txt").write_text("not a video\n" * 10)
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (d / "too_big.mp4").write_bytes(data + os.urandom(int(1.5 * MAX_UPLOAD_MB * 2**20)))
    return {
        "empty": d / "empty.mp4",
        "text": d / "notes.txt",
        "corrupt": d / "truncated.mp4",
        "audio_only": _write_wav(d / "tone.wav"),
        "zero_frames": _write_zero_frame_avi(d / "zero_frames.avi"),
        "huge": make_sample_clip(d / "huge.mp4", seconds=1, fps=1, size=(4096, 2176)),
        "too_long": make_sample_clip(d / "long.mp4", seconds=MAX_CLIP_SECONDS + 2, fps=1, size=(32, 32)),
        "too_big": d / "too_big.mp4",
    }


BAD_INPUTS = {
    # id: (file key, question, words the message must contain)
    "empty-file": ("empty", "What moves?", "empty"),
    "text-file": ("text", "What moves?", "could not be read as a video"),
    "corrupt": ("corrupt", "What moves?", "could not be read as a video"),
    "audio-only": ("audio_only", "What moves?", "audio-only"),
    "zero-frames": ("zero_frames", "What moves?", "no frames"),
    "huge-resolution": ("huge", "What moves?", "over the limit"),
    "too-long": ("too_long", "What moves?", f"over the limit of {MAX_CLIP_SECONDS}"),
    "too-big": ("too_big", "What moves?", f"limit is {MAX_UPLOAD_MB} MB"),
    "no-file": (None, "What moves?", "Upload a video clip"),
    "empty-question": ("good", "", "Type a question"),
    "blank-question": ("good", "   \n ", "Type a question"),
    "long-question": ("good", "why? " * 1000, "limit is 1000"),
}


@pytest.mark.parametrize(("key", "question", "message"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_gives_message(client, clip, bad_files, key, question, message):
    path = clip if key == "good" else bad_files.get(key)
    out = client.predict(
        None if path is None else handle_file(str(path)), question, max_new_tokens=2, api_name="/compare"
    )
    assert set(out) == {"error"}
    assert message in out["error"]
    assert "Traceback" not in out["error"]


def test_fractional_max_new_tokens(client, clip):
    out = compare(client, clip, max_new_tokens=2.5)
    assert "whole number" in out["error"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_new_tokens": 0}, "less than minimum value 1"),
        ({"max_new_tokens": 100000}, "greater than maximum value 256"),
        ({"modes": ["baseline", "nope"]}, "nope"),
        ({"model": "no-such/model"}, "no-such/model"),
    ],
    ids=["tokens-0", "tokens-100000", "mode", "model"],
)
def test_out_of_range_options_refused_by_gradio(client, clip, kwargs, message):
    """Values outside a component's range or choices are refused by Gradio with a message."""
    with pytest.raises(gradio_client.exceptions.AppError, match=message):
        compare(client, clip, **kwargs)


def test_upload_over_the_hard_cap_is_refused(client, tmp_path):
    """Gradio itself refuses files over twice the limit, before they reach the app."""
    big = tmp_path / "huge_upload.mp4"
    big.write_bytes(os.urandom(2 * MAX_UPLOAD_MB * 2**20 + 4096))
    with pytest.raises(Exception, match="(?i)size|large|exceed"):
        client.predict(handle_file(str(big)), "What moves?", api_name="/compare")


def test_still_serving_after_bad_inputs(app, client, clip):
    """Runs after the bad inputs (file order): the next good request succeeds, and nothing
    unexpected was raised inside the app (it logs "comparison failed" for those)."""
    out = compare(client, clip, modes=["baseline", "tq4"], max_new_tokens=2)
    assert out["error"] is None and out["modes"]["tq4"]["ratio"] >= 3.7
    assert app.proc.poll() is None
    assert "comparison failed" not in app.log, app.log[-3000:]


# ---------------------------------------------------------------------------------------------
# In-process: what a CPU machine cannot show for real (the GPU memory line, CUDA out of memory).


@pytest.fixture(scope="module")
def app_module():
    spec = importlib.util.spec_from_file_location("turboquant_space_app", REPO / "space" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_result(**model) -> dict:
    """The parts of run_comparison's result that the memory outlook reads (Molmo2-8B-like dims)."""
    dims = {"name": "big", "num_layers": 36, "num_kv_heads": 8, "head_dim": 128, "dtype": "bfloat16"}
    return {
        "model": {**dims, "device": "cuda:0", **model},
        "context_tokens": 1000,
        "video_frames": 8,
        "modes": {
            "baseline": {"k_bits": None, "v_bits": None},
            "tq4": {"k_bits": 4, "v_bits": 4},
            "k4v3": {"k_bits": 4, "v_bits": 3},
        },
    }


def test_gpu_memory_line_and_max_context(app_module, monkeypatch):
    import torch

    total, weights = 80 * 2**30, 16 * 2**30
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(total_memory=total)
    )
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *a: weights)
    result = fake_result()
    out = {**result, "memory": app_module._memory_summary(result)}
    budget = total - weights
    # Bytes per token over 36 layers x 8 heads: 16-bit 2*128*2, K4/V4 2*(64+4), K4/V3 (64+4)+(48+4).
    per_token = {m: 36 * 8 * b for m, b in {"baseline": 512, "tq4": 136, "k4v3": 120}.items()}
    assert out["memory"]["kv_bytes_per_token"] == per_token
    fit = {m: budget // b for m, b in per_token.items()}
    assert out["memory"]["max_context_tokens"] == fit
    assert fit["baseline"] == 466_033 and fit["tq4"] == 1_754_480

    plot = app_module.memory_plot(out)
    gpu = plot[plot["series"] == "GPU memory for KV"]
    assert list(gpu["KV memory (GiB)"].unique()) == [64.0]
    # The x axis reaches past where the smallest cache fills the GPU.
    assert plot["context tokens"].max() > fit["k4v3"]
    base = plot[plot["series"] == "Baseline (16-bit)"]
    assert base["KV memory (GiB)"].max() > 64.0
    summary = app_module.memory_summary_md(out)
    assert "1,754,480 tokens (3.76× the baseline)" in summary
    assert "466,033 tokens (1.00× the baseline)" in summary


def test_no_gpu_line_omitted(app_module, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = fake_result(device="cpu")
    out = {**result, "memory": app_module._memory_summary(result)}
    assert out["memory"]["max_context_tokens"] is None
    assert "No GPU: line omitted" in app_module.memory_summary_md(out)
    assert "GPU memory for KV" not in set(app_module.memory_plot(out)["series"])


def test_cuda_out_of_memory_gives_message_and_frees_memory(app_module, monkeypatch, clip):
    import gradio as gr
    import torch

    def run_out_of_memory(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    freed = []
    monkeypatch.setattr(app_module, "_run", run_out_of_memory)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: freed.append(1))
    args = (str(clip), "What moves?", ["baseline", "tq4"], 4, "tiny-molmo2")
    out = app_module.compare_api(*args, progress=lambda *a, **k: None)
    assert set(out) == {"error"} and "ran out of memory" in out["error"]
    with pytest.raises(gr.Error, match="ran out of memory"):
        app_module.compare_ui(*args, progress=lambda *a, **k: None)
    assert len(freed) == 2
