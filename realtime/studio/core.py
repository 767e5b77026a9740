"""What the Studio page drives: one live session, a style gallery, and a queue of file renders.

The live side is the same ``LiveSession`` + ``LiveController`` as ``stylize webcam``: the page's
changes are queued and applied by the inference thread between frames, and the stylised frames
reach the page through ``FrameHub``, one more sink. Nothing here takes a path from the page:
styles, uploads, snapshots and renders are addressed by ids this process made.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadImageError, StylizeError
from ..images import IMAGE_SUFFIXES, load_image, resize_long_side

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".m4v")


class FrameHub:
    """A sink that keeps the newest stylised frame for any number of page viewers.

    The JPEG is made by the first viewer that asks for a frame (on its thread, once per frame),
    so nothing is encoded on the live path, and nothing at all while no page is open.
    """

    name = "studio"

    def __init__(self, quality: int = 85):
        self.quality = quality
        self.seq = 0
        self._rgb: np.ndarray | None = None
        self._jpeg: tuple[int, bytes] = (0, b"")
        self._cond = threading.Condition()

    def send(self, rgb: np.ndarray, capture_time: float) -> None:
        with self._cond:
            self._rgb, self.seq = rgb, self.seq + 1
            self._cond.notify_all()

    def wait(self, after: int, timeout: float = 1.0) -> tuple[int, bytes]:
        """(sequence number, JPEG) of the first frame newer than ``after`` (or the newest after
        ``timeout``)."""
        import cv2

        with self._cond:
            self._cond.wait_for(lambda: self.seq > after, timeout)
            seq, rgb = self.seq, self._rgb
            if rgb is None or self._jpeg[0] == seq:
                return seq, self._jpeg[1]
            ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if ok:
                self._jpeg = (seq, buf.tobytes())
            return seq, self._jpeg[1]

    def close(self) -> None:
        with self._cond:
            self._cond.notify_all()


@dataclass
class Gallery:
    """Style pictures by id: the --styles folder, then pictures added from the page."""

    paths: dict[str, Path] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def add_folder(self, folder: Path) -> None:
        for p in sorted(folder.iterdir()):
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                self.add(p)

    def add(self, path: Path) -> str:
        load_image(path, max_side=64)  # a picture we can read, or BadImageError
        sid = f"s{next(self._ids)}"
        self.paths[sid] = path
        return sid

    def thumb(self, sid: str, side: int = 160) -> bytes:
        import cv2

        rgb = load_image(self.paths[sid], max_side=side)
        return cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


@dataclass
class RenderJob:
    id: str
    source: Path
    name: str
    style_ids: list[str]
    settings: dict
    status: str = "queued"  # queued, running, done, cancelled, failed
    done: int = 0
    total: int | None = None
    fps: float = 0.0
    eta_s: float | None = None
    message: str = ""
    output: Path | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def public(self) -> dict:
        return {"id": self.id, "name": self.name, "status": self.status, "done": self.done, "total": self.total,
                "fps": round(self.fps, 1), "eta_s": self.eta_s, "message": self.message,
                "download": f"/api/jobs/{self.id}/download" if self.output and self.output.exists() else None,
                "progress": round(100 * self.done / self.total, 1) if self.total else (100.0 if self.status == "done"
                                                                                       else 0.0)}


class JobCancelled(StylizeError):
    """The page asked to stop a render; what was made so far is kept."""


class Workspace:
    """Temporary folders for uploads, snapshots and renders (removed when the Studio closes)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="stylize-studio-"))
        for name in ("styles", "files", "renders", "stills"):
            (self.root / name).mkdir()
        self._ids = itertools.count(1)

    def new_path(self, kind: str, suffix: str) -> tuple[str, Path]:
        n = next(self._ids)
        return f"{kind[0]}{n}", self.root / kind / f"{n}{suffix}"

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def check_upload(path: Path, want: str) -> str:
    """'image' or 'video' by content (never by name alone); BadImageError otherwise."""
    try:
        load_image(path, max_side=64)
        return "image"
    except StylizeError:
        if want == "style":
            raise BadImageError("that file is not a picture we can read; drop a JPEG, PNG or WebP") from None
    from ..media import MediaInput

    try:
        with MediaInput(path) as media:
            if next(media.frames(), None) is not None:
                return "video"
    except StylizeError:
        pass
    raise BadImageError("that file is neither a picture nor a video we can read; use JPEG/PNG or MP4/MKV/MOV/WebM")


def side_by_side(before: np.ndarray, after: np.ndarray, height: int = 360) -> np.ndarray:
    def fit(img):
        return resize_long_side(img, round(height * max(img.shape[:2]) / img.shape[0]))

    a, b = fit(before), fit(after)
    gap = np.full((a.shape[0], 8, 3), 255, np.uint8)
    return np.concatenate([a, gap, b[: a.shape[0]]], axis=1)


def grid(tiles: list[np.ndarray], columns: int = 4, tile_w: int = 240) -> np.ndarray:
    """Tiles scaled to one width, in rows of ``columns``, white gaps."""
    import cv2

    scaled = [cv2.resize(t, (tile_w, round(t.shape[0] * tile_w / t.shape[1])), interpolation=cv2.INTER_AREA)
              for t in tiles]
    h = max(t.shape[0] for t in scaled)
    padded = [np.pad(t, ((0, h - t.shape[0] + 6), (0, 6), (0, 0)), constant_values=255) for t in scaled]
    while len(padded) % columns:
        padded.append(np.full_like(padded[0], 255))
    rows = [np.concatenate(padded[i:i + columns], axis=1) for i in range(0, len(padded), columns)]
    return np.concatenate(rows, axis=0)

