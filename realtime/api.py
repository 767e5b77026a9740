"""High-level helpers for the Python API."""

from __future__ import annotations

import os
from collections.abc import Sequence

from .stylizer import Stylizer
from .temporal import DEFAULT_STRENGTH
from .video import VideoSummary
from .video import stylize_video as _stylize_frames


def stylize_video(input_path: str | os.PathLike, output: str | os.PathLike | None = None, *,
                  style: str | os.PathLike | Sequence[str | os.PathLike], style_weights: Sequence[float] | None = None,
                  model: str = "default", device: str = "auto", alpha: float = 1.0,
                  preserve_color: str | None = None, max_size: int | None = None, overwrite: bool = False,
                  progress: bool = True, temporal: bool = True, temporal_strength: float = DEFAULT_STRENGTH,
                  backend: str = "auto") -> VideoSummary:
    """Stylise a whole video file; returns the summary (frames, size, rate, audio, timing)."""
    stylizer = Stylizer(model=model, device=device, alpha=alpha, preserve_color=preserve_color, max_size=max_size,
                        temporal=temporal, temporal_strength=temporal_strength, backend=backend)
    stylizer.set_style(style, style_weights)
    return _stylize_frames(input_path, output, process=stylizer.stylize, overwrite=overwrite, progress=progress)
