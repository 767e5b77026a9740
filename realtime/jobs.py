"""File jobs: ``VideoJob`` owns one video from input to finished output.

open -> plan -> decode worker -> stylise (the caller's thread) -> encode worker -> finalise.
Frames keep their timestamps (29.97 stays 29.97, variable frame rate stays variable), the
displayed size and orientation are kept (rotation metadata is applied to the pixels), and
audio is copied, or transcoded to AAC where the output container cannot hold it. The output
is written under a temporary name and renamed into place when finalised, on success or on an
interruption (Ctrl-C, SIGTERM), so the final name only ever holds a file that plays.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import BadVideoError, OutputError, out_of_space
from .frames import Frame
from .media import OUTPUT_SUFFIXES, MediaInput, Muxer
from .outputs import OutputFile
from .progress import Progress
from .threads import END, Worker, items, put

Process = Callable[[np.ndarray], np.ndarray]


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
    settings: dict = field(default_factory=dict)  # model, backend, style: what made the file

    def line(self) -> str:
        state = "" if self.complete else " (incomplete)"
        return (f"wrote {self.output}: {self.frames} frames, {self.width}x{self.height} @ {self.frame_rate:.3f} fps, "
                f"audio {self.audio}; {self.wall_s:.1f} s at {self.fps:.1f} fps{state}")

    def to_dict(self) -> dict:
        return asdict(self)


def default_output(input_path: Path) -> Path:
    return input_path.with_name(f"{input_path.stem}_stylized.mp4")


def check_suffix(output: Path) -> None:
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise OutputError(f"output {output.name} has suffix '{output.suffix}'; use one of "
                          f"{', '.join(sorted(OUTPUT_SUFFIXES))} (H.264 goes in those)")


@dataclass
class _DecodeState:
    frames: int = 0
    last_time: float = 0.0
    error: str | None = None


class VideoJob:
    """One video file stylised into one output file. A context manager.

    Construction opens the input and checks the output (one-line errors, before any model is
    loaded); ``run(process)`` does the work with ``process`` (uint8 RGB -> uint8 RGB, same
    size) on the caller's thread, between a decode worker and an encode worker.
    ``inputs`` names other files the output must not be (the style pictures).
    """

    def __init__(self, input_path: str | os.PathLike, output: str | os.PathLike | None = None, *,
                 overwrite: bool = False, progress: bool = True, queue_size: int = 8,
                 inputs: tuple[Path, ...] = ()):
        self.input_path = Path(input_path)
        self.output = Path(output) if output else default_output(self.input_path)
        check_suffix(self.output)
        self.media = MediaInput(self.input_path)
        try:
            self.out = OutputFile(self.output, inputs=(self.input_path, *inputs), overwrite=overwrite)
        except OutputError:
            self.media.close()
            raise
        self.progress = progress
        self.queue_size = queue_size
        self.settings: dict = {}

    def __enter__(self) -> VideoJob:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.media.close()

    def run(self, process: Process, on_frame: Callable[[int, int | None], None] | None = None) -> VideoSummary:
        """Stylise every frame; on an error the frames written so far are kept in a playable
        file under the output's name, unless that would replace an existing file. ``on_frame``
        hears (frames done, frames expected or None) after each frame."""
        self._on_frame = on_frame
        self._muxer: Muxer | None = None
        with self.out:
            try:
                return self._run(process)
            except Exception as e:
                if out_of_space(e):  # the partial file cannot be trusted: nothing is kept
                    raise OutputError(f"the disk is full or a file-size limit was reached writing {self.output}; "
                                      f"nothing was left under its name; free space and run again") from e
                m = self._muxer
                if m is not None and m.frames and m.finalised and not self.output.exists():
                    self.out.commit()
                raise

    # --- the work -----------------------------------------------------------------------
    def _run(self, process: Process) -> VideoSummary:
        stop, complete = threading.Event(), threading.Event()
        frames_q: queue.Queue = queue.Queue(maxsize=self.queue_size)
        out_q: queue.Queue = queue.Queue(maxsize=self.queue_size)
        audio_q: queue.Queue = queue.Queue()  # packets are small; unbounded keeps demuxing simple
        state = _DecodeState()
        muxer = self._muxer = Muxer(self.out.temp, self.media, audio_q)

        def encode(stop_event: threading.Event) -> None:
            try:
                for frame in items(out_q, stop_event):
                    muxer.write(frame.rgb, frame.pts)
            finally:
                muxer.finish(complete.is_set())

        decoder = Worker("decode", lambda ev: self._decode(frames_q, audio_q, state, ev), stop, errors_to=frames_q)
        encoder = Worker("encode", encode, stop)
        expected = self.media.total_frames
        bar = Progress(expected, label=self.input_path.name, enabled=self.progress)
        start = time.perf_counter()
        written, interrupted = 0, False
        decoder.start()
        encoder.start()
        try:
            for frame in items(frames_q, stop):
                out = process(frame.rgb)
                if out.shape != frame.rgb.shape or out.dtype != np.uint8:
                    raise ValueError(f"process returned {out.dtype} {out.shape}, expected uint8 {frame.rgb.shape}")
                if not put(out_q, Frame(out, frame.time, frame.index, frame.pts), stop):
                    break
                written += 1
                bar.update()
                if self._on_frame is not None:
                    self._on_frame(written, expected)
            if not stop.is_set():
                complete.set()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close(finished=complete.is_set() and written > 0)
            stop.set()  # the decoder stops; the encoder still writes what is queued, then finalises
            _put_end(out_q, encoder)
            encoder.join(timeout=120)
            decoder.join(timeout=10)
            if not encoder.is_alive():
                muxer.finish(complete.is_set())
        encoder.raise_if_failed()
        decoder.raise_if_failed()
        return self._finalise(muxer, written, time.perf_counter() - start, state, complete.is_set(), interrupted)

    def _decode(self, frames_q: queue.Queue, audio_q: queue.Queue, state: _DecodeState,
                stop: threading.Event) -> None:
        """Upright frames with their pts go to frames_q, audio packets to audio_q."""
        from .media import import_av

        av = import_av()
        try:
            for frame in self.media.frames(on_audio=audio_q.put):
                if stop.is_set() or not put(frames_q, frame, stop):
                    return
                state.frames += 1
                state.last_time = frame.time
        except av.error.FFmpegError as e:  # corrupt or truncated: keep what decoded
            state.error = f"decoding stopped after {state.frames} frames ({state.last_time:.1f} s): {e}"
        declared = self.media.declared_seconds()
        if (state.error is None and declared and state.frames
                and state.last_time + 2.0 / float(self.media.rate) < 0.95 * declared):
            state.error = (f"decoding stopped after {state.frames} frames ({state.last_time:.1f} s of "
                           f"{declared:.1f} s declared): the file looks truncated; kept what decoded")
        put(frames_q, END, stop)

    def _finalise(self, muxer: Muxer, written: int, wall: float, state: _DecodeState, complete: bool,
                  interrupted: bool) -> VideoSummary:
        if written == 0:
            why = state.error or "the video stream decoded to no frames"
            raise BadVideoError(f"{self.input_path}: no frame was written ({why}); nothing saved")
        self.out.commit()
        warnings = ([state.error] if state.error else []) + muxer.warnings
        if interrupted:
            warnings.append(f"interrupted; {written} frames written and the file finalised")
        w, h = muxer.size
        summary = VideoSummary(str(self.input_path), str(self.output), written, w, h, float(self.media.rate), wall,
                               written / wall if wall > 0 else 0.0, muxer.audio.label if muxer.audio else "none",
                               complete and state.error is None, warnings, dict(self.settings))
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

