"""What the live preview's keys change, and the recorder they switch on and off.

Keys: n / p next or previous style in the style folder, + / - strength, t style on/off,
m smoothing on/off, o overlay on/off, s save a still, r start/stop recording, q or Esc quit.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from .images import save_image
from .sinks import EncoderSink

HELP = "keys: n/p style  +/- strength  t style on/off  m smoothing  o overlay  s still  r record  q quit"


class RecordingSink:
    """Always among the sinks; writes only while recording is on. Each start opens a new file,
    each stop finalises it."""

    name = "recording"

    def __init__(self, folder: Path, size: tuple[int, int], fps: float):
        self.folder, self.size, self.fps = folder, size, fps
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
            path = self.folder / time.strftime("recording-%Y%m%d-%H%M%S.mp4")
            self._sink = EncoderSink(str(path), self.size, self.fps)
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


class LiveController:
    """Owns the live settings; ``process`` is the pipeline's per-frame function."""

    def __init__(self, stylizer, styles: list[Path], recorder: RecordingSink | None = None,
                 still_dir: Path = Path(".")):
        self.stylizer = stylizer
        self.styles = styles
        self.index = 0
        self.recorder = recorder
        self.still_dir = still_dir
        self.style_on = True
        self.show_overlay = True
        self.stop_event: threading.Event | None = None
        self.stats = None  # a LiveStats, for the overlay
        self.last_output: np.ndarray | None = None
        self.stills: list[Path] = []
        self._switching: threading.Thread | None = None

    def attach(self, pipeline) -> None:
        self.stop_event = pipeline.stop_event
        self.stats = pipeline.stats

    def process(self, rgb: np.ndarray) -> np.ndarray:
        out = self.stylizer.stylize(rgb) if self.style_on else rgb
        self.last_output = out
        return out

    def overlay(self) -> str | None:
        if not self.show_overlay or self.stats is None:
            return None
        s = self.stats.summary()
        rec = "  REC" if self.recorder is not None and self.recorder.active else ""
        name = self.styles[self.index].stem if self.styles else ""
        return (f"{s['processed_fps']:.1f} fps  {s['latency_ms_p50']:.0f} ms  {name}  "
                f"a={self.stylizer.alpha:.1f}{'' if self.style_on else ' off'}{rec}")

    def switch_style(self, step: int) -> None:
        """Encode the next style on a helper thread; the Stylizer swaps it in between frames."""
        if len(self.styles) < 2:
            return
        self.index = (self.index + step) % len(self.styles)
        path = self.styles[self.index]
        self._switching = threading.Thread(target=self.stylizer.set_style, args=(path,), daemon=True)
        self._switching.start()

    def handle_key(self, key: int) -> None:
        ch = chr(key) if 0 <= key < 256 else ""
        if ch in ("q", "\x1b"):
            if self.stop_event is not None:
                self.stop_event.set()
        elif ch == "n":
            self.switch_style(+1)
        elif ch == "p":
            self.switch_style(-1)
        elif ch in ("+", "="):
            self.stylizer.alpha = min(1.0, round(self.stylizer.alpha + 0.1, 2))
        elif ch == "-":
            self.stylizer.alpha = max(0.0, round(self.stylizer.alpha - 0.1, 2))
        elif ch == "t":
            self.style_on = not self.style_on
        elif ch == "m":
            self.stylizer.temporal = not self.stylizer.temporal
            self.stylizer.smoother.reset()
        elif ch == "o":
            self.show_overlay = not self.show_overlay
        elif ch == "s" and self.last_output is not None:
            self.still_dir.mkdir(parents=True, exist_ok=True)
            path = self.still_dir / time.strftime(f"still-%Y%m%d-%H%M%S-{len(self.stills)}.png")
            save_image(path, self.last_output)
            self.stills.append(path)
        elif ch == "r" and self.recorder is not None:
            self.recorder.toggle()
