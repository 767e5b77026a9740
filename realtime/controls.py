"""The live settings and what the preview's keys (or any other front end) change.

Keys: n / p next or previous style in the style folder, + / - strength, t style on/off,
m smoothing on/off, o overlay on/off, s save a still, r start/stop recording, q or Esc quit.

Changes are queued by whichever thread asks (the preview's GUI thread, a web request) and
applied by the inference thread between two frames, so no frame is made half with the old
settings and half with the new (the smoothing state is never reset inside ``blend``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .outputs import save_picture
from .sinks import RecordingSink

HELP = "keys: n/p style  +/- strength  t style on/off  m smoothing  o overlay  s still  r record  q quit"


class LiveController:
    """Owns the live settings; ``process`` is the inference thread's per-frame function."""

    def __init__(self, stylizer, styles: list[Path], recorder: RecordingSink | None = None,
                 still_dir: Path = Path("."), adapter=None):
        self.stylizer = stylizer
        self.adapter = adapter  # a realtime.adapt.Adapter, or None for full resolution always
        self.user_max_size = stylizer.max_size
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
        self._pending: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def attach(self, session) -> None:
        self.stop_event = session.stop_event
        self.stats = session.stats

    def submit(self, change: Callable[[], None]) -> None:
        """Queue a change of settings; the inference thread applies it before its next frame."""
        self._pending.put(change)

    def apply_pending(self) -> None:
        while True:
            try:
                change = self._pending.get_nowait()
            except queue.Empty:
                return
            change()

    def process(self, rgb: np.ndarray) -> np.ndarray:
        self.apply_pending()
        if not self.style_on:
            out = rgb
        elif self.adapter is None:
            out = self.stylizer.stylize(rgb)
        else:
            self.stylizer.max_size = self.adapter.max_size(rgb.shape, self.user_max_size)
            t0 = time.perf_counter()
            out = self.stylizer.stylize(rgb)
            self.adapter.record(time.perf_counter() - t0)
            if self.stats is not None:
                self.stats.adapt = self.adapter.describe()
        self.last_output = out
        return out

    def overlay(self) -> str | None:
        if not self.show_overlay or self.stats is None:
            return None
        s = self.stats.summary()
        rec = "  REC" if self.recorder is not None and self.recorder.active else ""
        name = self.styles[self.index].stem if self.styles else ""
        scale = f"  {100 * self.adapter.scale:.0f}%" if self.adapter is not None and self.adapter.level else ""
        latency = "-" if s["latency_ms_p50"] is None else f"{s['latency_ms_p50']:.0f}"  # None before a frame
        return (f"{s['processed_fps']:.1f} fps  {latency} ms{scale}  {name}  "
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
        """Quit at once; anything else is applied between frames."""
        ch = chr(key) if 0 <= key < 256 else ""
        if ch in ("q", "\x1b"):
            if self.stop_event is not None:
                self.stop_event.set()
        else:
            self.submit(lambda: self.apply_key(ch))

    def apply_key(self, ch: str) -> None:
        if ch == "n":
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
            save_picture(path, self.last_output)
            self.stills.append(path)
        elif ch == "r" and self.recorder is not None:
            self.recorder.toggle()
