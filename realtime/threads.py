"""Thread plumbing: bounded queues with timeouts, a stop event, and errors that travel.

A worker that fails puts a ``Failure`` (the exception plus the stage name) on its output
queue; whoever takes it re-raises it as ``PipelineError`` naming the stage. ``END`` marks
the end of a stream.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import PipelineError

END = object()  # sentinel: no more items


@dataclass(frozen=True)
class Failure:
    where: str
    error: BaseException

    def reraise(self) -> None:
        raise PipelineError(self.where, self.error) from self.error


def put(q: queue.Queue, item: Any, stop: threading.Event, timeout: float = 0.1) -> bool:
    """Put without blocking forever; False if stop was set before there was room."""
    while not stop.is_set():
        try:
            q.put(item, timeout=timeout)
            return True
        except queue.Full:
            continue
    return False


def get(q: queue.Queue, stop: threading.Event, timeout: float = 0.1) -> Any:
    """Get without blocking forever; END once stop is set and nothing is left."""
    while True:
        try:
            item = q.get(timeout=timeout)
        except queue.Empty:
            if stop.is_set():
                return END
            continue
        if isinstance(item, Failure):
            item.reraise()
        return item


def items(q: queue.Queue, stop: threading.Event) -> Iterator[Any]:
    """Everything taken from q until END (or stop with nothing left); failures re-raised."""
    while True:
        item = get(q, stop)
        if item is END:
            return
        yield item


class Worker(threading.Thread):
    """Runs ``target(stop)``; an exception is reported on ``errors_to`` and kept on ``error``."""

    def __init__(self, name: str, target: Callable[[threading.Event], None], stop: threading.Event,
                 errors_to: queue.Queue | None = None):
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.stop_event = stop
        self.errors_to = errors_to
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn(self.stop_event)
        except BaseException as e:  # noqa: BLE001 - carried to the caller, not swallowed
            self.error = e
            if self.errors_to is not None:
                try:
                    self.errors_to.put_nowait(Failure(self.name, e))
                except queue.Full:
                    pass
            self.stop_event.set()

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise PipelineError(self.name, self.error) from self.error
