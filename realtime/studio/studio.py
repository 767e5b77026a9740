"""``Studio``: the live session, its controls, the gallery and the render queue, for the web page."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import numpy as np

from ..controls import LiveController
from ..errors import StylizeError
from ..images import load_image
from ..live import LiveSession
from ..outputs import save_picture
from ..sinks import RecordingSink
from .core import FrameHub, Gallery, JobCancelled, RenderJob, Workspace, check_upload, grid, side_by_side


class Studio:
    """Build it, ``start()`` it, let the page drive it, ``close()`` it (also as a context manager)."""

    def __init__(self, camera: str, make_stylizer, styles: list[Path] = (), loop: bool = False,
                 record_dir: Path = Path("."), target_fps: float | None = None, adapt: bool = True):
        self.work = Workspace()
        self.gallery = Gallery()
        for entry in styles:  # folders give their pictures
            self.gallery.add_folder(entry) if entry.is_dir() else self.gallery.add(entry)
        self.make_stylizer = make_stylizer
        self.session = LiveSession(camera, (), loop=loop)  # the camera fails here, before a model loads
        try:
            self._setup_live(record_dir, target_fps, adapt)
        except BaseException:
            self.close()
            raise
        self.jobs: dict[str, RenderJob] = {}
        self.files: dict[str, tuple[Path, str]] = {}  # upload id -> (path, "video" or "image")
        self.file_names: dict[str, str] = {}
        self._queue: queue.Queue[RenderJob] = queue.Queue()
        self._held: np.ndarray | None = None
        self._style_lock, self._style_seq = threading.Lock(), 0
        self._threads: list[threading.Thread] = []

    def _setup_live(self, record_dir: Path, target_fps: float | None, adapt: bool) -> None:
        from ..adapt import make_adapter

        self.stylizer = self.make_stylizer(temporal=True)
        if not self.gallery.paths:
            raise StylizeError("the studio needs at least one style: pass --styles DIR (or --style IMG)")
        self.current = next(iter(self.gallery.paths))
        self.stylizer.set_style(self.gallery.paths[self.current])
        ctx = self.session.context
        self.hub = self.session.attach_sink(FrameHub())
        self.recorder = self.session.attach_sink(RecordingSink(record_dir, ctx.size, ctx.fps, ctx.audio))
        adapter = make_adapter(self.stylizer, target_fps or min(30.0, ctx.fps)) if adapt else None
        self.controller = LiveController(self.stylizer, list(self.gallery.paths.values()), self.recorder,
                                         still_dir=self.work.root / "stills", adapter=adapter)
        self.controller.show_overlay = False
        self.last_input: np.ndarray | None = None
        self.session.use(self._process)
        self.controller.attach(self.session)
        self.record_until: float | None = None
        self.blend: dict | None = None

    def _process(self, rgb: np.ndarray) -> np.ndarray:
        if self._held is not None:
            rgb = self._held
        self.last_input = rgb
        out = self.controller.process(rgb)
        if self.record_until is not None and time.monotonic() > self.record_until and self.recorder.active:
            self.recorder.toggle()
            self.record_until = None
        return out

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        for target in (self.session.run, self._render_loop):
            t = threading.Thread(target=target, daemon=True, name=target.__name__)
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        session = getattr(self, "session", None)
        if session is not None:
            session.close()
        if hasattr(self, "_queue"):
            for job in self.jobs.values():
                job.cancel.set()
            self._queue.put(None)
        self.work.close()

    def __enter__(self) -> Studio:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- live settings (applied between frames) ------------------------------------------------
    def apply(self, changes: dict) -> None:
        c, s = self.controller, self.stylizer
        if "style" in changes:
            sid = changes["style"]
            if sid not in self.gallery.paths:
                raise KeyError(sid)
            self.current, self.blend = sid, None
            self._encode_style(self.gallery.paths[sid])
        if "blend" in changes and changes["blend"]:
            a, b, t = changes["blend"]["a"], changes["blend"]["b"], float(changes["blend"]["t"])
            paths = [self.gallery.paths[a], self.gallery.paths[b]]
            self.blend = {"a": a, "b": b, "t": t}
            self._encode_style(paths, [1.0 - t, t])
        if "alpha" in changes:
            alpha = min(1.0, max(0.0, float(changes["alpha"])))
            c.submit(lambda: setattr(s, "alpha", alpha))
        if "smoothing" in changes:
            on = bool(changes["smoothing"])
            c.submit(lambda: (setattr(s, "temporal", on), s.smoother.reset()))
        if "strength" in changes:
            strength = min(0.99, max(0.0, float(changes["strength"])))
            c.submit(lambda: (setattr(s.smoother.config, "strength", strength), s.smoother.reset()))
        if "style_on" in changes:
            on = bool(changes["style_on"])
            c.submit(lambda: setattr(c, "style_on", on))
        if "hold" in changes:
            self._held = self.last_input.copy() if changes["hold"] and self.last_input is not None else None

    def _encode_style(self, paths, weights=None) -> None:
        """Encode off the inference thread (tens of ms); the Stylizer swaps the style in between
        frames. Requests are taken in order, so the last one clicked wins."""
        with self._style_lock:
            self._style_seq += 1
            seq = self._style_seq

        def work():
            with self._style_lock:
                if seq == self._style_seq:
                    self.stylizer.set_style(paths, weights)

        threading.Thread(target=work, daemon=True).start()

    def state(self) -> dict:
        s = self.stylizer
        return {"styles": [{"id": sid, "name": p.stem} for sid, p in self.gallery.paths.items()],
                "current": self.current, "blend": self.blend, "alpha": s.alpha, "smoothing": s.temporal,
                "strength": s.smoother.config.strength, "style_on": self.controller.style_on,
                "hold": self._held is not None, "recording": self.recorder.active,
                "record_seconds_left": max(0.0, self.record_until - time.monotonic()) if self.record_until else None,
                "outputs": sorted(n for n in self.session.sinks if n not in ("studio", "recording")),
                "stats": self.session.stats.summary(), "size": list(self.session.context.size)}

    def record(self, seconds: float | None) -> bool:
        def toggle():
            self.recorder.toggle()
            self.record_until = time.monotonic() + seconds if seconds and self.recorder.active else None

        self.controller.submit(toggle)
        return not self.recorder.active

    def snapshot(self) -> Path | None:
        out = self.controller.last_output
        if out is None:
            return None
        _, path = self.work.new_path("stills", ".png")
        save_picture(path, out)
        return path

    def set_output(self, kind: str, on: bool, target: str | None = None) -> None:
        """Virtual camera or network stream, on or off while the session runs."""
        if kind == "virtualcam":
            names = [n for n in self.session.sinks if n.startswith("virtualcam")]
            if on and not names:
                self.session.add_sink("virtualcam")
            for n in names if not on else []:
                self.session.remove_sink(n)
            return
        streams = [n for n in self.session.sinks if "://" in n]
        if on:
            if not target or not target.startswith(("udp://", "srt://")):
                raise StylizeError("a network stream needs an address such as udp://127.0.0.1:23000")
            if target not in streams:
                self.session.add_sink(target)
        else:
            for n in streams:
                self.session.remove_sink(n)

    # --- uploads and stills --------------------------------------------------------------------
    def add_upload(self, path: Path, kind: str, name: str = "") -> dict:
        found = check_upload(path, kind)
        if kind == "style":
            return {"id": self.gallery.add(path), "kind": found}
        fid = path.stem
        self.files[fid] = (path, found)
        self.file_names[fid] = Path(name).stem[:60] or fid  # for the render's file name only
        return {"id": fid, "kind": found}

    def preview(self, fid: str, style_ids: list[str], alpha: float) -> np.ndarray:
        """Before / after of the file's first frame (or the picture) with the chosen style(s)."""
        path, kind = self.files[fid]
        frame = _first_frame(path) if kind == "video" else load_image(path)
        st = self.make_stylizer(temporal=False)
        st.alpha = alpha
        st.set_style([self.gallery.paths[i] for i in style_ids])
        return side_by_side(frame, st.stylize(frame))

    def sheet(self, fid: str | None = None) -> np.ndarray:
        """Every gallery style on the current live frame (or an uploaded picture), at the current strength."""
        frame = self.last_input if fid is None else (_first_frame(self.files[fid][0]) if self.files[fid][1] == "video"
                                                     else load_image(self.files[fid][0]))
        if frame is None:
            raise StylizeError("no frame yet: wait for the camera")
        st = self.make_stylizer(temporal=False)
        st.alpha = self.stylizer.alpha
        tiles = []
        for path in self.gallery.paths.values():
            st.set_style(path)
            tiles.append(st.stylize(frame))
        return grid(tiles)

    # --- render queue --------------------------------------------------------------------------
    def submit_job(self, fid: str, style_ids: list[str], settings: dict) -> RenderJob:
        path, kind = self.files[fid]
        jid = f"j{len(self.jobs) + 1}"
        stem = self.file_names.get(fid, fid)
        job = RenderJob(jid, path, f"{stem}_stylized-{jid}{'.mp4' if kind == 'video' else '.png'}", style_ids, settings)
        self.jobs[jid] = job
        self._queue.put(job)
        return job

    def _render_loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if job.cancel.is_set():
                job.status = "cancelled"
                continue
            try:
                self._render(job)
            except JobCancelled:
                job.status, job.message = "cancelled", "stopped; the frames made so far are in the file"
            except StylizeError as e:
                job.status, job.message = "failed", str(e)

    def _render(self, job: RenderJob) -> None:
        from ..jobs import VideoJob

        job.status = "running"
        st = self.make_stylizer(temporal=job.settings.get("smoothing", True))
        st.alpha = float(job.settings.get("alpha", 1.0))
        st.set_style([self.gallery.paths[i] for i in job.style_ids])
        _, out = self.work.new_path("renders", Path(job.name).suffix)
        job.output = out
        if out.suffix == ".png":
            save_picture(out, st.stylize(load_image(job.source)), (job.source,))
            job.done = job.total = 1
            job.status = "done"
            return
        t0 = time.monotonic()

        def process(rgb):
            if job.cancel.is_set():
                raise JobCancelled("cancelled")
            return st.stylize(rgb)

        def progress(done: int, total: int | None) -> None:
            job.done, job.total = done, total
            job.fps = done / max(1e-6, time.monotonic() - t0)
            job.eta_s = round((total - done) / job.fps, 1) if total and job.fps else None

        with VideoJob(job.source, out, progress=False) as vj:
            vj.run(process, on_frame=progress)
        job.total = job.done
        job.status = "done"


def _first_frame(path: Path) -> np.ndarray:
    from ..media import MediaInput

    with MediaInput(path) as media:
        first = next(media.frames(), None)
    if first is None:
        raise StylizeError(f"{path.name} has no frame to show")
    return first.rgb
