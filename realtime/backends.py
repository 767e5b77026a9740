"""Inference backends: a Protocol plus a name registry.

A backend runs the per-frame graph: image (1, 3, H, W) float RGB in [0, 1] (H, W multiples
of the stride), style statistics (1, C, 1, 1) and alpha -> image (1, 3, H, W). ``auto``
tries the candidates in order of measured speed and, if none starts, says why each failed.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from .errors import BackendUnavailableError
from .model import StyleModel


class Backend(Protocol):
    name: str

    def __call__(self, image: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
                 alpha: float) -> torch.Tensor: ...


class TorchBackend:
    """Eager PyTorch on CPU or CUDA (CUDA: fp16 and channels_last)."""

    def __init__(self, model: StyleModel, device: torch.device, half: bool | None = None):
        if device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError("torch sees no CUDA GPU (CPU-only build or no driver); use --device cpu")
        self.device = device
        self.half = device.type == "cuda" if half is None else half
        self.model = model.to(device).eval()
        if self.half:  # a copy: the caller's fp32 model still encodes styles
            self.model = copy.deepcopy(self.model).half().to(memory_format=torch.channels_last)
        self.name = f"torch-{device.type}" + ("-fp16" if self.half else "")

    @torch.inference_mode()
    def __call__(self, image, style_mean, style_std, alpha):
        dtype = torch.float16 if self.half else torch.float32
        x = image.to(self.device, dtype)
        if self.half:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.model(x, style_mean.to(self.device, dtype), style_std.to(self.device, dtype), alpha=alpha)
        return out.float()


class OrtBackend:
    """ONNX Runtime on the CPU, CUDA or TensorRT execution provider."""

    def __init__(self, model: StyleModel, provider: str = "CPUExecutionProvider", threads: int | None = None,
                 spinning: bool = True, cache: str | os.PathLike | None = None):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendUnavailableError(
                "onnxruntime is not installed: pip install 'realtime-style[onnx]' (or [gpu] on CUDA machines)") from e
        if provider not in ort.get_available_providers():
            raise BackendUnavailableError(f"{provider} is not available in this onnxruntime "
                                          f"(has {', '.join(ort.get_available_providers())})")
        from .export import cached_export

        path = cached_export(model, cache)["stylize"]
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = threads or min(os.cpu_count() or 1, 8)
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=[provider])
        if self.session.get_providers()[0] != provider:
            raise BackendUnavailableError(f"onnxruntime fell back from {provider} to {self.session.get_providers()[0]}")
        self.name = "onnxruntime-" + provider.replace("ExecutionProvider", "").lower()

    def __call__(self, image, style_mean, style_std, alpha):
        feeds = {"image": image.detach().cpu().numpy(), "style_mean": style_mean.detach().cpu().numpy(),
                 "style_std": style_std.detach().cpu().numpy(), "alpha": np.array([alpha], np.float32)}
        return torch.from_numpy(self.session.run(None, feeds)[0])


BACKENDS: dict[str, Callable[..., Backend]] = {
    "torch": lambda model, device, cache=None, **kw: TorchBackend(model, device),
    "onnxruntime": lambda model, device, **kw: OrtBackend(
        model, "CUDAExecutionProvider" if device.type == "cuda" else "CPUExecutionProvider", **kw),
    "tensorrt": lambda model, device, **kw: OrtBackend(model, "TensorrtExecutionProvider", **kw),
}
# fastest first, as measured by `stylize bench` (CPU: ORT ~2x eager torch on the lite model)
AUTO_ORDER = {"cpu": ["onnxruntime", "torch"], "cuda": ["tensorrt", "onnxruntime", "torch"]}


def create_backend(name: str, model: StyleModel, device: torch.device, **kw) -> Backend:
    """A backend by name, or the first that starts for ``auto``."""
    if name != "auto":
        if name not in BACKENDS:
            raise BackendUnavailableError(f"unknown backend '{name}'; known: auto, {', '.join(BACKENDS)}")
        return BACKENDS[name](model, device, **kw)
    reasons = []
    for candidate in AUTO_ORDER.get(device.type, ["torch"]):
        try:
            return BACKENDS[candidate](model, device, **kw)
        except (BackendUnavailableError, ImportError, RuntimeError, OSError) as e:
            reasons.append(f"{candidate}: {e}")
    raise BackendUnavailableError("no backend could start; " + "; ".join(reasons))
