"""A one-line progress bar on stderr with fps and ETA (no dependency, quiet when not a TTY)."""

from __future__ import annotations

import sys
import threading
import time


class Progress:
    def __init__(self, total: int | None, label: str = "", enabled: bool = True, min_interval: float = 0.25):
        self.total = total if total and total > 0 else None
        self.label = label
        self.enabled = enabled
        self.count = 0
        self.note = ""  # drawn after the figures, e.g. "chunks 3/8, 1 retried"
        self.start = time.perf_counter()
        self._last = 0.0
        self._tty = sys.stderr.isatty()
        self._min_interval = min_interval if self._tty else 5.0
        self._lock = threading.Lock()  # workers' frames (a pump thread) and notes (the main thread) both draw

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.perf_counter()
        if self.enabled and now - self._last >= self._min_interval:  # the first frame draws at once
            self._last = now
            self._draw(now)

    def set_note(self, note: str) -> None:
        """Change the note; on a terminal it is drawn at once (notes change rarely), in a log
        with the next line."""
        if note != self.note:
            self.note = note
            if self.enabled and self._tty and self._last:
                self._last = time.perf_counter()
                self._draw(self._last)

    def _draw(self, now: float) -> None:
        with self._lock:
            self._draw_line(now)

    def _draw_line(self, now: float) -> None:
        elapsed = now - self.start
        fps = self.count / elapsed if elapsed > 0 else 0.0
        if self.total:
            frac = min(1.0, self.count / self.total)
            eta = (self.total - self.count) / fps if fps > 0 else float("inf")
            bar = "#" * int(frac * 30)
            text = (f"{self.label} [{bar:<30}] {self.count}/{self.total} {fps:5.1f} fps "
                    f"ETA {eta:4.0f}s" if eta != float("inf") else f"{self.label} {self.count}/{self.total}")
        else:
            text = f"{self.label} {self.count} frames {fps:5.1f} fps"
        if self.note:
            text += f" | {self.note}"
        end = "\r" if sys.stderr.isatty() else "\n"
        sys.stderr.write(("\033[K" if end == "\r" else "") + text + end)
        sys.stderr.flush()

    def close(self, finished: bool = True) -> None:
        """Draw the final state after a finished run; after a failed or interrupted one, clear
        the bar so the error (or the summary) is the one line left."""
        if not self.enabled:
            return
        if finished:
            self._draw(time.perf_counter())
            if sys.stderr.isatty():
                sys.stderr.write("\n")
        elif sys.stderr.isatty() and self._last:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
