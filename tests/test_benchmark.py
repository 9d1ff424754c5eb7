"""The A/B benchmark: run_comparison, load_model and the offline CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from turboquant import benchmark, storage
from turboquant.benchmark import (
    MODES,
    check_modes,
    kv_memory_vs_context,
    load_model,
    main,
    run_comparison,
    token_agreement,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def llama():
    return load_model("tiny-llama", device=DEVICE)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location(
        "make_sample_clip", ROOT / "scripts" / "make_sample_clip.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_sample_clip(
        tmp_path_factory.mktemp("bench") / "clip.mp4", seconds=1, fps=8, size=(160, 120)
    )


def test_token_agreement():
    assert token_agreement([1, 2, 3, 4], [1, 2, 3, 4]) == (1.0, None)
    assert token_agreement([1, 2, 3, 4], [1, 2, 9, 4]) == (0.75, 2)
    assert token_agreement([1, 2, 3, 4], [1, 2]) == (0.5, 2)  # missing tokens count as different
    assert token_agreement([1, 2], [1, 2, 3]) == (1.0, 2)  # the longer answer diverges at 2


def test_check_modes():
    assert check_modes("baseline, tq4") == ("baseline", "tq4")
    assert check_modes(MODES) == MODES
    for bad in (("baseline", "tq5"), (), ("tq4", "tq4"), "nope"):
        with pytest.raises(ValueError, match="modes: expected distinct names from"):
            check_modes(bad)


def test_run_comparison_on_the_tiny_llama(llama):
    model, tok = llama
    calls = []
    result = run_comparison(
        model,
        tok,
        "What is moving?",
        modes=("baseline", "tq4", "k4v3"),
        max_new_tokens=6,
        progress=lambda f, d: calls.append((f, d)),
    )
    info = result["model"]
    assert (info["num_layers"], info["num_kv_heads"], info["head_dim"]) == (2, 2, 128)
    assert info["name"] == "tiny-llama" and result["video_frames"] == 0
    ctx = result["context_tokens"]
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "What is moving?"}], add_generation_prompt=True
    )
    assert ctx == len(chat["input_ids"])
    base = result["modes"]["baseline"]
    # The baseline against itself.
    assert base["agreement"] == 1.0 and base["first_divergence"] is None
    assert all(
        r["k_cosine"] == pytest.approx(1.0) and r["v_cosine"] == pytest.approx(1.0)
        for r in base["layer_fidelity"]
    )
    assert base["ratio"] == 1.0 and base["kv_bytes"] == base["baseline_kv_bytes"]
    assert base["working_buffer_bytes"] == 0
    for mode, (k_bits, v_bits) in (("tq4", (4, 4)), ("k4v3", (4, 3))):
        r = result["modes"][mode]
        tokens = ctx + r["new_tokens"] - 1  # the last token is never written to the cache
        assert r["kv_bytes"] == storage.kv_cache_bytes(tokens, 2, 2, 128, k_bits, v_bits)
        assert r["baseline_kv_bytes"] == storage.kv_cache_bytes(tokens, 2, 2, 128)
        assert r["ratio"] == pytest.approx(storage.compression_ratio(128, k_bits, v_bits))
        assert len(r["layer_fidelity"]) == 2
        # The unfused path also holds a 16-bit dequantized buffer (at least the tokens' K/V).
        assert r["working_buffer_bytes"] >= r["baseline_kv_bytes"]
        assert 0 <= r["agreement"] <= 1 and r["prefill_ms"] > 0
        assert r["text"] == tok.decode(r["token_ids"], skip_special_tokens=True)
    assert result["modes"]["tq4"]["ratio"] >= 3.7
    # Layer 0 sees identical inputs in both runs: its cosine is the quantizer's own fidelity.
    assert result["modes"]["tq4"]["layer_fidelity"][0]["k_cosine"] >= 0.99
    assert result["modes"]["tq4"]["layer_fidelity"][0]["v_cosine"] >= 0.99
    # Progress: from 0 to 1, in order, through the prefill and the tokens of every mode.
    fractions = [f for f, _ in calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    for mode in ("baseline", "tq4", "k4v3"):
        assert any(d == f"{mode}: prefill" for _, d in calls)
        assert any(d.startswith(f"{mode}: decoding token") for _, d in calls)
    # The memory curve for the app.
    curve = kv_memory_vs_context(result, [1024, 32768])
    assert curve["tq4"] == [storage.kv_cache_bytes(n, 2, 2, 128, 4, 4) for n in (1024, 32768)]
    assert curve["baseline"][1] == 32768 * 2 * 2 * 2 * 128 * 2


def test_warmup_runs_every_mode_once_untimed(llama, monkeypatch):
    """Where kernels compile on first use (CUDA), each mode runs WARMUP_TOKENS tokens untimed
    before the timed runs; the reported results are those of the timed runs."""
    model, tok = llama
    # under the CPU interpreter nothing compiles: no warm-up there (keeps the suite fast)
    assert benchmark.needs_warmup(model) == (model.device.type == "cuda")
    lengths = []
    timed = benchmark.timed_generate

    def spy(model, inputs, cache, max_new_tokens, on_token=None):
        lengths.append(max_new_tokens)
        return timed(model, inputs, cache, max_new_tokens, on_token)

    monkeypatch.setattr(benchmark, "timed_generate", spy)
    monkeypatch.setattr(benchmark, "needs_warmup", lambda model: True)
    result = run_comparison(model, tok, "What is moving?", modes=("baseline", "tq4"), max_new_tokens=4)
    assert lengths == [benchmark.WARMUP_TOKENS] * 2 + [4, 4]
    assert [r["new_tokens"] for r in result["modes"].values()] == [4, 4]


def test_run_comparison_rejects_bad_arguments(llama, clip):
    model, tok = llama
    with pytest.raises(ValueError, match="modes"):
        run_comparison(model, tok, "hi", modes=("baseline", "int8"))
    with pytest.raises(ValueError, match="takes no video"):
        run_comparison(model, tok, "hi", video_path=clip, modes=("baseline",))
    with pytest.raises(ValueError, match="prompt"):
        run_comparison(model, tok, "", modes=("baseline",))
    with pytest.raises(ValueError, match="max_new_tokens"):
        run_comparison(model, tok, "hi", max_new_tokens=0)
    with pytest.raises(TypeError, match="PreTrainedModel"):
        run_comparison("model", tok, "hi")


def test_load_model_without_network_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match=r"cannot download 'someone/not-a-cached-model'.*local .*path"):
        load_model("someone/not-a-cached-model")
    with pytest.raises(ValueError, match="no config.json"):
        load_model(str(tmp_path))


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # the CLI sets it itself
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]  # keep the caller's entries
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join(path))
    return subprocess.run(
        [sys.executable, "-m", "turboquant.benchmark", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )


@pytest.mark.skipif(
    not hasattr(__import__("transformers"), "Molmo2Config"),
    reason="needs a transformers with native Molmo2 (tested with 5.23)",
)
def test_cli_runs_offline_on_the_tiny_molmo2(clip):
    proc = _cli(
        "--model",
        "tiny-molmo2",
        "--video",
        str(clip),
        "--prompt",
        "What is moving?",
        "--modes",
        "baseline,tq4,fused",
        "--max-new-tokens",
        "3",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    if not torch.cuda.is_available():
        assert "TRITON_INTERPRET=1" in proc.stderr
    result = json.loads(proc.stdout)
    assert result["model"]["name"] == "tiny-molmo2" and result["video_frames"] == 3
    assert list(result["modes"]) == ["baseline", "tq4", "fused"]
    for mode in ("tq4", "fused"):
        r = result["modes"][mode]
        assert r["ratio"] == pytest.approx(storage.compression_ratio(128, 4, 4))
        assert r["new_tokens"] == 3 and r["text"].strip()
        keys = {
            "kv_bytes",
            "baseline_kv_bytes",
            "prefill_ms",
            "decode_ms",
            "decode_tokens_per_s",
            "agreement",
            "first_divergence",
            "layer_fidelity",
        }
        assert keys <= set(r)
    # The fused kernels and the unfused cache read the same compressed tensors; only the
    # unfused one also keeps a dequantized 16-bit buffer.
    assert result["modes"]["fused"]["kv_bytes"] == result["modes"]["tq4"]["kv_bytes"]
    assert result["modes"]["fused"]["working_buffer_bytes"] == 0
    assert result["modes"]["tq4"]["working_buffer_bytes"] > 0
    assert result["modes"]["fused"]["layer_fidelity"][0]["k_cosine"] == pytest.approx(
        result["modes"]["tq4"]["layer_fidelity"][0]["k_cosine"], abs=1e-6
    )


def test_cli_table_on_the_tiny_llama_and_errors(capsys, monkeypatch):
    # In-process (the subprocess path is covered above): the table, then errors without tracebacks.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["--model", "tiny-llama", "--modes", "baseline,k4v3", "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert "k4v3" in out and "4.27" in out and "head_dim 128" in out and "[baseline]" in out
    with pytest.raises(SystemExit) as exc:
        main(["--model", "tiny-llama", "--modes", "baseline,int8"])
    assert exc.value.code == 2 and "modes: expected distinct names" in capsys.readouterr().err
    assert main(["--model", "someone/not-a-cached-model", "--modes", "baseline"]) == 2
    assert "cannot download 'someone/not-a-cached-model'" in capsys.readouterr().err
