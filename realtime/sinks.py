"""Where live frames go: a preview window, a virtual camera, a recording file, or an
MPEG-TS network stream (UDP, SRT).

A sink is opened with the frame size and rate, takes uint8 RGB frames with their capture
time, and is closed (finalised) exactly once; ``close`` is safe twice. Sinks are looked up by
their target through a name registry (``register_sink``, ``open_sink``), as backends are.
Files are written under a temporary name and appear under theirs when closed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .errors import OutputError
from .outputs import OutputFile

if TYPE_CHECKING:
    from .sources import MediaClock

FILE_SUFFIXES = (".mp4", ".mkv", ".mov", ".ts")
log = logging.getLogger(__name__)


class Sink(Protocol):
    name: str

    def send(self, rgb: np.ndarray, capture_time: float) -> None: ...

    def close(self) -> None: ...


class EncoderSink:
    """H.264 through PyAV: an .mp4/.mkv file, or MPEG-TS to udp:// or srt:// with low-latency settings.

    Timestamps come from the capture times, so the result keeps the real pacing (dropped
    frames leave gaps, not a faster clip). Given a file source's ``MediaClock`` (``audio``), a
    file also gets that file's sound for the recorded stretch, encoded as AAC when it closes
    (on the closing thread: about a second per few minutes of sound).
    """

    TIME_BASE = Fraction(1, 90000)

    def __init__(self, target: str, size: tuple[int, int], fps: float, bitrate: int = 4_000_000,
                 inputs: tuple[Path, ...] = (), overwrite: bool = False, audio: MediaClock | None = None):
        from .media import import_av

        av = import_av()

        self.name = target
        self.network = "://" in target
        self.file: OutputFile | None = None
        w, h = size
        try:
            if self.network:
                self.container = av.open(target, "w", format="mpegts")
            else:
                self.file = OutputFile(target, inputs=inputs, overwrite=overwrite).__enter__()
                self.container = av.open(str(self.file.temp), "w")
        except av.error.ProtocolNotFoundError as e:
            raise OutputError(f"this FFmpeg build cannot send to {target.split(':')[0]}:// ; "
                              f"use udp://HOST:PORT or a file") from e
        except av.error.FFmpegError as e:
            if self.file is not None:
                self.file.__exit__(None, None, None)
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
        # a file source's sound, for the stretch of it this file records (AAC, added at close)
        self.audio_clock = audio if self.file is not None else None
        self.audio_stream = None
        if self.audio_clock is not None:
            self._add_audio_stream(av)
        self._t0: float | None = None
        self._last_pts = -1
        self._closed = False

    AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)

    def _add_audio_stream(self, av) -> None:
        """An AAC stream for the file source's sound (at a rate AAC has, 48 kHz at most); without
        one (no audio, an unreadable file) the recording is silent, as a camera's."""
        try:
            with av.open(self.audio_clock.path) as src:
                ctx = src.streams.audio[0].codec_context
                rate, channels = ctx.sample_rate or 48000, ctx.channels or 2
            rate = rate if rate in self.AAC_RATES and rate <= 48000 else 48000
            stream = self.container.add_stream("aac", rate=rate)
            stream.layout = "mono" if channels == 1 else "stereo"
            stream.format = "fltp"
        except (av.error.FFmpegError, IndexError, AttributeError, ValueError):
            self.audio_clock = None
            return
        self.audio_stream = stream

    def _mux_audio(self) -> None:
        """The source's sound from the first recorded frame to the end of the last one."""
        from .media import audio_window, import_av

        av = import_av()
        clock, stream = self.audio_clock, self.audio_stream
        start = clock.media_time(self._t0)
        end = start + self._last_pts * float(self.TIME_BASE) + 1.0 / float(self.stream.average_rate or 30)
        layout = stream.layout.name
        for block in audio_window(clock.path, max(0.0, start), end, clock.period, stream.rate, layout):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block, np.float32), format="fltp", layout=layout)
            frame.sample_rate = stream.rate
            self.container.mux(stream.encode(frame))
        self.container.mux(stream.encode(None))

    def _mux_audio_or_warn(self) -> None:
        from .media import import_av

        ffmpeg_error = import_av().error.FFmpegError
        try:
            self._mux_audio()
        except (ffmpeg_error, OSError, ValueError) as e:  # the picture is kept whatever the sound does
            log.warning("the recording %s has no sound: %s", self.name, e)

    def send(self, rgb: np.ndarray, capture_time: float) -> None:
        from .media import import_av, video_frame

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
        """Finalise; a file with at least one frame is then renamed into place."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._t0 is not None:
                self.container.mux(self.stream.encode(None))
                if self.audio_stream is not None:
                    self._mux_audio_or_warn()
        finally:
            self.container.close()
            if self.file is not None:
                try:
                    if self._t0 is not None:
                        self.file.commit()
                finally:
                    self.file.__exit__(None, None, None)

    @property
    def frames(self) -> int:
        return self._last_pts + 1 if self._t0 is not None else 0

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


class RecordingSink:
    """Always among the sinks of a session with a preview; writes only while recording is on.
    Each start opens a new file in ``folder``, each stop finalises it."""

    name = "recording"

    def __init__(self, folder: Path, size: tuple[int, int], fps: float, audio: MediaClock | None = None):
        self.folder, self.size, self.fps, self.audio = folder, size, fps, audio
        self._lock = threading.Lock()
        self._sink: EncoderSink | None = None
        self.files: list[Path] = []

    @property
    def active(self) -> bool:
        return self._sink is not None

    def toggle(self) -> Path | None:
        with self._lock:
            if self._sink is not None:
                self._sink.close()
                self._sink = None
                return None
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / time.strftime(f"recording-%Y%m%d-%H%M%S-{len(self.files)}.mp4")
            self._sink = EncoderSink(str(path), self.size, self.fps, audio=self.audio)
            self.files.append(path)
            return path

    def send(self, rgb: np.ndarray, capture_time: float) -> None:
        with self._lock:
            if self._sink is not None:
                self._sink.send(rgb, capture_time)

    def close(self) -> None:
        with self._lock:
            if self._sink is not None:
                self._sink.close()
                self._sink = None


@dataclass
class SinkContext:
    """What a sink may need besides its target."""

    size: tuple[int, int]
    fps: float
    on_key: Callable[[int], None] | None = None
    overlay: Callable[[], str | None] | None = None
    inputs: tuple[Path, ...] = ()  # files an output must never be (the source, the styles)
    overwrite: bool = False
    options: dict = field(default_factory=dict)
    audio: MediaClock | None = None  # a file source's clock: recordings carry its sound


SinkFactory = Callable[[str, SinkContext], Sink]
_SINKS: dict[str, tuple[Callable[[str], bool], SinkFactory]] = {}


def register_sink(name: str, matches: Callable[[str], bool], factory: SinkFactory) -> None:
    """Make ``factory(target, context)`` the sink for every target ``matches`` accepts."""
    _SINKS[name] = (matches, factory)


def sink_kind(target: str) -> str:
    for name, (matches, _) in _SINKS.items():
        if matches(target):
            return name
    raise OutputError(f"unknown output '{target}': use preview, virtualcam, FILE.mp4 (.mkv, .mov, .ts), "
                      f"udp://HOST:PORT or srt://HOST:PORT")


def open_sink(target: str, context: SinkContext) -> Sink:
    """The registered sink for ``target``: 'preview', 'virtualcam', 'udp://HOST:PORT',
    'srt://...', or a file ending in .mp4/.mkv/.mov/.ts."""
    return _SINKS[sink_kind(target)][1](target, context)


register_sink("preview", lambda t: t == "preview",
              lambda t, c: PreviewSink(on_key=c.on_key, overlay=c.overlay, size=c.size))
register_sink("virtualcam", lambda t: t == "virtualcam", lambda t, c: VirtualCamSink(c.size, c.fps))
register_sink("stream", lambda t: t.startswith(("udp://", "srt://")),
              lambda t, c: EncoderSink(t, c.size, c.fps, **c.options))
register_sink("file", lambda t: "://" not in t and Path(t).suffix.lower() in FILE_SUFFIXES,
              lambda t, c: EncoderSink(t, c.size, c.fps, inputs=c.inputs, overwrite=c.overwrite, audio=c.audio))
