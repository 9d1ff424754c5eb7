"""Video decoding and validation (turboquant.video) and the sample clip script."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest

from turboquant.video import load_video_frames, probe_video

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_sample_clip", ROOT / "scripts" / "make_sample_clip.py")
make_sample_clip_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_sample_clip_module)
make_sample_clip = make_sample_clip_module.make_sample_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_sample_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=3, fps=8, size=(160, 120))


def _all_frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_sample_clip_is_h264_with_moving_shapes(clip):
    info = probe_video(clip)
    assert (info["width"], info["height"], info["codec"]) == (160, 120, "h264")
    assert info["total_num_frames"] == 24 and info["fps"] == 8.0
    assert info["duration"] == pytest.approx(3.0)
    frames = _all_frames(clip)
    assert len(frames) == 24
    # Moving shapes: consecutive frames differ, and each shape's colour is present.
    assert np.abs(frames[0].astype(int) - frames[8].astype(int)).mean() > 1.0
    red = (frames[0][..., 0] > 150) & (frames[0][..., 1] < 100)
    blue = (frames[0][..., 2] > 150) & (frames[0][..., 0] < 100)
    assert red.sum() > 50 and blue.sum() > 50
    # Same seed, same clip; another seed moves the shapes elsewhere.
    again = make_sample_clip(clip.with_name("again.mp4"), seconds=3, fps=8, size=(160, 120))
    other = make_sample_clip(clip.with_name("other.mp4"), seconds=3, fps=8, size=(160, 120), seed=1)
    assert np.array_equal(_all_frames(again)[5], frames[5])
    assert not np.array_equal(_all_frames(other)[0], frames[0])


def test_make_sample_clip_cli_and_validation(tmp_path):
    out = tmp_path / "sub" / "c.mp4"
    assert make_sample_clip_module.main([str(out), "--seconds", "1", "--fps", "4", "--size", "64x48"]) == 0
    assert probe_video(out)["total_num_frames"] == 4
    with pytest.raises(ValueError, match="even"):
        make_sample_clip(tmp_path / "odd.mp4", size=(161, 120))
    with pytest.raises(ValueError, match="seconds"):
        make_sample_clip(tmp_path / "zero.mp4", seconds=0)


def test_load_video_frames_samples_like_molmo2(clip):
    frames, meta = load_video_frames(clip)
    # Molmo2's rule: at most 2 fps, last frame included: t = 0, 0.5, ..., 3.0 s.
    assert frames.shape == (7, 120, 160, 3) and frames.dtype == np.uint8
    assert np.allclose(meta["frames_indices"] / meta["fps"], [0, 0.5, 1, 1.5, 2, 2.5, 3])
    assert (meta["total_num_frames"], meta["fps"], meta["height"], meta["width"]) == (24, 8.0, 120, 160)
    # Independent decode: the frame shown at t is frame floor(t * fps), clamped to the last.
    every = _all_frames(clip)
    for got, idx in zip(frames, [0, 4, 8, 12, 16, 20, 23], strict=True):
        assert np.array_equal(got, every[idx])
    few, meta3 = load_video_frames(clip, max_frames=3)
    assert few.shape[0] == 3 and np.allclose(meta3["frames_indices"] / 8.0, [0, 1.5, 3])
    assert np.array_equal(few[1], every[12])


def _write_audio_only(path: Path) -> None:
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        c.mux(s.encode(frame))
        c.mux(s.encode())


def _write_zero_frames(path: Path) -> None:
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("mpeg4", rate=8)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()  # writes the header (a video stream) but no packets
        c.mux(s.encode())


def _write_truncated_faststart(path: Path) -> None:
    # Index (moov) first, so the header and packet list read fine and decoding hits the cut.
    full = path.with_name("full.mp4")
    rng = np.random.default_rng(0)
    with av.open(str(full), mode="w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        for _ in range(16):
            noise = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
            c.mux(s.encode(av.VideoFrame.from_ndarray(noise, format="rgb24")))
        c.mux(s.encode())
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such file"),
        ("directory", "not a regular file"),
        ("empty", "empty"),
        ("text", "could not be read as a video"),
        ("truncated", "could not be read as a video"),
        ("cut_after_index", "corrupt, decoding failed"),
        ("audio", "no video stream"),
        ("zero_frames", "no frames"),
    ],
)
def test_bad_videos_raise_clear_errors(tmp_path, clip, case, message):
    path = tmp_path / f"{case}.mp4"
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is not a video\n" * 50)
    elif case == "truncated":
        path.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    elif case == "cut_after_index":
        _write_truncated_faststart(path)
    elif case == "audio":
        path = tmp_path / "audio.wav"
        _write_audio_only(path)
    elif case == "zero_frames":
        path = tmp_path / "zero.avi"
        _write_zero_frames(path)
    with pytest.raises(ValueError, match=message) as err:
        load_video_frames(path)
    if case not in ("missing", "directory", "empty"):  # those name the path; the rest the file
        assert str(tmp_path) not in str(err.value) and repr(path.name) in str(err.value)


def test_limits_and_argument_types(clip):
    with pytest.raises(ValueError, match=r"160x120 = 19200 pixels.*limit of 10000"):
        load_video_frames(clip, max_pixels=10_000)
    with pytest.raises(ValueError, match=r"lasts 3.0 s, over the limit of 2"):
        probe_video(clip, max_seconds=2)
    with pytest.raises(TypeError, match="video_path: expected a str or os.PathLike"):
        load_video_frames(123)
    with pytest.raises(ValueError, match="max_frames"):
        load_video_frames(clip, max_frames=0)
