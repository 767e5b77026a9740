"""realtime-style: restyle video, live or from a file, after any picture.

    import realtime
    s = realtime.Stylizer(model="default", device="auto")
    s.set_style("art.jpg")
    out = s.stylize(frame)            # uint8 (H, W, 3) RGB in, same out
    realtime.stylize_video("in.mp4", "out.mp4", style="art.jpg")

Nothing heavy is imported until it is used.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Stylizer", "stylize_video", "load_model", "__version__"]


def __getattr__(name: str):
    if name == "Stylizer":
        from .stylizer import Stylizer

        return Stylizer
    if name == "load_model":
        from .model import load_model

        return load_model
    if name == "stylize_video":
        from .api import stylize_video

        return stylize_video
    raise AttributeError(f"module 'realtime' has no attribute {name!r}")
