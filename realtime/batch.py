"""``stylize image``: one picture, or every content x style pair of two folders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputNotFoundError, OutputError, StylizeError
from .images import IMAGE_SUFFIXES, load_image, save_image
from .stylizer import Stylizer


@dataclass
class BatchReport:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _pictures(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def stylize_images(content: Path, styles: Sequence[Path], output: Path, stylizer: Stylizer,
                   style_weights: Sequence[float] | None = None, overwrite: bool = False) -> BatchReport:
    """Style files are mixed into one style; a style folder gives one output per style.

    A single content file with style files writes ``output`` itself (when it has an image
    suffix); otherwise ``output`` is a folder of ``<content-stem>__<style-stem>.png``.
    A file that fails is reported in the result and skipped; the rest go on.
    """
    for path in [content, *styles]:
        if not path.exists():
            raise InputNotFoundError(f"not found: {path}")
    style_dirs = [s for s in styles if s.is_dir()]
    if style_dirs and len(styles) > 1:
        raise StylizeError("pass one style folder, or one or more style files, not both")
    contents = _pictures(content) if content.is_dir() else [content]
    if style_dirs:
        style_sets = [([s], s.stem) for s in _pictures(style_dirs[0])]
    else:
        style_sets = [(list(styles), "+".join(s.stem for s in styles))]
    single = len(contents) == 1 and len(style_sets) == 1 and output.suffix.lower() in IMAGE_SUFFIXES
    if single:
        targets_dir = output.parent if str(output.parent) else Path(".")
    else:
        output.mkdir(parents=True, exist_ok=True)
        targets_dir = output
    if not targets_dir.is_dir():
        raise OutputError(f"output folder {targets_dir} does not exist; create it first")
    report = BatchReport()
    for style_paths, style_name in style_sets:
        try:
            stylizer.set_style(style_paths, style_weights if not style_dirs else None)
        except StylizeError as e:
            report.failed.append((style_name, str(e)))
            continue
        for c in contents:
            target = output if single else targets_dir / f"{c.stem}__{style_name}.png"
            if target.exists() and not overwrite:
                report.failed.append((c.name, f"{target} exists; pass --overwrite"))
                continue
            try:
                stylizer.reset()
                save_image(target, stylizer.stylize(load_image(c)))
            except StylizeError as e:
                report.failed.append((c.name, str(e)))
                continue
            report.written.append(target)
    return report
