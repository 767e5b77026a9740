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

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .chunks import ChunkTask, run_chunk
from .errors import StylizeError

_WORKER: dict = {}
_RAY_ACTORS: dict[str, list] = {}  # Ray actors by what builds their Stylizer, kept for a whole Ray session
_RAY_DEPTH = [0]  # nested ray_session()s: the outermost one ends the actors


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
        # "match" is baked into the statistics the parent made; "luminance" acts on every frame
        keep = "luminance" if self.preserve_color == "luminance" else None
        s = Stylizer(model=self.model, device=self.device, alpha=self.alpha, max_size=self.max_size,
                     preserve_color=keep, backend=self.backend, temporal=self.temporal,
                     temporal_strength=self.temporal_strength,
                     cache_dir=self.cache_dir, backend_options={"threads": self.threads}
                     if self.backend.startswith("onnxruntime") else None)
        if self.style_stats:  # else the caller sets styles per item (image batches)
            s.use_style_stats(self.style_stats, list(self.style_names))
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


def run_local(spec: WorkerSpec, tasks: list[ChunkTask], workers: int, on_frames: Callable[[int], None],
              on_chunk: Callable[[dict], None] | None = None) -> list[dict]:
    """Run the tasks on a pool of ``workers`` processes; a worker that dies ends the run with
    a clear error (the parts already written stay, so a rerun does only the rest). ``on_chunk``
    hears each finished chunk's record."""
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
                if on_chunk is not None:
                    on_chunk(results[-1])
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
            address: str | None = None, on_retry: Callable[[int], None] | None = None,
            on_chunk: Callable[[dict], None] | None = None) -> list[dict]:
    """Run the tasks on ``workers`` Ray actors (restarted and retried when killed); ``on_retry``
    hears how many chunk runs were retries so far. Ray's own messages (a lost worker, say) go to
    stderr: stdout is ours (``--json``)."""
    with ray_session(address):
        return _run_ray(spec, tasks, workers, on_frames, address, on_retry, on_chunk)


@contextlib.contextmanager
def ray_session(address: str | None):
    """Ray up for the duration (started or joined here, or already up: then left as it is), its
    messages on stderr (stdout is ours: --json), and shut down here if it was started here, so
    its last log summary is not printed over our output at exit."""
    import sys

    with contextlib.redirect_stdout(sys.stderr):
        try:
            import ray
        except ImportError as e:
            raise StylizeError("--cluster needs Ray: pip install 'realtime-style[ray]' (on every node)") from e
        owner = not ray.is_initialized()
        _ray(address)
        _RAY_DEPTH[0] += 1
        try:
            yield ray
        finally:
            _RAY_DEPTH[0] -= 1
            if _RAY_DEPTH[0] == 0:  # the actors of this session (a batch's videos share them) end with it
                for actor in (a for actors in _RAY_ACTORS.values() for a in actors):
                    with contextlib.suppress(Exception):
                        ray.kill(actor)
                _RAY_ACTORS.clear()
            if owner and ray.is_initialized():
                ray.shutdown()


def _run_ray(spec, tasks, workers, on_frames, address, on_retry, on_chunk=None) -> list[dict]:
    ray = _ray(address)
    counter = ray.remote(_Counter).remote()
    actors = _ray_actors(ray, spec, workers)
    stats, names = spec.style_stats, spec.style_names  # per job; the actors' Stylizers are per session
    pending = {actors[i % workers].run.remote(t, counter, stats, names): t for i, t in enumerate(tasks)}
    results, seen = [], 0
    try:
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
                if on_chunk is not None:
                    on_chunk(results[-1])
    except BaseException:
        # a failed (or interrupted) job leaves no work queued on the shared actors, and the next
        # job of a batch gets fresh ones (these may be dead: restarts are counted per actor)
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        _drop_ray_actors(ray, spec)
        raise
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


def _ray_actors(ray, spec: WorkerSpec, workers: int) -> list:
    """``workers`` actors whose Stylizer ``spec`` builds; made once per Ray session and reused
    by every job in it (the videos of a batch), since building a Stylizer costs seconds."""
    bare = replace(spec, style_stats={}, style_names=())
    actors = _RAY_ACTORS.setdefault(_actor_key(spec), [])
    if len(actors) < workers:
        worker_cls = ray.remote(max_restarts=3, max_task_retries=3, num_cpus=spec.threads)(_RayWorker)
        actors += [worker_cls.remote(bare) for _ in range(workers - len(actors))]
    return actors[:workers]


def _actor_key(spec: WorkerSpec) -> str:
    """What builds an actor's Stylizer: the spec without the job's style."""
    return repr(replace(spec, style_stats={}, style_names=()))


def _drop_ray_actors(ray, spec: WorkerSpec) -> None:
    for actor in _RAY_ACTORS.pop(_actor_key(spec), []):
        with contextlib.suppress(Exception):
            ray.kill(actor)


class _RayWorker:
    def __init__(self, spec: WorkerSpec) -> None:
        self.stylizer = spec.build()

    def run(self, task: ChunkTask, counter, stats: dict, names: tuple[str, ...]) -> dict:
        counter.started.remote(task.chunk.index)
        s = self.stylizer
        s.use_style_stats(stats, list(names))  # this job's style (a few kB)
        return run_chunk(task, s.stylize, s.reset, lambda n: counter.add.remote(n))


def _ray(address: str | None):
    import ray

    if not ray.is_initialized():
        import logging

        target = None if address in (None, "auto") and not os.environ.get("RAY_ADDRESS") else address
        ray.init(address=target, logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False,
                 configure_logging=True)
    return ray


def _ray_reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return next((line for line in reversed(text) if "Error" in line), text[-1] if text else type(e).__name__)[:200]


# --- Ray Data: image sets -----------------------------------------------------------------------
class _ImageActor:
    """Ray Data's map_batches actor: one Stylizer per actor, styles encoded once per style set."""

    def __init__(self, spec: WorkerSpec, weights: list[float] | None) -> None:
        self.stylizer = spec.build()
        self.weights = weights
        self.current: tuple | None = None

    def __call__(self, batch: dict) -> dict:
        from pathlib import Path

        from .images import load_image
        from .outputs import save_picture

        status, message = [], []
        for src, dst, styles in zip(batch["input"], batch["output"], batch["styles"]):
            try:
                key = tuple(styles.split("\n"))
                if key != self.current:
                    self.stylizer.set_style(list(key), self.weights if len(key) == len(self.weights or []) else None)
                    self.current = key
                save_picture(dst, self.stylizer.stylize(load_image(src)), (Path(src), *map(Path, key)), overwrite=True)
                status.append("done")
                message.append("")
            except StylizeError as e:
                status.append("failed")
                message.append(str(e))
        return {"output": list(batch["output"]), "status": status, "message": message}


def run_ray_images(spec: WorkerSpec, items: list[tuple[str, str, list[str]]], workers: int,
                   weights: list[float] | None = None, address: str | None = None) -> list[dict]:
    """(input, output, style paths) pictures through Ray Data's map_batches on ``workers`` actors;
    one row per picture: output, status ("done" or "failed"), message."""
    with ray_session(address) as ray:
        rows = [{"input": i, "output": o, "styles": "\n".join(map(str, st))} for i, o, st in items]
        ds = ray.data.from_items(rows).map_batches(
            _ImageActor, fn_constructor_kwargs={"spec": spec, "weights": weights}, batch_size=4,
            concurrency=workers, num_cpus=spec.threads, batch_format="numpy")
        return [dict(r) for r in ds.take_all()]
