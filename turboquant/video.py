"""Video decoding and validation: the one place a clip is opened, checked and sampled.

:func:`probe_video` reads a file's container and stream headers and packet timestamps (no
decoding) and rejects what cannot be a usable clip; :func:`load_video_frames` then decodes only
the frames Molmo2 samples (molmo-utils' ``uniform_last_frame`` rule: at most ``max_fps``
frames per second, at most ``max_frames``, always including the last frame) and returns them
with the metadata Molmo2's processor expects. Decoding is PyAV; frames are streamed, so memory
holds only the sampled frames.

Every problem raises ``ValueError`` (``TypeError`` for a path that is not a path) whose message
says what is wrong with which file: missing, not a file, empty, not a video, audio only, no
frames, resolution or duration over the limits, corrupt.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

MAX_FRAMES = 64  # Molmo2's default frame budget
MAX_FPS = 2.0  # Molmo2 samples at most 2 frames per second
MAX_PIXELS = 3840 * 2160  # 4K UHD


def _check_path(path: object) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"video_path: expected a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    if not p.exists():
        raise ValueError(f"video_path: no such file: {str(p)!r}")
    if not p.is_file():
        raise ValueError(f"video_path: not a regular file: {str(p)!r}")
    if p.stat().st_size == 0:
        raise ValueError(f"video_path: the file is empty (0 bytes): {str(p)!r}")
    return p


def _positive(name: str, value: object, kind=(int, float)) -> None:
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        raise ValueError(f"{name}: expected a positive {'int' if kind is int else 'number'}, got {value!r}")


def _too_long(p: Path, seconds: float, limit: float) -> ValueError:
    return ValueError(f"video_path: {p.name!r} lasts {seconds:.1f} s, over the limit of {limit} s")


def _reason(e: Exception) -> str:
    """FFmpeg's words without its echo of the path (an upload's temporary path says nothing)."""
    return getattr(e, "strerror", None) or str(e)


def _open(p: Path):
    import av

    try:
        return av.open(str(p))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise ValueError(f"video_path: {p.name!r} could not be read as a video ({_reason(e)})") from None


def probe_video(path, *, max_pixels: int = MAX_PIXELS, max_seconds: float | None = None) -> dict:
    """Check that ``path`` is a decodable-looking video and describe it, without decoding.

    Returns a dict: ``width``, ``height``, ``fps`` (float), ``duration`` (seconds, from the
    first frame's timestamp to the end of the last frame), ``total_num_frames``, ``codec``,
    ``start`` (timestamp of the first frame, seconds) and ``frame_times`` (presentation
    timestamps of all frames, sorted, seconds, float64 ``[total_num_frames]``).

    Raises ``ValueError`` for a missing, non-regular, empty or unreadable file, one without a
    video stream (e.g. audio only), without video frames, with more than ``max_pixels`` pixels
    per frame, or longer than ``max_seconds``.
    """
    import av

    p = _check_path(path)
    _positive("max_pixels", max_pixels, int)
    if max_seconds is not None:
        _positive("max_seconds", max_seconds)
    with _open(p) as container:
        if not container.streams.video:
            what = "an audio-only file" if container.streams.audio else "a file without streams"
            raise ValueError(f"video_path: {p.name!r} has no video stream ({what})")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > max_pixels:
            raise ValueError(
                f"video_path: {p.name!r} is {width}x{height} = {width * height} pixels per frame, "
                f"over the limit of {max_pixels}"
            )
        rate = stream.average_rate or stream.guessed_rate
        declared = container.duration / 1e6 if container.duration else None  # microseconds
        if max_seconds is not None and declared is not None and declared > max_seconds + 1:
            # Reject long uploads from the header, before reading every packet.
            raise _too_long(p, declared, max_seconds)
        try:
            pts = [pkt.pts for pkt in container.demux(stream) if pkt.size and pkt.pts is not None]
        except av.error.FFmpegError as e:
            raise ValueError(f"video_path: {p.name!r} is corrupt ({_reason(e)})") from None
        if not pts or width * height == 0:
            raise ValueError(f"video_path: {p.name!r} has a video stream but no frames")
        tb = float(stream.time_base)
        times = np.sort(np.asarray(pts, dtype=np.float64)) * tb
        if rate:
            fps = float(rate)
        else:  # no declared rate: the mean frame spacing (1 fps for a single frame)
            fps = (len(times) - 1) / (times[-1] - times[0]) if times[-1] > times[0] else 1.0
        duration = float(times[-1] - times[0]) + 1.0 / fps
        if max_seconds is not None and duration > max_seconds:
            raise _too_long(p, duration, max_seconds)
        return {
            "width": width,
            "height": height,
            "fps": fps,
            "duration": duration,
            "total_num_frames": len(times),
            "codec": stream.codec_context.name,
            "start": float(times[0]),
            "frame_times": times,
        }


def load_video_frames(
    path,
    max_frames: int = MAX_FRAMES,
    max_pixels: int = MAX_PIXELS,
    *,
    max_fps: float = MAX_FPS,
    max_seconds: float | None = None,
) -> tuple[np.ndarray, dict]:
    """Decode the frames Molmo2 samples from a video file.

    Args:
        path: the video file.
        max_frames: at most this many frames (int >= 1).
        max_pixels: reject frames larger than this (width × height).
        max_fps: sample at most this many frames per second (Molmo2: 2).
        max_seconds: reject clips longer than this (None: no limit).

    Returns:
        ``(frames, metadata)``: ``frames`` uint8 ``[T, H, W, 3]`` RGB; ``metadata`` a dict in
        the form molmo-utils' ``fetch_video`` gives and Molmo2's processor takes as
        ``video_metadata``: ``total_num_frames``, ``fps``, ``duration``, ``frames_indices``
        (sample time × fps, float64 ``[T]``; the processor prints ``index / fps`` as each
        frame's timestamp), ``height``, ``width``, ``video_backend`` ``"pyav"``.

    Raises:
        ValueError: see :func:`probe_video`; also a clip whose frames fail to decode.
    """
    import av
    from molmo_utils.vision_process import sample_times

    _positive("max_frames", max_frames, int)
    _positive("max_fps", max_fps)
    info = probe_video(path, max_pixels=max_pixels, max_seconds=max_seconds)
    times = sample_times(info["duration"], max_frames, "uniform_last_frame", max_fps=max_fps)
    # The frame shown at time t is the last one starting at or before it (molmo-utils' rule).
    ends = np.append(info["frame_times"][1:] - info["start"], info["duration"])
    wanted = np.minimum(np.searchsorted(ends, times, side="right"), len(ends) - 1)
    picked: dict[int, np.ndarray] = {}
    last = None
    p = Path(path)
    with _open(p) as container:
        try:
            for i, frame in enumerate(container.decode(video=0)):
                if i in wanted:
                    picked[i] = frame.to_ndarray(format="rgb24")
                last = frame
                if i >= wanted[-1]:
                    break
        except av.error.FFmpegError as e:
            raise ValueError(f"video_path: {p.name!r} is corrupt, decoding failed ({_reason(e)})") from None
    if last is None:
        raise ValueError(f"video_path: {p.name!r} has no decodable frames")
    # A decoder may return fewer frames than there are packets: use its last frame for the rest.
    tail = last.to_ndarray(format="rgb24")
    frames = np.stack([picked.get(int(i), tail) for i in wanted])
    metadata = {
        "total_num_frames": info["total_num_frames"],
        "fps": info["fps"],
        "duration": info["duration"],
        "frames_indices": np.asarray(times, dtype=np.float64) * info["fps"],
        "height": int(frames.shape[1]),
        "width": int(frames.shape[2]),
        "video_backend": "pyav",
    }
    return frames, metadata
