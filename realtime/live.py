"""The live pipeline: a capture thread, an inference thread, and one output thread per sink.

Capture keeps only the newest frame (a slow model drops stale frames instead of falling
behind); each sink also keeps only the newest stylised frame. Every frame carries its
capture time, so latency is measured capture -> sent. Errors in any thread stop the others
and are re-raised in the caller naming the thread; stop() is idempotent.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .frames import Frame
from .pipeline import END, Worker, get
from .sinks import Sink


LATENCY_WINDOW = 5000  # frames (about 3 min at 30 fps) behind the p50/p95 figures


def put_latest(q: queue.Queue, item) -> bool:
    """Put item, replacing whatever is waiting; True if an older item was dropped."""
    dropped = False
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except queue.Full:
            try:
                q.get_nowait()
                dropped = True
            except queue.Empty:
                pass


@dataclass
class LiveStats:
    started: float = field(default_factory=time.monotonic)
    captured: int = 0
    processed: int = 0
    dropped: int = 0  # captured frames replaced before inference took them
    sent: dict[str, int] = field(default_factory=dict)
    sink_dropped: dict[str, int] = field(default_factory=dict)
    # the most recent latencies only: a live session may run for hours, and the overlay
    # summarises them every frame
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def summary(self) -> dict:
        wall = max(1e-9, time.monotonic() - self.started)
        lat = np.fromiter(self.latencies_ms, float) if self.latencies_ms else np.array([np.nan])
        return {"seconds": round(wall, 2), "captured_frames": self.captured, "processed_frames": self.processed,
                "sent_frames": dict(self.sent),
                "capture_fps": self.captured / wall, "processed_fps": self.processed / wall,
                "sent_fps": {k: v / wall for k, v in self.sent.items()}, "dropped_frames": self.dropped,
                "sink_dropped_frames": dict(self.sink_dropped),
                "latency_ms_p50": float(np.nanpercentile(lat, 50)), "latency_ms_p95": float(np.nanpercentile(lat, 95))}


class LivePipeline:
    """source (iterable of Frame) -> process (uint8 RGB -> uint8 RGB) -> sinks."""

    def __init__(self, source: Iterable[Frame], process: Callable[[np.ndarray], np.ndarray], sinks: list[Sink]):
        self.source = source
        self.process = process
        self.sinks = sinks
        self.stats = LiveStats()
        self.stop_event = threading.Event()
        self._latest: queue.Queue = queue.Queue(maxsize=1)
        self._sink_qs = {s.name: queue.Queue(maxsize=1) for s in sinks}
        self._lock = threading.Lock()
        self._workers = [Worker("capture", self._capture, self.stop_event),
                         Worker("inference", self._infer, self.stop_event)]
        # GUI sinks (the preview window) are driven by the caller's thread inside run(): HighGUI
        # belongs on the main thread (macOS's Cocoa requires it)
        self._main_sinks = [s for s in sinks if getattr(s, "main_thread", False)]
        self._workers += [Worker(f"output {s.name}", self._output_loop(s), self.stop_event)
                          for s in sinks if s not in self._main_sinks]
        for s in sinks:
            self.stats.sent[s.name] = 0
            self.stats.sink_dropped[s.name] = 0

    def _capture(self, stop: threading.Event) -> None:
        for frame in self.source:
            if stop.is_set():
                break
            if put_latest(self._latest, frame):
                self.stats.dropped += 1
            self.stats.captured += 1
        put_latest(self._latest, END)

    def _infer(self, stop: threading.Event) -> None:
        while True:
            frame = get(self._latest, stop)
            if frame is END:
                break
            out = self.process(frame.rgb)
            self.stats.processed += 1
            for name, q in self._sink_qs.items():
                if put_latest(q, (out, frame.time)):
                    self.stats.sink_dropped[name] += 1
        for q in self._sink_qs.values():
            put_latest(q, END)

    def _deliver(self, sink: Sink, item) -> None:
        rgb, captured = item
        sink.send(rgb, captured)
        with self._lock:
            self.stats.sent[sink.name] += 1
            self.stats.latencies_ms.append(1000 * (time.monotonic() - captured))

    def _output_loop(self, sink: Sink) -> Callable[[threading.Event], None]:
        def run(stop: threading.Event) -> None:
            q = self._sink_qs[sink.name]
            while True:
                item = get(q, stop)
                if item is END:
                    return
                self._deliver(sink, item)
        return run

    def _pump_main_sinks(self, wait: float) -> bool:
        """Deliver the newest frame to each main-thread sink; False once all of them ended."""
        alive = False
        for sink in self._main_sinks:
            try:
                item = self._sink_qs[sink.name].get(timeout=wait / max(1, len(self._main_sinks)))
            except queue.Empty:
                alive = True
                continue
            if item is not END:
                self._deliver(sink, item)
                alive = True
        return alive

    def run(self, duration: float | None = None) -> dict:
        """Run until the source ends, ``duration`` seconds pass, a thread fails, or Ctrl-C."""
        for sink in self._main_sinks:
            if hasattr(sink, "prepare"):
                sink.prepare()  # GUI set-up before any other thread runs
        for w in self._workers:
            w.start()
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while any(w.is_alive() for w in self._workers) and not self.stop_event.is_set():
                if deadline is not None and time.monotonic() > deadline:
                    break
                if any(w.error is not None for w in self._workers):
                    break
                if not self._main_sinks:
                    time.sleep(0.05)
                elif not self._pump_main_sinks(wait=0.05):
                    break
        finally:
            self.stop()
        for w in self._workers:
            w.raise_if_failed()
        return self.stats.summary()

    def stop(self) -> None:
        """Stop every thread, then finalise every sink (recordings stay playable). Idempotent."""
        self.stop_event.set()
        for w in self._workers:
            if w.is_alive():
                w.join(timeout=10)
        for s in self.sinks:
            s.close()


def write_stats(stats: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(stats, indent=2))
