"""Where live frames go: a recording file or an MPEG-TS network stream (UDP, SRT).

A sink is opened with the frame size and rate, takes uint8 RGB frames with their capture
time, and is closed (finalised) exactly once. ``open_sink`` looks one up by its target.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import OutputError


class Sink(Protocol):
    name: str

    def send(self, rgb: np.ndarray, capture_time: float) -> None: ...

    def close(self) -> None: ...


class EncoderSink:
    """H.264 through PyAV: an .mp4/.mkv file, or MPEG-TS to udp:// or srt:// with low-latency settings.

    Timestamps come from the capture times, so the result keeps the real pacing (dropped
    frames leave gaps, not a faster clip).
    """

    TIME_BASE = Fraction(1, 90000)

    def __init__(self, target: str, size: tuple[int, int], fps: float, bitrate: int = 4_000_000):
        import av

        self.name = target
        self.network = "://" in target
        w, h = size
        try:
            if self.network:
                self.container = av.open(target, "w", format="mpegts")
            else:
                if not Path(target).parent.exists():
                    raise OutputError(f"output folder {Path(target).parent} does not exist")
                self.container = av.open(target, "w")
        except av.error.FFmpegError as e:
            raise OutputError(f"cannot open output {target}: {e}") from e
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height = w - w % 2, h - h % 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.time_base = self.TIME_BASE
        opts = {"preset": "ultrafast", "tune": "zerolatency"}
        if self.network:
            self.stream.bit_rate = bitrate
            opts["g"] = str(max(1, int(fps)))  # a keyframe every second so receivers can join
        self.stream.options = opts
        self._t0: float | None = None
        self._last_pts = -1
        self._closed = False

    def send(self, rgb: np.ndarray, capture_time: float) -> None:
        import av

        if self._t0 is None:
            self._t0 = capture_time
        h, w = self.stream.height, self.stream.width
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24")
        pts = int(round((capture_time - self._t0) / self.TIME_BASE))
        frame.pts = max(pts, self._last_pts + 1)  # strictly increasing
        frame.time_base = self.TIME_BASE
        self._last_pts = frame.pts
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._t0 is not None:
                self.container.mux(self.stream.encode(None))
        finally:
            self.container.close()

    def __enter__(self) -> EncoderSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_sink(target: str, size: tuple[int, int], fps: float) -> Sink:
    """'udp://HOST:PORT', 'srt://...', or a file path ending in .mp4/.mkv/.mov/.ts."""
    if target.startswith(("udp://", "srt://")) or Path(target).suffix.lower() in (".mp4", ".mkv", ".mov", ".ts"):
        return EncoderSink(target, size, fps)
    raise OutputError(f"unknown output '{target}': use FILE.mp4, udp://HOST:PORT or srt://HOST:PORT "
                      f"(the preview window and virtual camera are not built yet)")
