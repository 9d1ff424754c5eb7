"""Molmo2 integration: the tiny offline Molmo2, its processor path, the fused runner, install/uninstall."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from turboquant.benchmark import enable_triton_interpreter_without_cuda

enable_triton_interpreter_without_cuda()  # before turboquant.triton is imported (CPU runs)

transformers = pytest.importorskip("transformers")
if not hasattr(transformers, "Molmo2Config"):
    pytest.skip("needs a transformers with native Molmo2 (tested with 5.23)", allow_module_level=True)

from turboquant import storage  # noqa: E402
from turboquant.hf import cache_kwargs  # noqa: E402
from turboquant.hf.molmo2 import (  # noqa: E402
    FusedTurboQuantRunner,
    build_molmo2_inputs,
    install_fused_attention,
    uninstall_fused_attention,
)
from turboquant.hf.tiny_molmo2 import FRAME_SIZE, PATCH_SIZE, TorchMolmo2VideoProcessor, build_tiny_molmo2  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ROOT = Path(__file__).resolve().parents[1]


def _make_clip(path: Path, seconds: float) -> Path:
    spec = importlib.util.spec_from_file_location(
        "make_sample_clip", ROOT / "scripts" / "make_sample_clip.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_sample_clip(path, seconds=seconds, fps=8, size=(160, 120))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    # 1 s: 3 sampled frames (t = 0, 0.5, 1), ~60 prompt tokens: quick under the interpreter.
    return _make_clip(tmp_path_factory.mktemp("molmo2") / "clip.mp4", seconds=1)


@pytest.fixture(scope="module")
def tiny():
    model, processor = build_tiny_molmo2(seed=0)
    return model.to(DEVICE), processor


def test_tiny_molmo2_is_a_deterministic_small_molmo2():
    a, proc = build_tiny_molmo2(seed=0)
    b, _ = build_tiny_molmo2(seed=0)
    c, _ = build_tiny_molmo2(seed=1)
    text = a.config.text_config
    assert type(a).__name__ == "Molmo2ForConditionalGeneration" and a.config.model_type == "molmo2"
    assert (text.head_dim, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == (
        128,
        2,
        4,
        2,
    )
    assert a.dtype == torch.bfloat16 and not a.training
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["lm_head.weight"], sc["lm_head.weight"])
    assert sum(p.numel() for p in a.parameters()) < 3_000_000  # fast on CPU
    # Molmo2's own processor, fed by the torch-only video processor.
    assert type(proc).__mro__[1].__name__ == "Molmo2Processor"
    assert isinstance(proc.video_processor, TorchMolmo2VideoProcessor)


def test_clip_goes_through_the_molmo2_processing_path(tiny, clip):
    model, proc = tiny
    inputs = build_molmo2_inputs(proc, "What is moving?", clip)
    ids = inputs["input_ids"][0].tolist()
    tok = proc.tokenizer
    frames, rows, cols = inputs["video_grids"][0].tolist()
    assert (frames, rows, cols) == (3, 3, 3)
    # One <im_patch> per pooled token, each frame wrapped in <frame_start>/<frame_end> with its
    # timestamp printed before it.
    assert ids.count(tok.convert_tokens_to_ids("<im_patch>")) == frames * rows * cols
    assert ids.count(tok.convert_tokens_to_ids("<frame_start>")) == frames
    decoded = tok.decode(ids)
    assert (
        "0.0 <frame_start>" in decoded and " 0.5 <frame_start>" in decoded and " 1.0 <frame_start>" in decoded
    )
    assert decoded.startswith("<s><|user|>\n0.0 <frame_start>")
    assert decoded.endswith("<frame_end>What is moving?</s>\n<|assistant|>\n")
    # Frame tokens form the bidirectional block (mm_token_type_ids == 1).
    mm = inputs["mm_token_type_ids"][0]
    assert int(mm.sum()) == frames * (rows * cols + 2)
    # Patches: [frames, (84/14)^2, 14*14*3]; every pooled token pools 4 distinct patches of its frame.
    per_frame = (FRAME_SIZE // PATCH_SIZE) ** 2
    assert inputs["pixel_values_videos"].shape == (frames, per_frame, PATCH_SIZE * PATCH_SIZE * 3)
    pooling = inputs["video_token_pooling"]
    assert pooling.shape == (frames * rows * cols, 4)
    for f in range(frames):
        block = pooling[f * rows * cols : (f + 1) * rows * cols]
        assert sorted(block.flatten().tolist()) == list(range(f * per_frame, (f + 1) * per_frame))


def test_video_processor_normalizes_and_patches_like_molmo2():
    # A uniform frame: every pixel becomes (v/255 - 0.5) / 0.5 after the resize.
    video = torch.full((2, 50, 70, 3), 200, dtype=torch.uint8)
    video[1] = 10
    out = TorchMolmo2VideoProcessor()(video.numpy(), do_sample_frames=False, return_tensors="pt")
    px = out["pixel_values_videos"]
    assert torch.allclose(px[0], torch.full_like(px[0], (200 / 255 - 0.5) / 0.5))
    assert torch.allclose(px[1], torch.full_like(px[1], (10 / 255 - 0.5) / 0.5))
    assert out["video_grids"].tolist() == [[2, 3, 3]]
    with pytest.raises(ValueError, match="do_sample_frames"):
        TorchMolmo2VideoProcessor()(video.numpy(), do_sample_frames=True)


def test_runner_answers_about_the_clip_end_to_end(tiny, clip):
    model, proc = tiny
    before = model.config.text_config._attn_implementation
    text, stats = FusedTurboQuantRunner(model, proc, bits=4).generate(
        "What is moving?", video_path=clip, max_new_tokens=4
    )
    assert isinstance(text, str) and text.strip()
    assert model.config.text_config._attn_implementation == before  # cleaned up
    # Independent count of what the cache must hold.
    prompt = build_molmo2_inputs(proc, "What is moving?", clip)["input_ids"].shape[1]
    layers, heads, d = 2, 2, 128
    assert stats["prompt_tokens"] == prompt and stats["video_frames"] == 3
    assert stats["new_tokens"] == 4  # the tiny model never emits EOS
    tokens = prompt + stats["new_tokens"] - 1
    assert stats["cache_tokens"] == tokens
    assert stats["kv_bytes_compressed"] == layers * tokens * heads * 2 * (d * 4 // 8 + 4)
    assert stats["kv_bytes_baseline"] == layers * tokens * heads * 2 * d * 2
    assert stats["kv_bytes_compressed"] == storage.kv_cache_bytes(tokens, layers, heads, d, 4, 4)
    assert stats["compression_ratio"] >= 3.7
    assert stats["compression_ratio"] == pytest.approx(storage.compression_ratio(d, 4, 4))
    assert stats["prefill_ms"] > 0 and stats["decode_ms"] > 0 and stats["decode_tokens_per_s"] > 0


def test_install_then_uninstall_is_bit_identical(tiny):
    model, proc = tiny
    inputs = build_molmo2_inputs(proc, "Describe the scene.", device=DEVICE)
    with torch.inference_mode():
        untouched = model(**inputs).logits
        store = install_fused_attention(model, bits=4, seed=42)
        assert model.config.text_config._attn_implementation == "triton_fa_tq4_kv"
        fused = model(**inputs, **cache_kwargs(store)).logits
        packed, norms = store.get_compressed_key(0)
        assert packed.shape == (1, 2, inputs["input_ids"].shape[1], 64) and packed.dtype == torch.uint8
        assert norms.dtype == torch.float32
        uninstall_fused_attention(model)
        restored = model(**inputs).logits
    assert model.config.text_config._attn_implementation == "sdpa"
    assert not any(hasattr(m, "_tq4_cache") for m in model.modules())
    assert torch.equal(restored, untouched)
    # The fused forward is an approximation of the same model, not something else.
    cos = torch.nn.functional.cosine_similarity(fused.float().flatten(1), untouched.float().flatten(1)).item()
    assert cos > 0.95
    uninstall_fused_attention(model)  # a second uninstall is a no-op


def test_clear_errors(tiny, tmp_path):
    from turboquant.hf.tiny import build_tiny_llama

    model, proc = tiny
    llama, tok = build_tiny_llama()
    for call in (
        lambda: install_fused_attention(llama),
        lambda: uninstall_fused_attention(llama),
        lambda: FusedTurboQuantRunner(llama, tok),
        lambda: FusedTurboQuantRunner("not a model", proc),
    ):
        with pytest.raises(TypeError, match="expected a Molmo2 model"):
            call()
    with pytest.raises(ValueError, match=r"bits: expected one of \(2, 3, 4\), got 5"):
        install_fused_attention(model, bits=5)
    with pytest.raises(TypeError, match="bits"):
        FusedTurboQuantRunner(model, proc, bits="4")
    with pytest.raises(ValueError, match="max_frames"):
        FusedTurboQuantRunner(model, proc, max_frames=0)
    with pytest.raises(TypeError, match="processor: expected a Molmo2 processor"):
        FusedTurboQuantRunner(model, proc.tokenizer.backend_tokenizer)
    runner = FusedTurboQuantRunner(model, proc)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01garbage" * 100)
    for path, message in (
        (tmp_path / "missing.mp4", "no such file"),
        (empty, "empty"),
        (corrupt, "could not be read as a video"),
    ):
        with pytest.raises(ValueError, match=message):
            runner.generate("What is moving?", video_path=path, max_new_tokens=2)
    with pytest.raises(ValueError, match="prompt"):
        runner.generate("   ", max_new_tokens=2)
    assert model.config.text_config._attn_implementation == "sdpa"  # nothing left installed
