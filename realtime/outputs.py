"""Output files that never clobber and are never left half-written under their final name.

``OutputFile`` writes to a temporary name in the target's folder and renames it into place
only on ``commit``; it refuses a target that is one of the inputs (by path, symlink or hard
link), an existing target without ``overwrite``, and a second writer of the same target at
the same time (an exclusive lock beside it, released by the OS if the process dies).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .errors import OutputError


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small text file (a record, a manifest) whole or not at all: a temporary name
    beside it (per process, so two writers never share one), then a rename."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def same_file(a: Path, b: Path) -> bool:
    """True when a and b are one file (one path, a symlink to it, or a hard link)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_target(target: Path, inputs: Iterable[Path] = (), overwrite: bool = False) -> None:
    """The checks a user can act on, before any work: not an input, not a folder, a folder
    that exists and is writable, and no existing file unless ``overwrite``."""
    for path in inputs:
        if same_file(target, Path(path)):
            raise OutputError(f"output {target} is the input {path}; choose another output")
    if target.is_dir():
        raise OutputError(f"output {target} is a folder; give a file name in it")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist; create it or choose another output")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable; choose another output")
    if target.exists() and not overwrite:
        raise OutputError(f"output {target} exists; pass --overwrite to replace it or choose another output")


class OutputFile:
    """A context manager around one output: write ``temp``, then ``commit()``.

    Leaving without a commit removes the temporary file, so the target keeps whatever it had
    (an older good file survives a failed ``--overwrite`` run). After SIGKILL the temporary
    file stays behind, hidden, and the next run on the same target replaces it.
    """

    def __init__(self, target: str | os.PathLike, inputs: Iterable[Path] = (), overwrite: bool = False):
        self.target = Path(target)
        self.overwrite = overwrite
        check_target(self.target, inputs, overwrite)
        folder = self.target.parent
        # the real suffix stays last, so encoders and image writers pick the format from it
        self.temp = folder / f".{self.target.stem}.partial{self.target.suffix}"
        self._lock_path = folder / f".{self.target.name}.lock"
        self._lock_fd: int | None = None
        self.committed = False

    def __enter__(self) -> OutputFile:
        self._lock()
        if self.temp.exists():  # left by a killed run on this target
            self.temp.unlink()
        return self

    def commit(self) -> Path:
        if self.target.exists() and not self.overwrite:
            raise OutputError(f"output {self.target} appeared while this run wrote it; its result is "
                              f"in {self.temp}")
        os.replace(self.temp, self.target)
        self.committed = True
        return self.target

    def __exit__(self, *exc) -> None:
        try:
            if not self.committed and self.temp.exists():
                self.temp.unlink()
        finally:
            self._unlock()

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: the create-exclusive temp name is the only guard
            return
        while True:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                raise OutputError(f"another run is writing {self.target} right now; wait for it or "
                                  f"choose another output") from e
            try:  # the holder before us may have removed the file we locked: lock the new one
                if os.stat(self._lock_path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is None:
            return
        import fcntl

        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)
        self._lock_fd = None
        try:  # a waiting run may already hold a new lock on this name; then it stays
            self._lock_path.unlink()
        except OSError:
            pass


def save_picture(target: str | os.PathLike, rgb, inputs: Iterable[Path] = (), overwrite: bool = False) -> Path:
    """Write a uint8 RGB picture through ``OutputFile`` (the format follows the suffix)."""
    from .images import save_image

    with OutputFile(target, inputs=inputs, overwrite=overwrite) as out:
        save_image(out.temp, rgb)
        return out.commit()
