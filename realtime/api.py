"""High-level helpers for the Python API."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .jobs import VideoJob, VideoSummary
from .stylizer import Stylizer
from .temporal import DEFAULT_STRENGTH


def stylize_video(input_path: str | os.PathLike, output: str | os.PathLike | None = None, *,
                  style: str | os.PathLike | Sequence[str | os.PathLike], style_weights: Sequence[float] | None = None,
                  model: str = "default", device: str = "auto", alpha: float = 1.0,
                  preserve_color: str | None = None, max_size: int | None = None, overwrite: bool = False,
                  progress: bool = True, temporal: bool = True, temporal_strength: float = DEFAULT_STRENGTH,
                  backend: str = "auto") -> VideoSummary:
    """Stylise a whole video file; returns the summary (frames, size, rate, audio, timing).

    The input and output are checked before the model loads; the output appears under its
    name only once it is finalised.
    """
    styles = [style] if isinstance(style, (str, os.PathLike)) else list(style)
    with VideoJob(input_path, output, overwrite=overwrite, progress=progress,
                  inputs=tuple(Path(s) for s in styles if isinstance(s, (str, os.PathLike)))) as job:
        stylizer = Stylizer(model=model, device=device, alpha=alpha, preserve_color=preserve_color,
                            max_size=max_size, temporal=temporal, temporal_strength=temporal_strength,
                            backend=backend)
        stylizer.set_style(styles, style_weights)
        job.settings = stylizer.describe()
        return job.run(stylizer.stylize)
