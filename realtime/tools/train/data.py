"""Training images held in memory, and seeded random crops from them."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...images import IMAGE_SUFFIXES, load_image

log = logging.getLogger(__name__)


class ImageBank:
    """Every image of a folder, resized so its short side is ``short_side``, as uint8 tensors.

    Two cores cannot afford JPEG decoding per step; ~1200 images at 288 px take ~0.5 GB.
    """

    def __init__(self, folder: str | Path, short_side: int = 288, limit: int | None = None):
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if limit:
            paths = paths[:limit]
        if not paths:
            raise FileNotFoundError(f"no images in {folder}")
        self.images: list[torch.Tensor] = []
        for p in paths:
            rgb = load_image(p, max_side=None)
            t = torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous()
            h, w = t.shape[1:]
            scale = short_side / min(h, w)
            size = (max(short_side, round(h * scale)), max(short_side, round(w * scale)))
            t = F.interpolate(t[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)
            self.images.append(t[0].clamp(0, 255).to(torch.uint8))
        log.info("loaded %d images from %s", len(self.images), folder)

    def __len__(self) -> int:
        return len(self.images)

    def crops(self, n: int, size: int, gen: torch.Generator, max_zoom_out: float = 2.0) -> torch.Tensor:
        """n random crops, (n, 3, size, size) float in [0, 1].

        Each crop takes a window between ``size`` and ``size * max_zoom_out`` pixels wide,
        scaled to ``size``, so the model sees strokes and faces at several scales.
        """
        out = torch.empty(n, 3, size, size)
        for k in range(n):
            img = self.images[int(torch.randint(len(self.images), (1,), generator=gen))]
            h, w = img.shape[1:]
            hi = min(h, w, int(size * max_zoom_out))
            win = int(torch.randint(size, hi + 1, (1,), generator=gen)) if hi > size else min(h, w, size)
            y = int(torch.randint(h - win + 1, (1,), generator=gen))
            x = int(torch.randint(w - win + 1, (1,), generator=gen))
            patch = img[:, y:y + win, x:x + win].float()[None] / 255.0
            if win != size:
                patch = F.interpolate(patch, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            if bool(torch.randint(2, (1,), generator=gen)):
                patch = patch.flip(-1)
            out[k] = patch[0]
        return out.clamp_(0.0, 1.0)


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


class StyleImages:
    """Whole style images as the product sees them: long side at most ``max_side`` (the
    Stylizer's style size), padded by reflection to multiples of ``stride``, uint8.

    Training on whole styles (not crops) matches inference and the evaluation, whose style
    target is the statistics of the whole image at 512 px, and lets the teacher's statistics
    of every style be computed once instead of every step.
    """

    def __init__(self, folder: str | Path, max_side: int = 512, stride: int = 16):
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise FileNotFoundError(f"no images in {folder}")
        self.names = [p.name for p in paths]
        self.images: list[torch.Tensor] = []
        for p in paths:
            t = torch.from_numpy(load_image(p, max_side=max_side).copy()).permute(2, 0, 1).contiguous()[None]
            h, w = t.shape[-2:]
            ph, pw = (-h) % stride, (-w) % stride
            if ph or pw:
                t = F.pad(t.float(), (0, pw, 0, ph), mode="reflect").round().to(torch.uint8)
            self.images.append(t)
        log.info("loaded %d whole style images from %s", len(self.images), folder)

    def __len__(self) -> int:
        return len(self.images)

    def image(self, i: int) -> torch.Tensor:
        """(1, 3, h, w) float in [0, 1]."""
        return self.images[i].float() / 255.0
