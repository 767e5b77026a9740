"""The Python API: ``Stylizer`` turns uint8 RGB frames into stylised uint8 RGB frames."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .adain import keep_content_colour, match_colour, mix_style_stats
from .errors import BackendUnavailableError, BadSettingError, InputTooLargeError, WeightsError
from .frames import check_rgb8, rgb8_to_tensor, tensor_to_rgb8
from .images import load_image, resize_long_side
from .model import StatsByTap, StyleModel, load_model
from .temporal import DEFAULT_STRENGTH, TemporalConfig, TemporalSmoother

StyleInput = str | os.PathLike | np.ndarray
PRESERVE_MODES = ("luminance", "match")
MAX_UNGUIDED_SIDE = 4096  # larger frames need --max-size (8K at full size needs several GB)
MIN_SMOOTH_SIDE = 16  # px: below this the optical flow has no pyramid to work on


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailableError("--device cuda was asked for but torch sees no CUDA GPU (a CPU-only build of "
                                      "torch, or no driver); use --device cpu or auto")
    return torch.device(device)


class Stylizer:
    """Stylise frames after one style image, or a weighted mix of several.

    >>> s = Stylizer(model="default", device="auto")
    >>> s.set_style("art.jpg")
    >>> out = s.stylize(frame)  # frame: uint8 (H, W, 3) RGB; out: same shape and dtype

    alpha: style strength in [0, 1]. preserve_color: None, "luminance" (keep the content's
    colours, transfer luminance only) or "match" (colour-match the style to the content
    first). max_size: stylise at most this many pixels on the long side and scale the result
    back, so the output always has the input's size. style_size: long side the style image
    is encoded at. backend: "auto" (fastest that starts), "torch", "onnxruntime", "tensorrt".
    temporal: treat successive calls as one video stream and smooth over time (see
    ``realtime.temporal``); temporal_strength in [0, 1) weighs the flow-warped previous output.
    Call ``reset()`` between streams. backend_options go to the backend (ONNX Runtime:
    ``threads``, ``spinning``).
    """

    def __init__(self, model: str | os.PathLike | StyleModel = "default", device: str = "auto",
                 alpha: float = 1.0, preserve_color: str | None = None, max_size: int | None = None,
                 style_size: int = 512, cache_dir: str | os.PathLike | None = None, backend: str = "auto",
                 temporal: bool = False, temporal_strength: float = DEFAULT_STRENGTH, backend_options: dict | None = None):
        from .backends import create_backend

        self.device = pick_device(device)
        self.model = model if isinstance(model, StyleModel) else load_model(model, cache_dir=cache_dir)
        self.model.to(self.device).eval()
        self.backend = create_backend(backend, self.model, self.device, cache_dir=cache_dir, **(backend_options or {}))
        self.alpha = alpha
        if preserve_color not in (None, *PRESERVE_MODES):
            raise ValueError(f"preserve_color must be one of {PRESERVE_MODES} or None, got {preserve_color!r}")
        self.preserve_color = preserve_color
        self.max_size = max_size
        self.style_size = style_size
        self._style_state: tuple[list[np.ndarray], list[float] | None, StatsByTap | None] = ([], None, None)
        self.style_names: list[str] = []
        self.temporal = temporal
        self.smoother = TemporalSmoother(TemporalConfig(strength=temporal_strength))

    @property
    def alpha(self) -> float:
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise BadSettingError(f"alpha must be in [0, 1], got {value}")
        self._alpha = float(value)

    # --- styles ---------------------------------------------------------------------------
    def set_style(self, styles: StyleInput | Sequence[StyleInput], weights: Sequence[float] | None = None) -> None:
        """Load and encode the style image(s) once; every later frame reuses the statistics."""
        if isinstance(styles, (str, os.PathLike, np.ndarray)):
            styles = [styles]
        images, names = [], []
        for s in styles:
            names.append("<array>" if isinstance(s, np.ndarray) else Path(s).name)
            if isinstance(s, np.ndarray):
                check_rgb8(s, "style")
                images.append(resize_long_side(s, self.style_size) if max(s.shape[:2]) > self.style_size else s)
            else:
                images.append(load_image(Path(s), max_side=self.style_size))
        if weights is not None and (len(weights) != len(images) or sum(weights) <= 0
                                    or not all(math.isfinite(w) and w >= 0 for w in weights)):
            raise BadSettingError(f"style weights must be one finite, non-negative number per style and not all 0; "
                                  f"got {list(weights)} for {len(images)} styles")
        weights = list(weights) if weights is not None else None
        stats = None if self.preserve_color == "match" else self._encode_styles(None, images, weights)
        if stats is not None and not all(bool(torch.isfinite(t).all()) for pair in stats.values() for t in pair):
            raise WeightsError(f"the model {self.model.name} gives NaN or infinite statistics for this style; "
                               f"its weights are damaged (check with 'stylize models verify')")
        # one assignment: a stylize() running on another thread sees the old style or the new one
        self._style_state = (images, weights, stats)
        self.style_names = names

    def style_stats(self, first_frame: np.ndarray | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The style statistics every frame uses, as arrays (to hand to other processes).
        With preserve_color="match" they depend on the clip: give its first frame."""
        images, weights, stats = self._style_state
        if stats is None:
            if first_frame is None:
                raise BadSettingError("preserve_color='match' needs the clip's first frame to fix its colours")
            stats = self._encode_styles(rgb8_to_tensor(first_frame, self.device), images, weights)
        return {tap: (m.cpu().numpy(), s.cpu().numpy()) for tap, (m, s) in stats.items()}

    def use_style_stats(self, stats: dict[str, tuple[np.ndarray, np.ndarray]], names: list[str] | None = None) -> None:
        """Stylise with statistics computed elsewhere (``style_stats`` of another Stylizer), so
        every worker of a chunked job paints with exactly the same style."""
        tensors = {tap: (torch.from_numpy(m).to(self.device), torch.from_numpy(s).to(self.device))
                   for tap, (m, s) in stats.items()}
        if set(tensors) != set(self.model.taps):
            raise BadSettingError(f"style statistics for taps {sorted(tensors)}, the model has {list(self.model.taps)}")
        self._style_state = ([], None, tensors)
        self.style_names = list(names or ["<statistics>"])
        if self.preserve_color == "match":  # the colours were fixed when the statistics were made
            self.preserve_color = None

    def describe(self) -> dict:
        """What makes the pictures: model, backend, style(s) and settings (for summaries)."""
        return {"model": self.model.name, "backend": self.backend.name, "device": str(self.device),
                "styles": list(self.style_names), "style_weights": self._weights, "alpha": self.alpha,
                "preserve_color": self.preserve_color, "temporal": self.temporal}

    @property
    def _styles(self) -> list[np.ndarray]:
        return self._style_state[0]

    @property
    def _weights(self) -> list[float] | None:
        return self._style_state[1]

    @property
    def _stats(self) -> StatsByTap | None:
        return self._style_state[2]

    @torch.inference_mode()
    def _encode_styles(self, colour_ref: torch.Tensor | None, images: list[np.ndarray],
                       weights: list[float] | None) -> StatsByTap:
        per_style = []
        for img in images:
            x = rgb8_to_tensor(img, self.device)
            if colour_ref is not None:
                x = match_colour(x.cpu(), colour_ref.cpu()).to(self.device)
            per_style.append(self.model.style_stats(self._pad(x)[0]))
        return {tap: mix_style_stats([s[tap] for s in per_style], weights) for tap in self.model.taps}

    def reset(self) -> None:
        """Forget state tied to a clip: temporal history and the colour reference of 'match'."""
        self.smoother.reset()
        if self.preserve_color == "match" and self._styles:
            self._style_state = (self._styles, self._weights, None)

    # --- frames ---------------------------------------------------------------------------
    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        h, w = x.shape[-2:]
        s = self.model.stride
        ph, pw = (-h) % s, (-w) % s
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return x, (h, w)

    def _pad_frame(self, frame: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) -> padded on the bottom and right to multiples of the stride (as _pad)."""
        import cv2

        h, w = frame.shape[:2]
        s = self.model.stride
        ph, pw = (-h) % s, (-w) % s
        if not (ph or pw):
            return frame
        border = cv2.BORDER_REFLECT_101 if ph < h and pw < w else cv2.BORDER_REPLICATE
        return cv2.copyMakeBorder(frame, 0, ph, 0, pw, border)

    @torch.inference_mode()
    def stylize(self, frame: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) RGB -> stylised uint8 (H, W, 3) RGB of the same size."""
        if not self._styles and self._stats is None:
            raise RuntimeError("call set_style(...) before stylize(...)")
        check_rgb8(frame)
        h, w = frame.shape[:2]
        work = frame
        if self.max_size and max(h, w) > self.max_size:
            work = resize_long_side(frame, self.max_size)
        elif not self.max_size and max(h, w) > MAX_UNGUIDED_SIDE:
            raise InputTooLargeError(
                f"input is {w}x{h}; stylising above {MAX_UNGUIDED_SIDE} px needs several GB and minutes per frame; "
                f"pass --max-size 1920 (output keeps {w}x{h})")
        images, weights, stats = self._style_state
        if stats is None:  # preserve_color="match": recolour the style to this clip once
            stats = self._encode_styles(rgb8_to_tensor(work, self.device), images, weights)
            self._style_state = (images, weights, stats)
        # optical flow needs some room: frames under MIN_SMOOTH_SIDE px are stylised without smoothing
        smooth = self.temporal and min(work.shape[:2]) >= MIN_SMOOTH_SIDE
        if smooth:
            self.smoother.begin(work)
        feats, content_stats = self.backend.encode(self._pad_frame(work))
        if smooth:
            content_stats = self.smoother.smooth_stats(content_stats)
        out = self.backend.decode(feats, content_stats, stats, self.alpha)
        if out.shape[:2] != work.shape[:2]:
            out = np.ascontiguousarray(out[: work.shape[0], : work.shape[1]])
        if self.preserve_color == "luminance":
            y = keep_content_colour(rgb8_to_tensor(out), rgb8_to_tensor(work))
            out = tensor_to_rgb8(y)
        if smooth:
            out = self.smoother.blend(out)
        if out.shape[:2] != (h, w):
            import cv2

            out = cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC)
        return out
