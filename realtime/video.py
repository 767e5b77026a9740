"""Video files in and out: decode thread -> stylise (caller's thread) -> encode thread.

Frames keep their timestamps (29.97 stays 29.97, variable frame rate stays variable), the
displayed size and orientation are kept (rotation metadata is applied to the pixels), and
audio is copied, or transcoded to AAC where the output container cannot hold it. The output
container is always finalised, on success, error or Ctrl-C, so it plays up to the last
frame written.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ._av import video_frame
from .errors import BadVideoError, InputNotFoundError, OutputError
from .pipeline import END, Worker, items, put
from .progress import Progress

OUTPUT_SUFFIXES = {".mp4", ".mkv", ".mov"}
COPYABLE_AUDIO = {".mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
                  ".mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le"},
                  ".mkv": None}  # None: any codec can be copied


@dataclass
class VideoSummary:
    input: str
    output: str
    frames: int
    width: int
    height: int
    frame_rate: float
    wall_s: float
    fps: float
    audio: str
    complete: bool = True
    warnings: list[str] = field(default_factory=list)

    def line(self) -> str:
        state = "" if self.complete else " (incomplete)"
        return (f"wrote {self.output}: {self.frames} frames, {self.width}x{self.height} @ {self.frame_rate:.3f} fps, "
                f"audio {self.audio}; {self.wall_s:.1f} s at {self.fps:.1f} fps{state}")

    def to_dict(self) -> dict:
        return asdict(self)


def default_output(input_path: Path) -> Path:
    return input_path.with_name(f"{input_path.stem}_stylized.mp4")


def check_output(input_path: Path, output: Path, overwrite: bool) -> None:
    """Never the input, never an existing file unless asked, and a folder we can write to."""
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise OutputError(f"output {output.name} has suffix '{output.suffix}'; use one of "
                          f"{', '.join(sorted(OUTPUT_SUFFIXES))} (H.264 goes in those)")
    if output.exists() and input_path.exists() and os.path.samefile(output, input_path):
        raise OutputError(f"output {output} is the input; choose another -o")
    if output.exists() and not overwrite:
        raise OutputError(f"output {output} exists; pass --overwrite to replace it or choose another -o")
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist; create it or choose another -o")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder {folder} is not writable; choose another -o")


def open_input(path: Path):
    """Open path with PyAV; one-line errors for missing files, non-videos and audio-only files."""
    from ._av import import_av

    av = import_av()

    if not path.exists():
        raise InputNotFoundError(f"input video not found: {path}")
    if path.is_dir():
        raise BadVideoError(f"{path} is a folder, not a video")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        hint = ("it may be truncated (an .mp4 whose recording stopped early has no index)"
                if path.suffix.lower() in (".mp4", ".mov", ".m4v") and path.stat().st_size > 0 else
                "pass an .mp4, .mkv, .mov or .webm file")
        raise BadVideoError(f"{path} is not a video FFmpeg can read ({e.__class__.__name__}); {hint}") from e
    if not container.streams.video:
        container.close()
        raise BadVideoError(f"{path} has no video stream; pass a file with video in it")
    return container


def _rotation_k(frame) -> int:
    """Quarter turns counter-clockwise that make a frame upright (from its display matrix)."""
    rot = getattr(frame, "rotation", 0) or 0
    return int(round(rot / 90.0)) % 4


class _AudioPlan:
    """Copy the input's audio, or transcode it to AAC when the container needs that."""

    def __init__(self, in_stream, out_container, suffix: str):
        self.in_stream = in_stream
        allowed = COPYABLE_AUDIO.get(suffix)
        name = in_stream.codec_context.name
        self.copy = allowed is None or name in allowed
        if self.copy:
            self.out_stream = out_container.add_stream_from_template(in_stream)
            self.label = f"copied ({name})"
        else:
            from ._av import import_av

            av = import_av()

            rate = in_stream.codec_context.sample_rate or 48000
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


@dataclass
class _DecodeState:
    frames: int = 0
    last_time: float = 0.0
    error: str | None = None


def _declared_seconds(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _decode(src, vin, ain, rate: Fraction, frames_q: queue.Queue, audio_q: queue.Queue, state: _DecodeState,
            stop: threading.Event) -> None:
    """Demux; upright RGB frames with their pts go to frames_q, audio packets to audio_q."""
    from ._av import import_av

    av = import_av()

    streams = [vin] + ([ain] if ain is not None else [])
    try:
        for packet in src.demux(*streams):
            if stop.is_set():
                break
            if packet.stream is ain:
                audio_q.put(packet)
                continue
            for frame in packet.decode():
                rgb = frame.to_ndarray(format="rgb24")
                k = _rotation_k(frame)
                if k:
                    rgb = np.ascontiguousarray(np.rot90(rgb, k))
                if not put(frames_q, (rgb, frame.pts), stop):
                    return
                state.frames += 1
                if frame.time is not None:
                    state.last_time = float(frame.time)
    except av.error.FFmpegError as e:  # corrupt or truncated: keep what decoded
        state.error = f"decoding stopped after {state.frames} frames ({state.last_time:.1f} s): {e}"
    declared = _declared_seconds(src, vin)
    if state.error is None and declared and state.frames and state.last_time + 2.0 / float(rate) < 0.95 * declared:
        state.error = (f"decoding stopped after {state.frames} frames ({state.last_time:.1f} s of "
                       f"{declared:.1f} s declared): the file looks truncated; kept what decoded")
    put(frames_q, END, stop)


class _Muxer:
    """The output container: H.264 video at the input's timing, audio interleaved as video
    time advances. ``finish`` is idempotent and always closes the file."""

    def __init__(self, output: Path, vin, ain, rate: Fraction, audio_q: queue.Queue):
        from ._av import import_av

        av = import_av()

        self._av = av
        self.dst = av.open(str(output), "w")
        self.rate = rate
        self.vout = self.dst.add_stream("libx264", rate=rate)
        self.vout.codec_context.time_base = vin.time_base or Fraction(1, 90000)
        self.vout.options = {"crf": "18", "preset": "veryfast"}
        self.audio = _AudioPlan(ain, self.dst, output.suffix.lower()) if ain is not None else None
        self.audio_q = audio_q
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self.last_time = 0.0
        self._finished = False

    def write(self, rgb: np.ndarray, pts: int | None) -> None:
        if self.size is None:
            h, w = rgb.shape[:2]
            self.size = (w, h)
            self.vout.width, self.vout.height = w, h
            self.vout.pix_fmt = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"  # 4:2:0 needs even sizes
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


def stylize_video(input_path: str | os.PathLike, output: str | os.PathLike | None = None, *,
                  process: Callable[[np.ndarray], np.ndarray], overwrite: bool = False, progress: bool = True,
                  queue_size: int = 8, on_start: Callable[[], None] | None = None) -> VideoSummary:
    """Decode ``input_path``, apply ``process`` (uint8 RGB -> uint8 RGB, same size) to every
    frame, encode H.264 to ``output`` with the input's timing, size and audio."""
    input_path = Path(input_path)
    output = Path(output) if output else default_output(input_path)
    src = open_input(input_path)
    try:
        check_output(input_path, output, overwrite)
    except OutputError:
        src.close()
        raise
    vin = src.streams.video[0]
    vin.thread_type = "AUTO"
    ain = src.streams.audio[0] if src.streams.audio else None
    rate = vin.average_rate or vin.guessed_rate or Fraction(30)
    total = vin.frames or None
    if not total and vin.duration and vin.time_base:
        total = int(round(float(vin.duration * vin.time_base) * float(rate)))
    if on_start:
        on_start()

    stop, complete = threading.Event(), threading.Event()
    frames_q: queue.Queue = queue.Queue(maxsize=queue_size)
    out_q: queue.Queue = queue.Queue(maxsize=queue_size)
    audio_q: queue.Queue = queue.Queue()  # packets are small; unbounded keeps demuxing simple
    state = _DecodeState()
    muxer = _Muxer(output, vin, ain, rate, audio_q)

    def encode(stop_event: threading.Event) -> None:
        try:
            for rgb, pts in items(out_q, stop_event):
                muxer.write(rgb, pts)
        finally:
            muxer.finish(complete.is_set())

    decoder = Worker("decode", lambda ev: _decode(src, vin, ain, rate, frames_q, audio_q, state, ev), stop,
                     errors_to=frames_q)
    encoder = Worker("encode", encode, stop)
    bar = Progress(total, label=input_path.name, enabled=progress)
    start = time.perf_counter()
    written, interrupted = 0, False
    decoder.start()
    encoder.start()
    try:
        for rgb, pts in items(frames_q, stop):
            out = process(rgb)
            if out.shape != rgb.shape or out.dtype != np.uint8:
                raise ValueError(f"process returned {out.dtype} {out.shape}, expected uint8 {rgb.shape}")
            if not put(out_q, (out, pts), stop):
                break
            written += 1
            bar.update()
        if not stop.is_set():
            complete.set()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        stop.set()  # the decoder stops; the encoder still writes what is queued, then finalises
        _put_end(out_q, encoder)
        encoder.join(timeout=120)
        decoder.join(timeout=10)
        src.close()
        if not encoder.is_alive():
            muxer.finish(complete.is_set())
    encoder.raise_if_failed()
    decoder.raise_if_failed()
    return _summary(input_path, output, muxer, vin, rate, written, time.perf_counter() - start, state,
                    complete.is_set(), interrupted)


def _summary(input_path: Path, output: Path, muxer: _Muxer, vin, rate: Fraction, written: int, wall: float,
             state: _DecodeState, complete: bool, interrupted: bool) -> VideoSummary:
    warnings = [state.error] if state.error else []
    if interrupted:
        warnings.append(f"interrupted; {written} frames written and the file finalised")
    w, h = muxer.size or (vin.width, vin.height)
    summary = VideoSummary(str(input_path), str(output), written, w, h, float(rate), wall,
                           written / wall if wall > 0 else 0.0, muxer.audio.label if muxer.audio else "none",
                           complete and state.error is None, warnings)
    if interrupted:
        raise KeyboardInterrupt(summary.line())
    return summary


def _put_end(q: queue.Queue, consumer: threading.Thread) -> None:
    """Queue END behind what is there, waiting for room while the consumer lives."""
    while consumer.is_alive():
        try:
            q.put(END, timeout=0.1)
            return
        except queue.Full:
            continue
