"""Temporal consistency metrics: warping error, ghosting, and Sintel ground-truth warping error.

- Warping error of a frame sequence: for t >= 1, the mean absolute difference (RGB in [0, 1])
  between frame t and frame t-1 warped into t, over valid pixels. Flow is OpenCV DIS
  (medium preset) from input t to input t-1; a pixel is valid where forward and backward
  flow agree (|f + f'|^2 < 0.01 (|f|^2 + |f'|^2) + 0.5, Sundaram et al. 2010) and lands
  inside the frame. The input video's own warping error is the floor: flow errors,
  occlusions and compression keep it above zero.
- Ghosting: mean absolute difference between a smoothed output and the fresh per-frame
  stylisation over pixels that moved more than ``moving_px`` (where smearing shows).
- Sintel: warping error between outputs of frames t and t+1 with the ground-truth flow,
  over pixels neither occluded nor invalid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .temporal import warp


def read_flo(path: str | Path) -> np.ndarray:
    """Middlebury .flo -> (H, W, 2) float32 (u, v)."""
    with open(path, "rb") as f:
        magic = np.fromfile(f, np.float32, 1)
        if magic.size == 0 or abs(float(magic[0]) - 202021.25) > 1e-3:
            raise ValueError(f"{path} is not a .flo file")
        w, h = (int(v) for v in np.fromfile(f, np.int32, 2))
        return np.fromfile(f, np.float32, 2 * w * h).reshape(h, w, 2)


class FlowField:
    """DIS flow from each frame to the previous one, with its validity mask."""

    def __init__(self) -> None:
        import cv2

        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def __call__(self, cur: np.ndarray, prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        a = cv2.cvtColor(cur, cv2.COLOR_RGB2GRAY)
        b = cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY)
        f_cp = self._dis.calc(a, b, None)
        f_pc = self._dis.calc(b, a, None)
        back = warp(f_pc, f_cp)
        h, w = a.shape
        xs = np.arange(w)[None] + f_cp[..., 0]
        ys = np.arange(h)[:, None] + f_cp[..., 1]
        inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
        consistent = np.square(f_cp + back).sum(2) < 0.01 * (np.square(f_cp).sum(2) + np.square(back).sum(2)) + 0.5
        return f_cp, inside & consistent


def pair_error(cur: np.ndarray, prev: np.ndarray, flow_cp: np.ndarray, mask: np.ndarray) -> float:
    diff = np.abs(cur.astype(np.float32) - warp(prev, flow_cp).astype(np.float32)).mean(axis=2) / 255.0
    return float(diff[mask].mean()) if mask.any() else 0.0


def warping_error(frames: list[np.ndarray], flows: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """flows[t-1] maps frame t to frame t-1 (len(flows) == len(frames) - 1)."""
    return float(np.mean([pair_error(frames[t], frames[t - 1], *flows[t - 1]) for t in range(1, len(frames))]))


def ghosting(smoothed: list[np.ndarray], fresh: list[np.ndarray], flows: list[tuple[np.ndarray, np.ndarray]],
             moving_px: float = 3.0) -> float:
    vals = []
    for t in range(1, len(fresh)):
        moving = np.linalg.norm(flows[t - 1][0], axis=2) > moving_px
        if moving.any():
            diff = np.abs(smoothed[t].astype(np.float32) - fresh[t].astype(np.float32)).mean(axis=2) / 255.0
            vals.append(float(diff[moving].mean()))
    return float(np.mean(vals)) if vals else 0.0


def naive_blend(fresh: list[np.ndarray], strength: float = 0.6) -> list[np.ndarray]:
    """The peer's answer: each output = strength x previous output + (1 - strength) x fresh."""
    out: list[np.ndarray] = []
    prev = None
    for f in fresh:
        cur = f.astype(np.float32) if prev is None else strength * prev + (1 - strength) * f.astype(np.float32)
        out.append(np.clip(cur + 0.5, 0, 255).astype(np.uint8))
        prev = cur
    return out


def read_frames(path: Path, max_frames: int | None, width: int | None) -> Iterator[np.ndarray]:
    """Upright uint8 RGB frames of a clip, optionally resized to ``width`` px wide."""
    import cv2

    from .media import MediaInput

    with MediaInput(path) as media:
        for i, frame in enumerate(media.frames()):
            if max_frames is not None and i >= max_frames:
                break
            rgb = frame.rgb
            if width and rgb.shape[1] != width:
                rgb = cv2.resize(rgb, (width, round(rgb.shape[0] * width / rgb.shape[1])), interpolation=cv2.INTER_AREA)
            yield rgb


@dataclass
class ClipResult:
    clip: str
    style: str
    frames: int
    floor: float
    errors: dict[str, float]
    ghosting: dict[str, float]
    ms_per_frame: dict[str, float]

    def excess_ratio(self, method: str) -> float:
        """(method - floor) / (per-frame - floor): 1 is no better than per-frame, 0 is the floor."""
        base = self.errors["per-frame"] - self.floor
        return (self.errors[method] - self.floor) / base if base > 0 else float("nan")


def evaluate_clip(frames: list[np.ndarray], make_stylizer: Callable[[bool], object], style: Path,
                  blend_strength: float = 0.6, clip: str = "", flows=None,
                  keep: bool = False) -> tuple[ClipResult, dict[str, list[np.ndarray]]]:
    """Per-frame, naive blend and our smoothing on one clip with one style."""
    import time

    flows = flows if flows is not None else [FlowField()(frames[t], frames[t - 1]) for t in range(1, len(frames))]
    outputs: dict[str, list[np.ndarray]] = {}
    ms: dict[str, float] = {}
    for name, temporal in (("per-frame", False), ("ours", True)):
        stylizer = make_stylizer(temporal)
        stylizer.set_style(style)
        stylizer.stylize(frames[0])  # warm-up (graph load); state reset below
        stylizer.reset()
        t0 = time.perf_counter()
        outputs[name] = [stylizer.stylize(f) for f in frames]
        ms[name] = 1000 * (time.perf_counter() - t0) / len(frames)
    outputs["blend 0.6"] = naive_blend(outputs["per-frame"], blend_strength)
    result = ClipResult(clip, style.name, len(frames), warping_error(frames, flows),
                        {k: warping_error(v, flows) for k, v in outputs.items()},
                        {k: ghosting(v, outputs["per-frame"], flows) for k, v in outputs.items() if k != "per-frame"},
                        ms)
    return result, (outputs if keep else {})


def sintel_pairs(root: Path) -> list[dict]:
    import csv

    with open(root / "manifest.csv") as f:
        return [row for row in csv.DictReader(f) if row["dataset"] == "sintel"]


def sintel_error(out_t: np.ndarray, out_t1: np.ndarray, flow: np.ndarray, occluded: np.ndarray,
                 invalid: np.ndarray) -> float:
    """Mean |out_t(x) - out_t1(x + flow(x))| over pixels neither occluded nor invalid."""
    h, w = flow.shape[:2]
    xs = np.arange(w)[None] + flow[..., 0]
    ys = np.arange(h)[:, None] + flow[..., 1]
    mask = (~occluded) & (~invalid) & (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    diff = np.abs(out_t.astype(np.float32) - warp(out_t1, flow).astype(np.float32)).mean(axis=2) / 255.0
    return float(diff[mask].mean())
