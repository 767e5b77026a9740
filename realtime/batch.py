"""``stylize image``: one picture, or every content x style pair of two folders.

``plan_images`` checks everything a user can get wrong before any model loads (missing
inputs, an output that is an input, existing outputs without ``overwrite``); ``stylize_images``
then writes each picture under a temporary name and renames it into place, so a failed or
interrupted run never leaves half a picture, and one bad file does not stop the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputNotFoundError, OutputError, StylizeError
from .images import IMAGE_SUFFIXES, load_image
from .outputs import OutputFile, same_file, save_picture
from .stylizer import Stylizer


@dataclass
class ImagePlan:
    """(style set, name) pairs and, per content picture, its output for each style set."""

    style_sets: list[tuple[list[Path], str]]
    contents: list[Path]
    targets: dict[tuple[int, Path], Path]
    inputs: tuple[Path, ...]
    overwrite: bool
    mixed: bool  # the styles are one weighted mix (files), not a gallery (a folder)


@dataclass
class BatchReport:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def pictures(folder: Path) -> list[Path]:
    """The pictures in a folder (not its subfolders), sorted."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def default_image_output(content: Path) -> Path:
    return content.with_name(f"{content.stem}_stylized" + ("" if content.is_dir() else ".png"))


def plan_images(content: Path, styles: Sequence[Path], output: Path, overwrite: bool = False) -> ImagePlan:
    """Style files are mixed into one style; a style folder gives one output per style.

    A single content file with style files writes ``output`` itself (when it has an image
    suffix); otherwise ``output`` is a folder of ``<content-stem>__<style-stem>.png`` (created
    if its parent exists).
    """
    for path in [content, *styles]:
        if not path.exists():
            raise InputNotFoundError(f"not found: {path}")
    style_dirs = [s for s in styles if s.is_dir()]
    if style_dirs and len(styles) > 1:
        raise StylizeError("pass one style folder, or one or more style files, not both")
    contents = pictures(content) if content.is_dir() else [content]
    if not contents:
        raise InputNotFoundError(f"no pictures in {content} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    if style_dirs:
        style_sets = [([s], s.stem) for s in pictures(style_dirs[0])]
        if not style_sets:
            raise InputNotFoundError(f"no pictures in the style folder {style_dirs[0]}")
    else:
        style_sets = [(list(styles), "+".join(s.stem for s in styles))]
    inputs = (*contents, *(p for paths, _ in style_sets for p in paths))
    single = len(contents) == 1 and len(style_sets) == 1 and output.suffix.lower() in IMAGE_SUFFIXES
    if not single:
        if output.exists() and not output.is_dir():
            raise OutputError(f"output {output} is a file; a batch writes into a folder")
        if not output.parent.is_dir():
            raise OutputError(f"output folder {output.parent} does not exist; create it or choose another -o")
        if any(same_file(output, p) for p in inputs):
            raise OutputError(f"output {output} is an input; choose another -o")
        output.mkdir(exist_ok=True)
    targets = {(k, c): output if single else output / f"{c.stem}__{name}.png"
               for k, (_, name) in enumerate(style_sets) for c in contents}
    for target in targets.values():
        if any(same_file(target, p) for p in inputs):
            raise OutputError(f"output {target} is an input; choose another -o")
    if single:
        OutputFile(output, inputs=inputs, overwrite=overwrite)  # the checks only: folder, input, existing
    return ImagePlan(style_sets, contents, targets, inputs, overwrite, not style_dirs)


def stylize_images(plan: ImagePlan, stylizer: Stylizer, style_weights: Sequence[float] | None = None) -> BatchReport:
    """Write every planned picture; in a batch a file that fails is reported and skipped and the
    rest go on, while a single picture's failure is raised (the one error there is)."""
    report = BatchReport()
    single = len(plan.targets) == 1
    for k, (style_paths, style_name) in enumerate(plan.style_sets):
        try:
            stylizer.set_style(style_paths, style_weights if plan.mixed else None)
        except StylizeError as e:
            if single:
                raise
            report.failed.append((style_name, str(e)))
            continue
        for c in plan.contents:
            target = plan.targets[(k, c)]
            try:
                stylizer.reset()
                save_picture(target, stylizer.stylize(load_image(c)), plan.inputs, plan.overwrite)
            except StylizeError as e:
                if single:
                    raise
                report.failed.append((c.name, str(e)))
                continue
            report.written.append(target)
    return report
