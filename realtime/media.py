"""Media files and streams: opening an input with its checks, upright RGB frames with their
timestamps, the audio plan, and the H.264 muxer. File jobs, the live file source and the
temporal evaluation all read video through ``MediaInput``.

PyAV is always loaded after OpenCV: with PyAV's bundled FFmpeg libraries loaded first,
OpenCV's Qt window never opens (``cv2.namedWindow`` blocks forever; seen with opencv-python
5.0 and av 18.1). Every module of this package gets PyAV from ``import_av``.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import BadVideoError, InputNotFoundError
from .frames import Frame

OUTPUT_SUFFIXES = {".mp4", ".mkv", ".mov"}
COPYABLE_AUDIO = {".mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
                  ".mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le"},
                  ".mkv": None}  # None: any codec can be copied


def import_av():
    import cv2  # noqa: F401 - order matters, see the module docstring

    import av

    return av


def video_frame(av, rgb: np.ndarray, pix_fmt: str):
    """A PyAV VideoFrame of a uint8 RGB image, ready for an encoder that takes pix_fmt.

    yuv420p is made here with OpenCV because FFmpeg's swscale, which the encoder would use
    otherwise, is ten times slower on two cores (4.8 against 0.4 ms for 640x360). The result is
    BT.601 limited range, as swscale's default (the same luma within 0.03 grey levels; the
    chroma is the 2x2 mean, within 0.3 levels of swscale's on smooth images). Other formats and
    odd sizes go through swscale in the encoder.
    """
    import cv2

    h, w = rgb.shape[:2]
    rgb = np.ascontiguousarray(rgb)
    if pix_fmt != "yuv420p" or h % 2 or w % 2:
        return av.VideoFrame.from_ndarray(rgb, format="rgb24")
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)  # its luma is right; its chroma is point-sampled
    ycrcb = cv2.cvtColor(cv2.resize(rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2YCrCb)
    ycrcb = cv2.convertScaleAbs(ycrcb, alpha=224 / 255, beta=128 * (1 - 224 / 255))  # full -> limited chroma range
    chroma = i420[h:].reshape(2, -1)
    chroma[0] = ycrcb[..., 2].reshape(-1)  # U = Cb
    chroma[1] = ycrcb[..., 1].reshape(-1)  # V = Cr
    return av.VideoFrame.from_ndarray(i420, format="yuv420p")


def audio_window(path: str, start: float, end: float, period: float | None, rate: int,
                 layout: str) -> Iterator[np.ndarray]:
    """A file's sound from media time ``start`` to ``end`` (seconds, loops unrolled: with a
    ``period``, time t plays the file at t mod period) as planar float32 (channels, n) blocks
    at ``rate`` and ``layout``; silence where the file has none, so the total is always
    round((end - start) * rate) samples. Loops are counted with integers, so float rounding at a
    loop's edge can neither repeat nor skip one."""
    av = import_av()
    channels = len(av.AudioLayout(layout).channels)
    total = int(round((end - start) * rate))
    loop = int(start // period) if period else 0
    done = 0  # samples yielded so far
    while done < total:
        base = loop * period if period else 0.0
        stop = total if not period else min(total, int(round(((loop + 1) * period - start) * rate)))
        if stop > done:
            a = start + done / rate - base  # media time where this loop's stretch begins
            yield from _audio_stretch(av, path, a, stop - done, rate, layout, channels)
            done = stop
        loop += 1
        if not period:
            break


def _audio_stretch(av, path: str, a: float, want: int, rate: int, layout: str,
                   channels: int) -> Iterator[np.ndarray]:
    """``want`` samples of a file's sound from media time ``a``, gaps and the end padded with silence."""
    sent = 0
    with av.open(path) as src:
        stream = src.streams.audio[0]
        if a > 1.0 and stream.time_base:  # start near the stretch, not at the file's start (late windows)
            src.seek(int((a - 1.0) / stream.time_base), stream=stream, backward=True)
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        t = None  # media time of the next resampled sample (the first decoded frame's, after a seek)
        for frame in src.decode(stream):
            if t is None:
                t = float(frame.time or 0.0)
            for out in resampler.resample(frame):
                block = out.to_ndarray()
                skip = int(round((a + sent / rate - t) * rate))  # < 0: the sound starts later than needed
                t += block.shape[1] / rate
                if skip < 0:
                    gap = min(-skip, want - sent)
                    sent += gap
                    yield np.zeros((channels, gap), np.float32)
                block = block[:, max(0, skip):][:, :want - sent]
                if block.shape[1]:
                    sent += block.shape[1]
                    yield block
            if sent >= want:
                break
    if sent < want:
        yield np.zeros((channels, want - sent), np.float32)


def rotation_quarters(frame) -> int:
    """Quarter turns counter-clockwise that make a decoded frame upright (its display matrix)."""
    rot = getattr(frame, "rotation", 0) or 0
    return int(round(rot / 90.0)) % 4


def upright_rgb(frame) -> np.ndarray:
    """A decoded PyAV video frame as uint8 (H, W, 3) RGB, rotated upright."""
    rgb = frame.to_ndarray(format="rgb24")
    k = rotation_quarters(frame)
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


class MediaInput:
    """One opened video file (or stream URL): its streams, rate and length, and its frames.

    Opening checks what a user can get wrong (missing file, a folder, not a video, no video
    stream) and says so in one line. A context manager; ``close`` is safe twice.
    """

    def __init__(self, source: str | Path, timeout: float = 10.0):
        av = import_av()
        self.name = str(source)
        self.is_url = "://" in self.name
        if self.is_url:
            try:
                self.container = av.open(self.name, timeout=timeout)
            except av.error.FFmpegError as e:
                raise BadVideoError(f"could not open stream {self.name}: {e}") from e
        else:
            self.container = _open_file(av, Path(source))
        if not self.container.streams.video:
            self.container.close()
            raise BadVideoError(f"{self.name} has no video stream; pass a file with video in it")
        self.video = self.container.streams.video[0]
        self.video.thread_type = "AUTO"
        audio = self.container.streams.audio[0] if self.container.streams.audio else None
        # a stream FFmpeg knows no decoder for (a damaged or exotic file) is no audio to us
        self.audio = audio if audio is not None and audio.codec_context is not None else None
        self.rate: Fraction = self.video.average_rate or self.video.guessed_rate or Fraction(30)
        self._closed = False

    @property
    def total_frames(self) -> int | None:
        """The frame count the file declares (or its duration implies); None if unknown."""
        if self.video.frames:
            return self.video.frames
        seconds = self.declared_seconds()
        return int(round(seconds * float(self.rate))) if seconds else None

    def declared_seconds(self) -> float | None:
        """The video stream's declared length; the container's only when it holds nothing else
        (its duration covers the audio too, which may outlast the picture)."""
        if self.video.duration and self.video.time_base:
            return float(self.video.duration * self.video.time_base)
        if self.container.duration and len(self.container.streams) == 1:
            return self.container.duration / 1_000_000  # AV_TIME_BASE
        return None

    def frames(self, on_audio: Callable[[object], None] | None = None) -> Iterator[Frame]:
        """Upright frames in decode order with their pts and media time; with ``on_audio``,
        the audio packets are demuxed too and handed to it as they come."""
        streams = [self.video] + ([self.audio] if on_audio is not None and self.audio is not None else [])
        index = 0
        for packet in self.container.demux(*streams):
            if packet.stream is not self.video:
                on_audio(packet)
                continue
            for frame in packet.decode():
                yield Frame(upright_rgb(frame), float(frame.time or 0.0), index, frame.pts)
                index += 1

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.container.close()

    def __enter__(self) -> MediaInput:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_file(av, path: Path):
    if not path.exists():
        raise InputNotFoundError(f"input video not found: {path}")
    if path.is_dir():
        raise BadVideoError(f"{path} is a folder, not a video")
    if not path.is_file():  # a FIFO or a device would block FFmpeg's probe forever
        raise BadVideoError(f"{path} is not a regular file (a pipe or a device); save the video to a file first")
    if not os.access(path, os.R_OK):
        raise BadVideoError(f"{path} is not readable (permission denied); check its permissions")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        hint = ("it looks truncated (an .mp4 whose recording stopped early has no index); re-record or repair it"
                if _looks_like_mp4(path) else "pass an .mp4, .mkv, .mov or .webm file")
        raise BadVideoError(f"{path} is not a video FFmpeg can read ({e.__class__.__name__}); {hint}") from e


def _looks_like_mp4(path: Path) -> bool:
    """An ISO media file starts with a box whose type is at bytes 4..8 (ftyp, or moov/mdat/free)."""
    with open(path, "rb") as f:
        head = f.read(12)
    return len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")


class AudioPlan:
    """Copy the input's audio, or transcode it to AAC when the container needs that."""

    def __init__(self, in_stream, out_container, suffix: str):
        self.in_stream = in_stream
        allowed = COPYABLE_AUDIO.get(suffix)
        name = in_stream.codec_context.name
        self.copy = allowed is None or name in allowed
        rate = in_stream.codec_context.sample_rate or 48000
        if self.copy:
            self.out_stream = out_container.add_stream_from_template(in_stream)
            self.label = f"copied ({name})"
        else:
            av = import_av()
            if rate > 96000:  # AAC stops at 96 kHz: 192 kHz studio PCM is resampled to 48 kHz
                rate = 48000
            self.out_stream = out_container.add_stream("aac", rate=rate)
            channels = in_stream.codec_context.channels or 2
            # AAC needs a named layout; PCM in Matroska often has only "N channels"
            self.out_stream.layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(channels, "stereo")
            self.out_stream.format = "fltp"  # the native AAC encoder takes planar float only
            self.resampler = av.AudioResampler(format="fltp", layout=self.out_stream.layout, rate=rate)
            self.label = f"transcoded ({name} -> aac)"

    def write(self, container, packet) -> None:
        if self.copy:
            if packet.dts is None:
                return
            packet.stream = self.out_stream
            container.mux(packet)
            return
        for frame in packet.decode():
            for resampled in self.resampler.resample(frame):
                resampled.pts = None
                container.mux(self.out_stream.encode(resampled))

    def flush(self, container) -> None:
        if not self.copy:
            for resampled in self.resampler.resample(None):
                container.mux(self.out_stream.encode(resampled))
            container.mux(self.out_stream.encode(None))


class Muxer:
    """The output container: H.264 video at the input's timing, audio interleaved as video
    time advances. ``finish`` is idempotent and always closes the file."""

    def __init__(self, output: Path, media: MediaInput, audio_q: queue.Queue, with_audio: bool = True,
                 options: dict[str, str] | None = None, threads: int | None = None):
        av = import_av()
        self._av = av
        self.dst = av.open(str(output), "w")
        self.rate = media.rate
        self.vout = self.dst.add_stream("libx264", rate=media.rate)
        self.vout.codec_context.time_base = media.video.time_base or Fraction(1, 90000)
        self.vout.options = {"crf": "18", "preset": "veryfast", **(options or {})}
        if threads:  # one thread: x264's rate control then decides the same way on every run
            self.vout.codec_context.thread_count = threads
            self.vout.codec_context.thread_type = "SLICE"
        self.warnings: list[str] = []
        self.audio = None
        if with_audio and media.audio is not None:
            try:
                self.audio = AudioPlan(media.audio, self.dst, output.suffix.lower())
            except (AttributeError, ValueError, av.error.FFmpegError) as e:  # no codec, or one we cannot carry
                self.warnings.append(f"the audio stream could not be carried over ({type(e).__name__}); "
                                     f"the output has no sound")
        self.audio_q = audio_q
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self.last_time = 0.0
        self._finished = False
        self.finalised = False  # flushed and closed without an error: the file plays

    def write(self, rgb: np.ndarray, pts: int | None) -> None:
        if self.size is None:
            h, w = rgb.shape[:2]
            self.size = (w, h)
            self.vout.width, self.vout.height = w, h
            self.vout.pix_fmt = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"  # 4:2:0 needs even sizes
        elif rgb.shape[1::-1] != self.size:
            raise BadVideoError(f"the video changes size mid-stream ({self.size[0]}x{self.size[1]} -> "
                                f"{rgb.shape[1]}x{rgb.shape[0]}); re-encode it to one size first")
        frame = video_frame(self._av, rgb, self.vout.pix_fmt)
        tb = self.vout.codec_context.time_base
        frame.pts = pts if pts is not None else int(self.frames / self.rate / tb)
        frame.time_base = tb
        self.dst.mux(self.vout.encode(frame))
        self.frames += 1
        self.last_time = float(frame.pts * tb)
        self.drain_audio(self.last_time)

    def drain_audio(self, until_s: float | None) -> None:
        """Mux queued audio packets up to until_s (+0.5 s), or all of them for None."""
        if self.audio is None:
            return
        while True:
            try:
                packet = self.audio_q.queue[0]
            except IndexError:
                return
            t = packet.dts if packet.dts is not None else packet.pts
            if until_s is not None and t is not None and float(t * packet.time_base) > until_s + 0.5:
                return
            self.audio_q.get_nowait()
            self.audio.write(self.dst, packet)

    def finish(self, complete: bool) -> None:
        """Flush the encoders and close: all the audio after a full run, else up to the last frame."""
        if self._finished:
            return
        self._finished = True
        try:
            if self.size is not None:
                self.dst.mux(self.vout.encode(None))
            if self.audio is not None:
                self.drain_audio(None if complete else self.last_time)
                self.audio.flush(self.dst)
        finally:
            self.dst.close()
        self.finalised = True
