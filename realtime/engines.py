"""Where chunks run: a local process pool (the default, standard library only) or Ray.

A worker builds its ``Stylizer`` once (it holds a model and cannot be pickled) from a
``WorkerSpec`` and the style statistics computed once by the parent, then runs chunk after
chunk. Each worker uses ``threads`` intra-op threads; the default gives the workers the
machine's cores between them (cores // workers, at least 1), so they never oversubscribe it.
Workers report frames as they go, for one progress bar over the whole job.

Ray (``pip install 'realtime-style[ray]'``; ``--cluster auto`` starts it locally,
``--cluster ray://HOST:PORT`` or ``$RAY_ADDRESS`` joins a cluster) runs the workers as actors
with ``max_restarts`` and ``max_task_retries``, so a chunk whose worker is killed is run
again on the restarted one. Every node must see the input and the output folder (shared
storage); a worker that cannot open the input says so.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .chunks import ChunkTask, run_chunk
from .errors import StylizeError

_WORKER: dict = {}


@dataclass(frozen=True)
class WorkerSpec:
    """How to build a worker's Stylizer (plain values, picklable)."""

    model: str
    device: str = "cpu"
    backend: str = "auto"
    alpha: float = 1.0
    preserve_color: str | None = None
    max_size: int | None = None
    temporal: bool = True
    temporal_strength: float = 0.9
    cache_dir: str | None = None
    threads: int = 1
    style_stats: dict = field(default_factory=dict)  # tap -> (mean, std) arrays, from the parent
    style_names: tuple[str, ...] = ()

    def build(self):
        import torch

        from .stylizer import Stylizer

        torch.set_num_threads(self.threads)
        s = Stylizer(model=self.model, device=self.device, alpha=self.alpha, max_size=self.max_size,
                     backend=self.backend, temporal=self.temporal, temporal_strength=self.temporal_strength,
                     cache_dir=self.cache_dir, backend_options={"threads": self.threads}
                     if self.backend.startswith("onnxruntime") else None)
        s.use_style_stats(self.style_stats, list(self.style_names))
        if self.preserve_color == "luminance":
            s.preserve_color = "luminance"
        return s


def default_threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


# --- local process pool ---------------------------------------------------------------------
def _init_local(spec: WorkerSpec, progress) -> None:
    _WORKER["stylizer"] = spec.build()
    _WORKER["progress"] = progress


def _run_local(task: ChunkTask) -> dict:
    s, progress = _WORKER["stylizer"], _WORKER["progress"]
    pending = [0]

    def tick(n: int) -> None:  # report in small batches: a queue put per frame costs more than it says
        pending[0] += n
        if pending[0] >= 4:
            progress.put(pending[0])
            pending[0] = 0

    result = run_chunk(task, s.stylize, s.reset, tick)
    if pending[0]:
        progress.put(pending[0])
    return result


def run_local(spec: WorkerSpec, tasks: list[ChunkTask], workers: int, on_frames: Callable[[int], None]) -> list[dict]:
    """Run the tasks on a pool of ``workers`` processes; a worker that dies ends the run with
    a clear error (the parts already written stay, so a rerun does only the rest)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no inherited torch thread pools
    manager = ctx.Manager()
    progress = manager.Queue()
    stop = threading.Event()
    pump = threading.Thread(target=_pump, args=(progress, on_frames, stop), daemon=True)
    pump.start()
    results = []
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_local, initargs=(spec, progress)) as pool:
            futures = [pool.submit(_run_local, t) for t in tasks]
            for future in as_completed(futures):
                results.append(future.result())
    except BrokenProcessPool as e:
        raise StylizeError(f"a worker process died ({len(results)} of {len(tasks)} chunks done; the finished parts "
                           f"are kept): run the same command again to do the rest") from e
    finally:
        stop.set()
        pump.join(timeout=5)
        manager.shutdown()
    return results


def _pump(progress, on_frames: Callable[[int], None], stop: threading.Event) -> None:
    import queue

    while not stop.is_set():
        try:
            on_frames(progress.get(timeout=0.2))
        except queue.Empty:
            continue
        except (EOFError, OSError):
            return


# --- Ray ------------------------------------------------------------------------------------
def run_ray(spec: WorkerSpec, tasks: list[ChunkTask], workers: int, on_frames: Callable[[int], None],
            address: str | None = None, on_retry: Callable[[int], None] | None = None) -> list[dict]:
    """Run the tasks on ``workers`` Ray actors (restarted and retried when killed); ``on_retry``
    hears how many chunk runs were retries so far. Ray's own messages (a lost worker, say) go to
    stderr: stdout is ours (``--json``)."""
    import contextlib
    import sys

    with contextlib.redirect_stdout(sys.stderr):
        try:
            return _run_ray(spec, tasks, workers, on_frames, address, on_retry)
        finally:
            import ray

            if ray.is_initialized():  # its last log summary is printed here, not over our stdout at exit
                ray.shutdown()


def _run_ray(spec, tasks, workers, on_frames, address, on_retry) -> list[dict]:
    ray = _ray(address)
    counter = ray.remote(_Counter).remote()
    worker_cls = ray.remote(max_restarts=3, max_task_retries=3, num_cpus=spec.threads)(_RayWorker)
    actors = [worker_cls.remote(spec, counter) for _ in range(workers)]
    pending = {actors[i % workers].run.remote(t): t for i, t in enumerate(tasks)}
    results, seen = [], 0
    while pending:
        done, _ = ray.wait(list(pending), timeout=0.5)
        total, retries = ray.get(counter.state.remote())
        if total > seen:
            on_frames(total - seen)
            seen = total
        if on_retry is not None:
            on_retry(retries)
        for ref in done:
            try:
                results.append(ray.get(ref))
            except ray.exceptions.RayError as e:
                raise StylizeError(f"chunk {pending[ref].chunk.index} failed on Ray: {_ray_reason(e)}") from e
            del pending[ref]
    return results


class _Counter:
    """Frames done and chunk starts, across every worker (a chunk started twice was retried)."""

    def __init__(self) -> None:
        self.frames = 0
        self.starts: dict[int, int] = {}

    def add(self, n: int) -> None:
        self.frames += n

    def started(self, chunk: int) -> None:
        self.starts[chunk] = self.starts.get(chunk, 0) + 1

    def state(self) -> tuple[int, int]:
        return self.frames, sum(n - 1 for n in self.starts.values())


class _RayWorker:
    def __init__(self, spec: WorkerSpec, counter) -> None:
        self.stylizer = spec.build()
        self.counter = counter

    def run(self, task: ChunkTask) -> dict:
        self.counter.started.remote(task.chunk.index)
        s = self.stylizer
        return run_chunk(task, s.stylize, s.reset, lambda n: self.counter.add.remote(n))


def _ray(address: str | None):
    try:
        import ray
    except ImportError as e:
        raise StylizeError("--cluster needs Ray: pip install 'realtime-style[ray]' (on every node)") from e
    if not ray.is_initialized():
        import logging

        target = None if address in (None, "auto") and not os.environ.get("RAY_ADDRESS") else address
        ray.init(address=target, logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False,
                 configure_logging=True)
    return ray


def _ray_reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return next((line for line in reversed(text) if "Error" in line), text[-1] if text else type(e).__name__)[:200]
