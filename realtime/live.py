"""Live runs: a capture thread, an inference thread, and one output thread per sink.

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

from .errors import OutputError
from .frames import Frame
from .sinks import Sink, SinkContext, open_sink
from .threads import END, Worker, get


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
    # the running stretch: ``run`` restarts the clock when its threads start and stops it when
    # its loop ends, so neither loading a model nor finalising a recording counts against fps
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    captured: int = 0
    processed: int = 0
    dropped: int = 0  # captured frames replaced before inference took them
    sent: dict[str, int] = field(default_factory=dict)
    sink_dropped: dict[str, int] = field(default_factory=dict)
    # the most recent latencies only: a live session may run for hours, and the overlay
    # summarises them every frame
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    adapt: dict | None = None  # the adaptive resolution's state (realtime.adapt), when it is on

    def summary(self) -> dict:
        end = self.ended if self.ended is not None else time.monotonic()
        wall = max(1e-9, end - self.started)
        lat = np.fromiter(self.latencies_ms, float)
        return {"seconds": round(wall, 2), "captured_frames": self.captured, "processed_frames": self.processed,
                "sent_frames": dict(self.sent),
                "capture_fps": self.captured / wall, "processed_fps": self.processed / wall,
                "sent_fps": {k: v / wall for k, v in self.sent.items()}, "dropped_frames": self.dropped,
                "sink_dropped_frames": dict(self.sink_dropped),
                # None, not NaN, before the first frame: the summary is JSON
                "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else None,
                "latency_ms_p95": float(np.percentile(lat, 95)) if lat.size else None,
                **({"adapt": dict(self.adapt)} if self.adapt else {})}


class LiveSession:
    """One live run: source -> process (the inference thread) -> sinks. A context manager.

    The session opens the source (a ``--camera`` spec or any iterable of ``Frame``) and the
    sinks (by target, through the sink registry), and is the only thing that closes them; both
    fail before a model is loaded. ``use`` gives it the per-frame work: a frame function (uint8
    RGB -> uint8 RGB) or a ``LiveController``, whose queued changes (keys, a web page) the
    inference thread applies between frames. Sinks can be added and removed while it runs.
    """

    def __init__(self, source: Iterable[Frame] | str, outputs: Iterable[str] = ("preview",), *,
                 process: Callable[[np.ndarray], np.ndarray] | None = None, fps: float | None = None,
                 loop: bool = False, size: tuple[int, int] | None = None, overwrite: bool = False,
                 inputs: tuple[Path, ...] = (), sinks: Iterable[Sink] = ()):
        if isinstance(source, str):
            from .sources import open_source

            source = open_source(source, loop=loop, size=size, fps=fps)
        self.source = source
        self.controller = None
        self.process: Callable[[np.ndarray], np.ndarray] | None = None
        self.stats = LiveStats()
        self.stop_event = threading.Event()
        self.context = SinkContext(size=getattr(source, "size", size), fps=fps or getattr(source, "fps", 30.0),
                                   on_key=self._on_key, overlay=self._overlay,
                                   inputs=(*inputs, *_source_files(source)), overwrite=overwrite,
                                   audio=getattr(source, "clock", None))
        self._latest: queue.Queue = queue.Queue(maxsize=1)
        self._lock = threading.Lock()
        self.sinks: dict[str, Sink] = {}
        self._sink_qs: dict[str, queue.Queue] = {}
        self._sink_workers: dict[str, Worker] = {}
        self._workers = [Worker("capture", self._capture, self.stop_event),
                         Worker("inference", self._infer, self.stop_event)]
        self._started = False
        self._closed = False
        try:
            for sink in sinks:  # already opened (an API user's own sink)
                self.attach_sink(sink)
            for target in outputs:
                self.add_sink(target)
        except BaseException:
            self.close()
            raise
        if process is not None:
            self.use(process)

    def use(self, process) -> None:
        """The per-frame work: a frame function, or a ``LiveController``."""
        if hasattr(process, "apply_pending"):
            self.controller = process
            process.attach(self)
            self.process = process.process
        else:
            self.process = process

    def _on_key(self, key: int) -> None:
        if self.controller is not None:
            self.controller.handle_key(key)
        elif chr(key) in ("q", "\x1b"):
            self.stop()

    def _overlay(self) -> str | None:
        return self.controller.overlay() if self.controller is not None else None

    # --- sinks --------------------------------------------------------------------------
    def add_sink(self, target: str) -> Sink:
        """Open the sink for ``target`` and start feeding it (also while running)."""
        return self.attach_sink(open_sink(target, self.context))

    def attach_sink(self, sink: Sink) -> Sink:
        """Feed an already opened sink; the session closes it."""
        if sink.name in self.sinks:
            sink.close()
            raise OutputError(f"output {sink.name} is already open")
        with self._lock:
            self._sink_qs[sink.name] = queue.Queue(maxsize=1)
            self.sinks[sink.name] = sink
            self.stats.sent.setdefault(sink.name, 0)
            self.stats.sink_dropped.setdefault(sink.name, 0)
        if not getattr(sink, "main_thread", False):
            worker = Worker(f"output {sink.name}", self._output_loop(sink), self.stop_event)
            self._sink_workers[sink.name] = worker
            if self._started:
                worker.start()
        return sink

    def remove_sink(self, name: str) -> None:
        """Stop feeding a sink and close (finalise) it."""
        with self._lock:
            sink = self.sinks.pop(name, None)
            q = self._sink_qs.pop(name, None)
        if sink is None:
            return
        worker = self._sink_workers.pop(name, None)
        if worker is not None and worker.is_alive():
            put_latest(q, END)
            worker.join(timeout=10)
        sink.close()

    @property
    def _main_sinks(self) -> list[Sink]:
        return [s for s in self.sinks.values() if getattr(s, "main_thread", False)]

    # --- threads ------------------------------------------------------------------------
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
            with self._lock:
                queues = list(self._sink_qs.items())
            for name, q in queues:
                if put_latest(q, (out, frame.time)):
                    self.stats.sink_dropped[name] += 1
        with self._lock:
            queues = list(self._sink_qs.values())
        for q in queues:
            put_latest(q, END)

    def _deliver(self, sink: Sink, item) -> None:
        rgb, captured = item
        sink.send(rgb, captured)
        with self._lock:
            self.stats.sent[sink.name] = self.stats.sent.get(sink.name, 0) + 1
            self.stats.latencies_ms.append(1000 * (time.monotonic() - captured))

    def _output_loop(self, sink: Sink) -> Callable[[threading.Event], None]:
        q = self._sink_qs[sink.name]

        def run(stop: threading.Event) -> None:
            while True:
                item = get(q, stop)
                if item is END:
                    return
                self._deliver(sink, item)
        return run

    def _pump_main_sinks(self, wait: float) -> bool:
        """Deliver the newest frame to each main-thread sink; False once all of them ended."""
        alive = False
        sinks = self._main_sinks
        for sink in sinks:
            try:
                item = self._sink_qs[sink.name].get(timeout=wait / max(1, len(sinks)))
            except queue.Empty:
                alive = True
                continue
            if item is not END:
                self._deliver(sink, item)
                alive = True
        return alive

    # --- running ------------------------------------------------------------------------
    def run(self, duration: float | None = None) -> dict:
        """Run until the source ends, ``duration`` seconds pass, a thread fails, ``stop()``
        or Ctrl-C; then close everything and return the stats."""
        if self.process is None:
            raise RuntimeError("call use(process) before run()")
        for sink in self._main_sinks:
            if hasattr(sink, "prepare"):
                sink.prepare()  # GUI set-up before any other thread runs
        self._started = True
        self.stats.started = time.monotonic()
        for w in [*self._workers, *self._sink_workers.values()]:
            w.start()
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while not self.stop_event.is_set() and any(w.is_alive() for w in self._workers):
                if deadline is not None and time.monotonic() > deadline:
                    break
                if any(w.error is not None for w in self._all_workers()):
                    break
                if not self._main_sinks:
                    time.sleep(0.05)
                elif not self._pump_main_sinks(wait=0.05):
                    break
        finally:
            self.stats.ended = time.monotonic()
            self.close()
        for w in self._all_workers():
            w.raise_if_failed()
        return self.stats.summary()

    def _all_workers(self) -> list[Worker]:
        return [*self._workers, *self._sink_workers.values()]

    def stop(self) -> None:
        """Ask every thread to stop (safe from any thread); ``run`` then closes everything."""
        self.stop_event.set()

    def close(self) -> None:
        """Stop every thread, then finalise every sink (recordings stay playable) and close the
        source. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.stop_event.set()
        for w in self._all_workers():
            if w.is_alive():
                w.join(timeout=10)
        try:
            for sink in list(self.sinks.values()):
                sink.close()
        finally:
            closer = getattr(self.source, "close", None)
            if closer is not None:
                closer()

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _source_files(source) -> tuple[Path, ...]:
    path = getattr(source, "path", None)
    return (Path(path),) if path and "://" not in str(path) else ()


def write_stats(stats: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(stats, indent=2))
