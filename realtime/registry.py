"""The weight registry: one path for every weight file, resolve -> download -> verify -> load.

Named models live in ``models/registry.json`` (shipped inside the wheel as
``realtime/_bundled``). A file resolves, in order, to: the bundled copy, the user cache
(``--cache-dir``, ``$REALTIME_STYLE_CACHE``, or the platform's user cache dir), or a
download to a temporary file that is renamed into the cache only after its sha256 (and
size, where known) match. Cached and bundled files are re-hashed before every load; a
file that fails verification is never loaded.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import UnknownModelError, WeightsError

CACHE_ENV = "REALTIME_STYLE_CACHE"
URL_ENV = "REALTIME_STYLE_BASE_URL"  # mirrors: replaces everything before the file name


@dataclass(frozen=True)
class WeightFile:
    """One weight file: where it comes from and how to recognise it."""

    role: str  # "encoder", "decoder", or "weights" (both in one file)
    filename: str
    sha256: str
    size: int | None = None
    url: str | None = None
    bundled: str | None = None  # path inside models/ when the package ships it


@dataclass(frozen=True)
class ModelSpec:
    """A named model: architecture, files and provenance."""

    name: str
    arch: str  # "adain-vgg19" or "student"
    files: tuple[WeightFile, ...]
    description: str = ""
    preprocessing: str = ""
    licence: str = ""
    origin: str = ""
    card: str | None = None

    def file(self, role: str) -> WeightFile:
        for f in self.files:
            if f.role == role:
                return f
        raise KeyError(role)


def models_dir() -> Path:
    """Where models/ is: realtime/_bundled in an installed wheel, or models/ of a source checkout
    (editable installs). _bundled is a data folder without __init__, so it is found by path."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_bundled", here.parent / "models"):
        if (candidate / "registry.json").exists():
            return candidate
    return here / "_bundled"


@lru_cache(maxsize=None)
def _load_registry(path: Path) -> tuple[str, dict[str, ModelSpec]]:
    data = json.loads(path.read_text())
    specs = {}
    for name, entry in data["models"].items():
        files = tuple(WeightFile(role=role, **f) for role, f in entry.pop("files").items())
        specs[name] = ModelSpec(name=name, files=files, **entry)
    return data["default"], specs


def registry() -> dict[str, ModelSpec]:
    return _load_registry(models_dir() / "registry.json")[1]


def default_model() -> str:
    return _load_registry(models_dir() / "registry.json")[0]


def get_spec(name: str) -> ModelSpec:
    specs = registry()
    if name == "default":
        name = default_model()
    if name not in specs:
        raise UnknownModelError(f"unknown model '{name}'; known models: {', '.join(sorted(specs))}")
    return specs[name]


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where downloads and exported graphs are kept: cache_dir, $REALTIME_STYLE_CACHE, or the
    platform's user cache folder."""
    if cache_dir:
        root = Path(cache_dir)
    elif os.environ.get(CACHE_ENV):
        root = Path(os.environ[CACHE_ENV])
    else:
        from platformdirs import user_cache_dir

        root = Path(user_cache_dir("realtime-style"))
    if root.exists() and not root.is_dir():
        raise WeightsError(f"the cache folder {root} is a file; pass --cache-dir with a folder "
                           f"(or set {CACHE_ENV})")
    return root


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, wf: WeightFile) -> None:
    """Raise WeightsError unless path has the registered size and sha256."""
    size = path.stat().st_size
    if wf.size is not None and size != wf.size:
        raise WeightsError(f"{path} is {size:,} bytes, expected {wf.size:,}; delete it and pull again")
    digest = sha256_of(path)
    if digest != wf.sha256:
        raise WeightsError(f"{path} has sha256 {digest[:16]}..., expected {wf.sha256[:16]}...; "
                           f"delete it and run 'stylize models pull'")


def _url_for(wf: WeightFile) -> str | None:
    base = os.environ.get(URL_ENV)
    if base:
        return base.rstrip("/") + "/" + wf.filename
    return wf.url


def download(wf: WeightFile, dest: Path, progress: bool = True, timeout: float = 30.0) -> Path:
    """Download to a temporary file beside dest, verify, then rename atomically."""
    url = _url_for(wf)
    if not url:
        raise WeightsError(f"{wf.filename} has no download URL; place it in {dest.parent} by hand")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{wf.filename}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        done = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or wf.size
            while block := resp.read(1 << 16):
                out.write(block)
                h.update(block)
                done += len(block)
                if progress:
                    _progress(wf.filename, done, total)
        if progress:
            sys.stderr.write("\n")
        if wf.size is not None and done != wf.size:
            raise WeightsError(f"download of {wf.filename} from {url} is {done:,} bytes, expected {wf.size:,} "
                               f"(truncated?); try again")
        if h.hexdigest() != wf.sha256:
            raise WeightsError(f"download of {wf.filename} from {url} has sha256 {h.hexdigest()[:16]}..., "
                               f"expected {wf.sha256[:16]}...; not used")
        os.replace(tmp, dest)
        return dest
    except urllib.error.HTTPError as e:
        raise WeightsError(f"could not download {wf.filename}: HTTP {e.code} from {url}") from e
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as e:
        reason = getattr(e, "reason", e)
        raise WeightsError(f"could not download {wf.filename} from {url}: {reason}; "
                           f"check the network or place the file in {dest.parent}") from e
    finally:
        tmp.unlink(missing_ok=True)


def _progress(name: str, done: int, total: int | None) -> None:
    if total:
        pct = 100.0 * done / total
        bar = "#" * int(pct / 4)
        sys.stderr.write(f"\r{name}: [{bar:<25}] {pct:5.1f}% {done / 1e6:.1f}/{total / 1e6:.1f} MB")
    else:
        sys.stderr.write(f"\r{name}: {done / 1e6:.1f} MB")
    sys.stderr.flush()


def resolve_file(wf: WeightFile, cache_dir: str | os.PathLike | None = None, allow_download: bool = True,
                 progress: bool = True) -> Path:
    """A verified local path for wf: bundled, then cached, then downloaded."""
    if wf.bundled:
        path = models_dir() / wf.bundled
        if path.exists():
            try:
                verify(path, wf)
            except WeightsError as e:
                raise WeightsError(f"the bundled {wf.filename} is damaged ({str(e).split(';')[0]}); reinstall "
                                   f"realtime-style (pip install --force-reinstall realtime-style)") from e
            return path
    path = cache_root(cache_dir) / wf.filename
    if path.exists():
        verify(path, wf)
        return path
    if not allow_download:
        raise WeightsError(f"{wf.filename} is not in {path.parent}; run 'stylize models pull' first")
    return download(wf, path, progress=progress)


def resolve(name: str, cache_dir: str | os.PathLike | None = None, allow_download: bool = True,
            progress: bool = True) -> tuple[ModelSpec, dict[str, Path]]:
    spec = get_spec(name)
    return spec, {wf.role: resolve_file(wf, cache_dir, allow_download, progress) for wf in spec.files}


def file_status(wf: WeightFile, cache_dir: str | os.PathLike | None = None) -> str:
    """'bundled', 'cached', 'missing' or 'corrupt' (for `stylize models list/verify`)."""
    candidates = []
    if wf.bundled:
        candidates.append((models_dir() / wf.bundled, "bundled"))
    candidates.append((cache_root(cache_dir) / wf.filename, "cached"))
    for path, label in candidates:
        if path.exists():
            try:
                verify(path, wf)
            except WeightsError:
                return "corrupt"
            return label
    return "missing"
