"""Temporal smoothing for video: stable statistics and flow-guided blending without ghosts.

Per frame, in this order (``Stylizer`` drives it):

1. ``begin(frame)``: a small greyscale copy of the input; a scene cut (a large change of a
   32-px thumbnail, where motion is blurred away) resets all state.
2. ``smooth_stats(mean, std)``: an exponential moving average of the content feature
   statistics AdaIN normalises with, which removes global flicker at almost no cost.
3. ``blend(fresh)``: optical flow from the current to the previous input (OpenCV DIS at
   ``flow_width`` px), the previous output warped into the current frame and blended with the
   fresh stylisation. The per-pixel weight is ``strength`` times a confidence from
   forward-backward flow consistency and photometric error, so occluded, disoccluded and
   badly tracked pixels take the fresh result instead of a ghost. Before blending, the warped
   output is clamped, per channel, to the range of the fresh stylisation in the pixel's 3x3
   neighbourhood, widened by half its width on each side (a loosened form of the neighbourhood
   clamp of temporal anti-aliasing). Flicker stays inside that range and is still averaged away;
   what the flow dragged in from elsewhere lies outside and is cut. On a flat wall beside a
   waving hand, flow that passed both checks had smeared the hand's colours into thin dark
   streaks that the per-frame output never had; a flat region has a narrow range, so there the
   clamp is tight, and textured regions keep room for the texture to settle.
4. Texture contrast: averaging with a resampled past washes texture out, which shows as a
   weaker style (the style distance rose ~20% with bilinear warps and plain blending). An
   unsharp mask, one smoothed gain per frame, brings the blend's high-pass energy back to the
   fresh frame's. With it a bilinear warp is enough (bicubic keeps 2 points more style, below).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch


GAIN_EVERY = 4  # frames between measurements of the texture contrast that the unsharp mask restores
DEFAULT_STRENGTH = 0.9  # the one default of --temporal-strength, Stylizer and stylize_video


@dataclass(frozen=True)
class TemporalConfig:
    strength: float = DEFAULT_STRENGTH  # weight of the warped previous output where the flow is trusted
    stats_momentum: float = 0.8  # share of the running statistics kept each frame
    # flow is computed at this width, then scaled up, with OpenCV DIS (``flow_preset``) refined down to pyramid level
    # ``flow_finest_scale`` (0: the flow's full width) with ``flow_descent_iterations`` per patch. Screened on 4 clips x
    # 3 styles x 40 frames (lite), excess flicker as a ratio of the mean errors / rows <= 0.4 / ms per 640x480 step:
    # 256 px, "ultrafast" as is (finest level 2, i.e. a 64-px flow; shipped before) 0.42 / 5 of 12 / 5.5; 256 px
    # level 1 0.29 / 9 / 7.9; 320 px "fast" 0.36 / 5; 128 px level 0 0.28 / 10 / 5.7, with 6 descent iterations
    # instead of 12 the same 0.28 / 10 at 0.25 ms less. The fast-motion rows (hand wave, kids) went from 0.53-0.61 to
    # 0.28-0.42: a coarse flow misses fast hands and limbs, and the confidence then hands them to the fresh frame.
    flow_width: int = 128
    flow_preset: str = "ultrafast"  # OpenCV DIS preset: ultrafast, fast or medium
    flow_finest_scale: int = 0
    flow_descent_iterations: int = 6
    fb_sigma: float = 0.75  # forward-backward error (px at flow_width) where confidence is e^-1
    photo_sigma: float = 0.06  # photometric error (grey levels in [0, 1]) where confidence is e^-1
    cut_threshold: float = 0.12  # mean absolute change of 32-px thumbnails that counts as a scene cut
    # resampling of the previous output. Full temporal evaluation (lite after stage 3, 4 clips x 3 styles,
    # 40 frames): bilinear excess 0.16 (worst 0.61), ghosting 0.0358, style +10.0%; bicubic 0.21 (0.66),
    # 0.0363, +7.9%. Bicubic costs 1.5 ms more a 640x480 frame: smoothing added 28% against bilinear's 19%
    # (interleaved A/B, ORT fp32), over the 25% budget. The style drift sits on the pans (bear +17-28%).
    interpolation: str = "linear"
    detail_restore: float = 1.0  # share of the texture contrast lost to blending that an unsharp mask restores
    backward_check: bool = True  # also compute the backward flow for the forward-backward check (one DIS more)
    # side of the neighbourhood of the fresh output whose per-channel min..max bounds the warped output (0: off),
    # and how far (a share of that range) the bounds are widened on each side. 30 frames x 3 styles, excess
    # flicker / ghosting / style drift: hand wave + kids, no clamp 0.17 / 0.0313 / +2.8%, tight 3x3 0.20 / 0.0218
    # / +1.4%, slack 0.5 0.19 / 0.0265 / +2.0%; the two pans 0.21 / 0.0404 / +17.7%, 0.38 / 0.0240 / +10.6%,
    # 0.28 / 0.0305 / +13.0%. The tight clamp costs the pans' flicker (texture that crawls leaves the range);
    # slack 1.0 left faint streaks on the wall.
    clamp: int = 3
    clamp_slack: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength < 1.0:
            raise ValueError(f"temporal strength must be in [0, 1), got {self.strength}")
        if self.flow_preset not in ("ultrafast", "fast", "medium"):
            raise ValueError(f"flow_preset must be ultrafast, fast or medium, got {self.flow_preset!r}")
        if self.interpolation not in ("linear", "cubic"):
            raise ValueError(f"interpolation must be linear or cubic, got {self.interpolation!r}")
        if self.flow_finest_scale < 0 or self.flow_descent_iterations < 1:
            raise ValueError("flow_finest_scale must be >= 0 and flow_descent_iterations >= 1, got "
                             f"{self.flow_finest_scale} and {self.flow_descent_iterations}")
        if not 0.0 <= self.detail_restore <= 1.0:
            raise ValueError(f"detail_restore must be in [0, 1], got {self.detail_restore}")
        if self.clamp < 0 or (self.clamp and self.clamp % 2 == 0):
            raise ValueError(f"clamp must be 0 (off) or an odd window side, got {self.clamp}")
        if self.clamp_slack < 0:
            raise ValueError(f"clamp_slack must be >= 0, got {self.clamp_slack}")


def grey_small(frame: np.ndarray, width: int) -> np.ndarray:
    """uint8 RGB (or already grey) -> uint8 greyscale at ``width`` px wide (never upscaled)."""
    import cv2

    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    if w > width:
        grey = cv2.resize(grey, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return grey


@lru_cache(maxsize=8)
def _pixel_grid(h: int, w: int) -> np.ndarray:
    """(H, W, 2) float32 of each pixel's own (x, y): flow + grid is a remap map."""
    grid = np.empty((h, w, 2), np.float32)
    grid[..., 0] = np.arange(w, dtype=np.float32)[None]
    grid[..., 1] = np.arange(h, dtype=np.float32)[:, None]
    grid.flags.writeable = False
    return grid


def warp(image: np.ndarray, flow: np.ndarray, interpolation: int | None = None) -> np.ndarray:
    """Sample image at x + flow(x) (bilinear unless told, border replicated); flow is (H, W, 2) in px."""
    import cv2

    h, w = flow.shape[:2]
    where = cv2.add(np.ascontiguousarray(flow, dtype=np.float32), _pixel_grid(h, w))
    return cv2.remap(image, where, None, cv2.INTER_LINEAR if interpolation is None else interpolation,
                     borderMode=cv2.BORDER_REPLICATE)


def fb_confidence(grey_cur: np.ndarray, grey_prev: np.ndarray, flow_cp: np.ndarray, flow_pc: np.ndarray | None,
                  fb_sigma: float, photo_sigma: float) -> np.ndarray:
    """Confidence in [0, 1] that pixel x of the current frame is pixel x + flow_cp(x) before.

    Without flow_pc (the backward flow) only the photometric error and the frame border count.
    """
    import cv2

    h, w = flow_cp.shape[:2]
    where = cv2.add(flow_cp, _pixel_grid(h, w))
    prev_here = cv2.remap(grey_prev, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    diff = cv2.absdiff(grey_cur, prev_here)
    energy = cv2.multiply(diff, diff, dtype=cv2.CV_32F, scale=1.0 / (255.0 * photo_sigma) ** 2)
    if flow_pc is not None:
        back = cv2.remap(flow_pc, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        loop = cv2.add(flow_cp, back)  # ~0 where following the flow there and back returns home
        weights = np.full((1, 2), 1.0 / fb_sigma**2, np.float32)
        energy = cv2.add(energy, cv2.transform(cv2.multiply(loop, loop), weights))
    conf = cv2.exp(cv2.multiply(energy, -1.0))
    conf[cv2.inRange(where, (0.0, 0.0), (w - 1.0, h - 1.0)) == 0] = 0.0  # sources outside the frame
    return conf


def full_res_map(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A remap map at size (w, h) from a flow computed at lower resolution.

    The map (x + flow(x), in full-resolution pixels) is formed at the flow's resolution and
    resized once: bilinear resizing reproduces the linear pixel grid exactly (but for half a
    pixel at the outermost rows and columns), and it saves scaling and offsetting a full-size
    flow (1.6 of 4.6 ms per 640x480 warp on two cores).
    """
    import cv2

    hs, ws = flow.shape[:2]
    w, h = size
    scale = np.array([w / ws, h / hs], np.float32)
    where = cv2.add(flow, _pixel_grid(hs, ws))
    where += 0.5  # pixel centres: x_full + 0.5 = (x_small + 0.5) * scale
    where *= scale
    where -= 0.5
    return cv2.resize(where, (w, h), interpolation=cv2.INTER_LINEAR)


def clamp_to_neighbourhood(image: np.ndarray, reference: np.ndarray, size: int, slack: float = 0.0) -> np.ndarray:
    """Clamp uint8 image in place, per channel, to the min..max of reference over each pixel's
    size x size window, widened by slack times that range on each side."""
    import cv2

    kernel = np.ones((size, size), np.uint8)
    lo, hi = cv2.erode(reference, kernel), cv2.dilate(reference, kernel)
    if slack:  # lo - slack (hi - lo) and hi + slack (hi - lo), saturated: two passes instead of four
        lo, hi = cv2.addWeighted(lo, 1.0 + slack, hi, -slack, 0.0), cv2.addWeighted(hi, 1.0 + slack, lo, -slack, 0.0)
    cv2.max(image, lo, dst=image)
    cv2.min(image, hi, dst=image)
    return image


def detail_energy(image: np.ndarray, radius: int = 2, central: float = 1.0) -> float:
    """Mean absolute high-pass (image minus its box blur) of the greyscale: texture contrast.

    central < 1 measures only that share of the rows, around the middle (a cheaper estimate).
    """
    import cv2

    h = image.shape[0]
    skip = int(h * (1.0 - central) / 2)
    grey = cv2.cvtColor(image[skip: h - skip], cv2.COLOR_RGB2GRAY)
    k = 2 * radius + 1
    return float(cv2.absdiff(grey, cv2.blur(grey, (k, k))).mean())


class TemporalSmoother:
    """State carried between the frames of one stream; ``reset()`` starts a new one."""

    def __init__(self, config: TemporalConfig | None = None):
        import cv2

        self.config = config or TemporalConfig()
        preset = getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{self.config.flow_preset.upper()}")
        self._dis = cv2.DISOpticalFlow_create(preset)
        self._dis.setFinestScale(self.config.flow_finest_scale)
        self._dis.setGradientDescentIterations(self.config.flow_descent_iterations)
        self.cuts = 0
        self.reset()

    def reset(self) -> None:
        self._grey_prev: np.ndarray | None = None
        self._grey_cur: np.ndarray | None = None
        self._thumb: np.ndarray | None = None
        self._out_prev: np.ndarray | None = None
        self._stats: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
        self.last_confidence: np.ndarray | None = None
        self._gain: float | None = None
        self._frames = 0

    def begin(self, frame: np.ndarray) -> bool:
        """Register the next input frame; True (and state reset) at a scene cut."""
        grey = grey_small(frame, self.config.flow_width)
        thumb = grey_small(grey, 32).astype(np.float32) / 255.0  # blurs motion away, keeps the scene
        cut = False
        if self._grey_cur is not None:
            if self._grey_cur.shape != grey.shape or self._thumb.shape != thumb.shape:
                cut = True
            else:
                cut = float(np.abs(thumb - self._thumb).mean()) > self.config.cut_threshold
            if cut:
                self.reset()
                self.cuts += 1
        self._grey_prev, self._grey_cur, self._thumb = self._grey_cur, grey, thumb
        return cut

    def smooth_stats(self, stats: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict:
        """{tap: (mean, std)} -> the running averages, per tap."""
        m = self.config.stats_momentum
        old = self._stats
        if old is None or old.keys() != stats.keys() or any(old[k][0].shape != v[0].shape for k, v in stats.items()):
            self._stats = dict(stats)
        else:
            self._stats = {k: (m * old[k][0] + (1 - m) * mean, m * old[k][1] + (1 - m) * std)
                           for k, (mean, std) in stats.items()}
        return self._stats

    def blend(self, fresh: np.ndarray) -> np.ndarray:
        """fresh: uint8 RGB stylisation of the frame given to begin(); returns the smoothed one."""
        import cv2

        cfg = self.config
        if self._grey_prev is None or self._out_prev is None or self._out_prev.shape != fresh.shape \
                or cfg.strength == 0.0:
            self._out_prev = fresh
            return fresh
        cur, prev = self._grey_cur, self._grey_prev
        flow_cp = self._dis.calc(cur, prev, None)
        flow_pc = self._dis.calc(prev, cur, None) if cfg.backward_check else None
        conf = fb_confidence(cur, prev, flow_cp, flow_pc, cfg.fb_sigma, cfg.photo_sigma)
        self.last_confidence = conf
        h, w = fresh.shape[:2]
        interp = cv2.INTER_CUBIC if cfg.interpolation == "cubic" else cv2.INTER_LINEAR
        warped = cv2.remap(self._out_prev, full_res_map(flow_cp, (w, h)), None, interp,
                           borderMode=cv2.BORDER_REPLICATE)
        if cfg.clamp:
            clamp_to_neighbourhood(warped, fresh, cfg.clamp, cfg.clamp_slack)
        weight = cv2.resize(conf * np.float32(cfg.strength), (w, h), interpolation=cv2.INTER_LINEAR)
        result = cv2.blendLinear(warped, fresh, weight, cv2.subtract(1.0, weight))
        if cfg.detail_restore:
            result = self._restore_detail(result, fresh)
        self._out_prev = result
        return result

    def _restore_detail(self, result: np.ndarray, fresh: np.ndarray) -> np.ndarray:
        """Blending and resampling soften texture; an unsharp mask brings the blend's high-pass
        energy back to the fresh frame's (one gain, measured every GAIN_EVERY frames and smoothed so it cannot
        flicker)."""
        import cv2

        self._frames += 1
        if self._gain is None or self._frames % GAIN_EVERY == 0:  # a slow, global quantity: measured now and then
            target, have = detail_energy(fresh, central=0.5), detail_energy(result, central=0.5)  # a ratio: half do
            gain = 1.0 + self.config.detail_restore * float(np.clip(target / max(have, 1e-3) - 1.0, 0.0, 1.0))
            self._gain = gain if self._gain is None else 0.5 * self._gain + 0.5 * gain
        if self._gain <= 1.01:
            return result
        # a one-pass 3x3 unsharp filter (box or binomial blur) was tried against this: the same time per frame
        # within noise in an interleaved run with the network, and it restores less of the texture (style +8.3%
        # against +6.9% on the temporal evaluation, excess flicker 0.30 against 0.28)
        blurred = cv2.GaussianBlur(result, (0, 0), 1.0)
        return cv2.addWeighted(result, self._gain, blurred, 1.0 - self._gain, 0.0)
