"""One long video on several workers: ``ChunkedVideoJob``.

open and check -> probe packets -> plan chunks -> style statistics once (in this process) ->
workers stylise the chunks not yet done into ``OUT.parts/`` -> join -> rename into place ->
remove ``OUT.parts/``. A rerun of a stopped or failed job finds the finished parts (each
recorded with its frame count) and does only the rest; a plan made for other settings is
thrown away. See ``realtime.chunks`` (planning, parts, joining) and ``realtime.engines``
(local pool, Ray).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

from .chunks import (ChunkTask, chunk_summary, join_parts, part_done, part_record, plan_chunks, probe_packets,
                     scan_cuts)
from .engines import WorkerSpec, default_threads, run_local, run_ray
from .jobs import VideoSummary, check_suffix, default_output
from .media import MediaInput
from .outputs import OutputFile, write_text_atomic
from .progress import Progress
from .temporal import TemporalConfig


class ChunkedVideoJob:
    """A context manager, like ``VideoJob``; construction checks the input and the output."""

    def __init__(self, input_path: str | os.PathLike, output: str | os.PathLike | None, spec: WorkerSpec, *,
                 styles: list[Path], weights: list[float] | None = None, workers: int = 2,
                 chunk_seconds: float = 10.0, warmup: int = 15, cluster: str | None = None,
                 overwrite: bool = False, progress: bool = True, deterministic: bool = False):
        self.input_path = Path(input_path)
        self.output = Path(output) if output else default_output(self.input_path)
        check_suffix(self.output)
        with MediaInput(self.input_path) as media:
            self.rate = float(media.rate)
            first = next(media.frames(), None)
        if first is None:
            from .errors import BadVideoError

            raise BadVideoError(f"{self.input_path}: the video stream decodes to no frames")
        self.first_frame = first.rgb
        self.out = OutputFile(self.output, inputs=(self.input_path, *styles), overwrite=overwrite)
        self.spec = replace(spec, threads=spec.threads or default_threads(workers))
        self.styles, self.weights = styles, weights
        self.workers, self.chunk_seconds, self.warmup = workers, chunk_seconds, warmup
        self.cluster, self.progress, self.deterministic = cluster, progress, deterministic
        self.parts_dir = self.output.with_name(self.output.name + ".parts")
        self.retries = 0

    def __enter__(self) -> ChunkedVideoJob:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def run(self) -> VideoSummary:
        start = time.perf_counter()
        index = probe_packets(self.input_path)
        # with smoothing on, seams go to scene cuts near the targets (the smoother resets there anyway)
        cuts = tuple(scan_cuts(self.input_path, TemporalConfig().cut_threshold)) if self.spec.temporal else ()
        chunks = plan_chunks(index, self.chunk_seconds, self.warmup, cuts)
        spec = self._with_style_stats()
        self._prepare_parts(chunks, spec)
        todo = [c for c in chunks if not part_done(self.parts_dir, c)]
        total = sum(c.frames for c in chunks)
        bar = Progress(total, label=f"{self.input_path.name} ({len(chunks)} chunks, {len(todo)} to do)",
                       enabled=self.progress)
        tasks = [ChunkTask(str(self.input_path), str(self.parts_dir), c, self.deterministic) for c in todo]
        done = [len(chunks) - len(todo)]

        def note() -> None:  # chunks done / retried, live on the bar
            bar.set_note(f"chunks {done[0]}/{len(chunks)}" + (f", {self.retries} retried" if self.retries else ""))

        def chunk_done(_record: dict) -> None:
            done[0] += 1
            note()

        def retried(n: int) -> None:
            self.retries = n
            note()

        note()
        bar.update(total - sum(c.frames for c in todo))  # the parts an earlier run finished
        finished = False
        try:
            if tasks and self.cluster:
                run_ray(spec, tasks, self.workers, bar.update, None if self.cluster == "auto" else self.cluster,
                        on_retry=retried, on_chunk=chunk_done)
            elif tasks:
                run_local(spec, tasks, self.workers, bar.update, on_chunk=chunk_done)
            finished = True
        finally:
            bar.close(finished=finished)
        records = [part_record(self.parts_dir, c) for c in chunks]
        with self.out:
            joined = join_parts(self.parts_dir, chunks, self.input_path, self.out)
            self.out.commit()
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        wall = time.perf_counter() - start
        warnings = [f"{self.retries} chunk runs were retries (a worker was lost)"] if self.retries else []
        h, w = self.first_frame.shape[:2]
        return VideoSummary(str(self.input_path), str(self.output), joined["frames"], w, h, self.rate, wall,
                            joined["frames"] / wall if wall > 0 else 0.0, joined["audio"], True, warnings,
                            {"model": spec.model, "backend": spec.backend, "styles": [p.name for p in self.styles],
                             "workers": self.workers, "threads_per_worker": spec.threads,
                             "engine": "ray" if self.cluster else "local",
                             "chunks": [{**c, "frames_sha256": r["sha256"], "worker_pid": r["pid"]}
                                        for c, r in zip(chunk_summary(chunks, index), records)],
                             "chunks_run": len(todo)})

    def _with_style_stats(self) -> WorkerSpec:
        """The style statistics every chunk shares (and the colour reference of
        ``--preserve-color match``: the clip's first frame), computed once here."""
        from .stylizer import Stylizer

        s = Stylizer(model=self.spec.model, device=self.spec.device, backend="torch",
                     preserve_color=self.spec.preserve_color, cache_dir=self.spec.cache_dir)
        s.set_style(self.styles, self.weights)
        stats = s.style_stats(self.first_frame)
        return replace(self.spec, style_stats=stats, style_names=tuple(p.name for p in self.styles))

    def _prepare_parts(self, chunks, spec: WorkerSpec) -> None:
        """Keep the parts of an earlier run only if it planned the same chunks with the same settings."""
        identity = {"input": str(self.input_path.resolve()), "size": self.input_path.stat().st_size,
                    "mtime": self.input_path.stat().st_mtime, "chunks": [asdict(c) for c in chunks],
                    "settings": _settings_hash(spec)}
        plan = self.parts_dir / "plan.json"
        if plan.exists():
            try:
                same = json.loads(plan.read_text()) == json.loads(json.dumps(identity))
            except (OSError, ValueError):
                same = False
            if not same:
                shutil.rmtree(self.parts_dir)
        self.parts_dir.mkdir(exist_ok=True)
        if not plan.exists():  # whole or absent, as the part records: a half plan would discard finished parts
            write_text_atomic(plan, json.dumps(identity))


def _settings_hash(spec: WorkerSpec) -> str:
    """What makes the pictures (not how many threads make them)."""
    h = hashlib.sha256()
    for key in ("model", "backend", "alpha", "preserve_color", "max_size", "temporal", "temporal_strength"):
        h.update(f"{key}={getattr(spec, key)!r};".encode())
    for tap in sorted(spec.style_stats):
        for arr in spec.style_stats[tap]:
            h.update(arr.tobytes())
    return h.hexdigest()
