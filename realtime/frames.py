"""The frame contract and the pixel-format conversions between arrays and tensors.

Between threads a frame is a ``Frame``: a ``uint8`` (H, W, 3) **RGB** array plus its
timestamp. Models take float (N, 3, H, W) RGB in [0, 1]. This module converts between the
two, and between RGB and OpenCV's BGR. The few conversions fused into inference for speed
(uint8 HWC straight into a bf16 or ONNX graph, the pixel shuffle folded into the output
copy) live in ``realtime.fuse``; RGB to yuv420p for the encoder lives in
``realtime.media.video_frame``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Frame:
    """A uint8 (H, W, 3) RGB image with its time in seconds and its index.

    ``time`` is on the source's clock: media time for a file, ``time.monotonic()`` at capture
    for a camera. ``pts`` is the timestamp in the file stream's time base (None for cameras),
    which a file job writes back unchanged.
    """

    rgb: np.ndarray
    time: float
    index: int = 0
    pts: int | None = None


def check_rgb8(frame: np.ndarray, name: str = "frame") -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"{name} must be a uint8 (H, W, 3) RGB array, got {got}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"{name} has zero size {frame.shape[:2]}")


def rgb8_to_tensor(frame: np.ndarray, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (H, W, 3) RGB -> float (1, 3, H, W) RGB in [0, 1] on device."""
    check_rgb8(frame)
    if not frame.flags.writeable or not frame.flags.c_contiguous:  # torch wants writable, packed memory
        frame = np.array(frame, copy=True, order="C")
    t = torch.from_numpy(frame).to(device)
    return t.permute(2, 0, 1).unsqueeze(0).to(dtype).div_(255.0)


def tensor_to_rgb8(t: torch.Tensor) -> np.ndarray:
    """float (1, 3, H, W) RGB, nominally [0, 1] -> uint8 (H, W, 3), clipped and rounded."""
    if t.dim() != 4 or t.shape[0] != 1 or t.shape[1] != 3:
        raise ValueError(f"expected (1, 3, H, W), got {tuple(t.shape)}")
    out = t[0].float().clamp(0.0, 1.0).mul(255.0).add_(0.5).to(torch.uint8)
    return out.permute(1, 2, 0).contiguous().cpu().numpy()


def bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    """OpenCV BGR uint8 -> RGB uint8 (a copy)."""
    return np.ascontiguousarray(frame[..., ::-1])


rgb_to_bgr = bgr_to_rgb  # the same channel flip, named for the direction it is used in
