"""Where live frames go: a preview window, a virtual camera, a recording file, or an
MPEG-TS network stream (UDP, SRT).

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
        from ._av import import_av

        av = import_av()

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
        from ._av import import_av, video_frame

        av = import_av()

        if self._t0 is None:
            self._t0 = capture_time
        h, w = self.stream.height, self.stream.width
        frame = video_frame(av, rgb[:h, :w], "yuv420p")
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


class PreviewSink:
    """An OpenCV HighGUI window (resizable). ``main_thread``: the pipeline calls it from the
    thread that runs it, which must be the main thread; key presses go to ``on_key``, closing
    the window counts as 'q'."""

    main_thread = True

    def __init__(self, title: str = "realtime-style", on_key=None, overlay=None, size: tuple[int, int] | None = None):
        # cv2 must be loaded before PyAV (see realtime/_av.py); API users who import av
        # themselves should import cv2 first.
        import cv2  # noqa: F401

        self.name = "preview"
        self.size = size
        self.title = title
        self.on_key = on_key
        self.overlay = overlay  # callable -> str or None
        self._opened = False
        self._closed = False

    def _open(self, w: int, h: int) -> None:
        import os
        import sys

        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            # Qt aborts the whole process without a display, so say it before touching HighGUI
            raise OutputError("the preview window needs a display (DISPLAY is not set); "
                              "use --output FILE.mp4 or udp://HOST:PORT instead")
        fonts = "/usr/share/fonts/truetype/dejavu"
        if os.path.isdir(fonts):
            os.environ.setdefault("QT_QPA_FONTDIR", fonts)  # OpenCV's Qt ships no fonts
        import cv2

        try:
            # GUI_NORMAL: no toolbar, so the frame is shown 1:1 and the window stays resizable
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
            cv2.resizeWindow(self.title, w, h)
        except cv2.error as e:
            raise OutputError("the preview window could not open (no display, or OpenCV built without GUI: "
                              "pip install opencv-python, not -headless); use --output FILE.mp4 instead") from e
        self._opened = True

    def prepare(self) -> None:
        """Open the window before the pipeline's threads start, so a window problem surfaces
        before any frame is captured."""
        if not self._opened and self.size is not None:
            self._open(*self.size)

    def send(self, rgb: np.ndarray, capture_time: float) -> None:
        import cv2

        from .frames import rgb_to_bgr

        if not self._opened:
            self._open(rgb.shape[1], rgb.shape[0])
        bgr = rgb_to_bgr(rgb)
        text = self.overlay() if self.overlay else None
        if text:
            cv2.putText(bgr, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(bgr, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.imshow(self.title, bgr)
        key = cv2.waitKey(1) & 0xFF
        if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            key = ord("q")
        if key != 0xFF and self.on_key is not None:
            self.on_key(key)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._opened:
            import cv2

            cv2.destroyWindow(self.title)
            cv2.waitKey(1)


def _virtualcam_fix() -> str:
    import platform

    system = platform.system()
    if system == "Linux":
        return "load v4l2loopback: sudo modprobe v4l2loopback devices=1 exclusive_caps=1"
    return "install OBS Studio and start its Virtual Camera once (Tools > Start Virtual Camera), then stop it"


class VirtualCamSink:
    """pyvirtualcam (GPL-2.0, optional, imported here only): OBS Virtual Camera, v4l2loopback,
    Unity Capture. Frames are sent as RGB at the stream's size."""

    def __init__(self, size: tuple[int, int], fps: float, device: str | None = None, backend: str | None = None):
        try:
            import pyvirtualcam
        except ImportError as e:
            raise OutputError("the virtual camera needs pyvirtualcam (GPL-2.0): "
                              "pip install 'realtime-style[virtualcam]'") from e
        try:
            self.cam = pyvirtualcam.Camera(size[0], size[1], fps, fmt=pyvirtualcam.PixelFormat.RGB, device=device,
                                           backend=backend)
        except RuntimeError as e:
            reason = str(e).splitlines()[0].split(". Did you")[0]
            raise OutputError(f"no virtual camera available ({reason}); {_virtualcam_fix()}") from e
        self.name = f"virtualcam {self.cam.device}"
        self._closed = False

    def send(self, rgb: np.ndarray, capture_time: float) -> None:
        self.cam.send(np.ascontiguousarray(rgb))
        self.cam.sleep_until_next_frame()  # paced at the camera's fps, never faster

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.cam.close()


def open_sink(target: str, size: tuple[int, int], fps: float, on_key=None, overlay=None) -> Sink:
    """'preview', 'virtualcam', 'udp://HOST:PORT', 'srt://...', or a file ending in .mp4/.mkv/.mov/.ts."""
    if target == "preview":
        return PreviewSink(on_key=on_key, overlay=overlay, size=size)
    if target == "virtualcam":
        return VirtualCamSink(size, fps)
    if target.startswith(("udp://", "srt://")) or Path(target).suffix.lower() in (".mp4", ".mkv", ".mov", ".ts"):
        return EncoderSink(target, size, fps)
    raise OutputError(f"unknown output '{target}': use preview, virtualcam, FILE.mp4, udp://HOST:PORT or srt://HOST:PORT")
