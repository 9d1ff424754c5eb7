"""Write a small synthetic H.264 mp4 of moving shapes (for tests and the app's examples).

    python scripts/make_sample_clip.py OUT.mp4 [--seconds 3] [--fps 8] [--size 160x120] [--seed 0]

A dark background with a red circle, a blue square and a green triangle moving on seeded
straight paths that bounce off the edges. Written with PyAV (libx264, yuv420p), so the frame
size must be even.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _render(t: float, width: int, height: int, shapes: list[dict]) -> np.ndarray:
    """One RGB frame ``uint8 [height, width, 3]`` at time ``t`` (seconds)."""
    frame = np.full((height, width, 3), 24, dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    for s in shapes:
        # Bounce: fold the straight path back into [r, size - r] (a triangle wave).
        cx, cy = (
            s["r"] + abs((s["p"][i] + s["v"][i] * t) % (2 * span) - span)
            for i, span in enumerate((width - 2 * s["r"], height - 2 * s["r"]))
        )
        dx, dy, r = xx - cx, yy - cy, s["r"]
        if s["kind"] == "circle":
            mask = dx * dx + dy * dy <= r * r
        elif s["kind"] == "square":
            mask = (abs(dx) <= r) & (abs(dy) <= r)
        else:  # triangle pointing up
            mask = (dy <= r) & (dy >= -r) & (abs(dx) <= (dy + r) / 2)
        frame[mask] = s["color"]
    return frame


def make_sample_clip(
    path, seconds: float = 3, fps: int = 8, size: tuple[int, int] = (160, 120), seed: int = 0
) -> Path:
    """Write the clip to ``path`` and return it as a ``Path``.

    Args:
        path: output file (``.mp4``); parent folders are created.
        seconds: duration (> 0). fps: frames per second (int >= 1).
        size: ``(width, height)``, even numbers >= 16 (H.264 with 4:2:0 chroma).
        seed: seeds the shapes' start positions and velocities.
    """
    import av

    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 < seconds <= 600:
        raise ValueError(f"seconds: expected a number in (0, 600], got {seconds!r}")
    if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= 120:
        raise ValueError(f"fps: expected an int in [1, 120], got {fps!r}")
    width, height = size
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 16 or v % 2 for v in (width, height)):
        raise ValueError(f"size: expected (width, height) of even ints >= 16, got {size!r}")
    rng = np.random.default_rng(seed)
    r = max(4, min(width, height) // 8)
    shapes = [
        {
            "kind": kind,
            "color": color,
            "r": r,
            "p": rng.uniform(0, 1, 2) * (width, height),
            "v": rng.uniform(0.3, 0.8, 2) * (width, height) * rng.choice([-1, 1], 2),
        }
        for kind, color in (("circle", (220, 40, 40)), ("square", (40, 80, 230)), ("triangle", (40, 200, 70)))
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for i in range(max(1, round(seconds * fps))):
            frame = av.VideoFrame.from_ndarray(_render(i / fps, width, height, shapes), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())  # flush the encoder
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="output .mp4")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument("--size", default="160x120", help="WIDTHxHEIGHT, even numbers")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size: expected WIDTHxHEIGHT, got {args.size!r}")
    print(make_sample_clip(args.path, args.seconds, args.fps, (width, height), args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
