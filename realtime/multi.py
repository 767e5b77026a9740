"""``stylize batch``: many videos and pictures in one command, resumable.

Inputs are files, folders (their videos and pictures) or glob patterns. Every input is
stylised with every style set (one picture, a weighted mix, or each picture of a style
folder) into ``OUTDIR``; one bad file is reported and skipped and the rest go on. Outputs are
written atomically, and ``OUTDIR/.realtime-batch.json`` records each finished one with the
input and settings that made it, so a rerun skips what is complete and redoes what is not
(a missing output, an interrupted one, a changed input or other settings).
"""

from __future__ import annotations

import glob
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import InputNotFoundError, OutputError, StylizeError
from .images import IMAGE_SUFFIXES
from .outputs import write_text_atomic

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".ts"}
MANIFEST = ".realtime-batch.json"


@dataclass
class Item:
    input: Path
    output: Path
    kind: str  # "video" or "image"
    styles: list[Path]
    status: str = "pending"  # done, skipped (complete before), failed
    message: str = ""
    frames: int = 0
    seconds: float = 0.0
    chunks: list[dict] = field(default_factory=list)
    ray_result: tuple[str, str] | None = None  # (status, message) when Ray Data made it already


def expand_inputs(specs: list[str]) -> list[Path]:
    """Files, folders (not recursive) and glob patterns -> the videos and pictures, sorted, once each."""
    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():  # a dangling link is listed too: it is reported, not skipped in silence
            found += sorted(p for p in path.iterdir() if (p.is_file() or p.is_symlink()) and _kind(p))
        elif path.exists():
            found.append(path)
        else:
            matches = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file() and _kind(Path(p)))
            if not matches:
                raise InputNotFoundError(f"no videos or pictures match {spec}")
            found += matches
    unique = list(dict.fromkeys(p.absolute() for p in found))
    if not unique:
        raise InputNotFoundError(f"no videos or pictures in {', '.join(specs)}")
    return unique


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "video" if suffix in VIDEO_SUFFIXES else "image" if suffix in IMAGE_SUFFIXES else None


def plan_batch(inputs: list[Path], styles: list[Path], outdir: Path) -> list[Item]:
    """One item per input x style set: a style folder gives one set per picture in it."""
    from .batch import pictures

    if len(styles) == 1 and styles[0].is_dir():
        sets = [([p], p.stem) for p in pictures(styles[0])]
        if not sets:
            raise InputNotFoundError(f"no pictures in the style folder {styles[0]}")
    else:
        sets = [(styles, "")]
    if not outdir.parent.is_dir():
        raise OutputError(f"output folder {outdir.parent} does not exist; create it or choose another -o")
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"output {outdir} is a file; a batch writes into a folder")
    outdir.mkdir(exist_ok=True)
    items = []
    stems = [p.stem for p in inputs]
    for path in inputs:
        kind = _kind(path) or "video"  # an unknown suffix is tried as a video, and reported if it is not
        base = path.stem if stems.count(path.stem) == 1 else path.name.replace(".", "_")  # a.mp4 and a.mkv
        for style_paths, tag in sets:
            name = base + (f"__{tag}" if tag else "")
            items.append(Item(path, outdir / (name + (".mp4" if kind == "video" else ".png")), kind, style_paths))
    return items


def settings_key(item: Item, settings: dict) -> str:
    st = item.input.stat()
    h = hashlib.sha256(json.dumps({"input": str(item.input), "size": st.st_size, "mtime": st.st_mtime,
                                   "styles": [str(s) for s in item.styles], **settings}, sort_keys=True).encode())
    return h.hexdigest()[:20]


class Manifest:
    """What this output folder already holds, and what made it."""

    def __init__(self, outdir: Path):
        self.path = outdir / MANIFEST
        try:
            self.entries: dict = json.loads(self.path.read_text()) if self.path.exists() else {}
        except (OSError, ValueError):
            self.entries = {}

    def complete(self, item: Item, key: str) -> bool:
        entry = self.entries.get(item.output.name)
        return bool(entry) and entry.get("key") == key and item.output.exists()

    def record(self, item: Item, key: str) -> None:
        self.entries[item.output.name] = {"key": key, "input": str(item.input), "frames": item.frames}
        write_text_atomic(self.path, json.dumps(self.entries, indent=1))


def run_batch(items: list[Item], settings: dict, do_item: Callable[[Item], None],
              log: Callable[[str], None]) -> list[Item]:
    """Run every item not already complete; failures are kept in the item, the rest go on."""
    if not items:
        return items
    manifest = Manifest(items[0].output.parent)
    for n, item in enumerate(items, 1):
        key = settings_key(item, settings) if item.input.exists() else ""
        if key and manifest.complete(item, key):
            item.status, item.message = "skipped", "complete from an earlier run"
            continue
        log(f"[{n}/{len(items)}] {item.input.name} -> {item.output.name}")
        t0 = time.perf_counter()
        try:
            do_item(item)
        except StylizeError as e:
            item.status, item.message = "failed", str(e)
            log(f"  failed: {e}")
            continue
        item.seconds = time.perf_counter() - t0
        item.status = "done"
        manifest.record(item, key)
    return items


def summary_table(items: list[Item]) -> str:
    rows = [("input", "output", "status", "frames", "fps", "note")]
    for it in items:
        fps = f"{it.frames / it.seconds:.1f}" if it.seconds and it.kind == "video" else ""
        rows.append((it.input.name, it.output.name, it.status, str(it.frames) if it.frames else "", fps,
                     it.message[:70]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    counts = {s: sum(it.status == s for it in items) for s in ("done", "skipped", "failed")}
    lines.append(f"{counts['done']} done, {counts['skipped']} already complete, {counts['failed']} failed")
    return "\n".join(lines)


def items_json(items: list[Item]) -> list[dict]:
    return [{**asdict(it), "input": str(it.input), "output": str(it.output), "styles": [str(s) for s in it.styles]}
            for it in items]
