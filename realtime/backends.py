"""Inference backends: a Protocol plus a name registry.

A backend runs two steps per frame. ``encode``: a uint8 (H, W, 3) RGB frame (H, W multiples
of the stride) -> the features of each tap (1, C, h, w) and their channel statistics ((1, C, 1, 1)
mean and std). ``decode``: features, the content's and the style's statistics and alpha ->
the stylised uint8 (H, W, 3) RGB frame, with AdaIN inside. The caller may smooth the content
statistics over time between the two. ``auto`` tries the candidates in order of measured
speed and, if none starts, says why each failed.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .adain import adain_affine, calc_mean_std
from .fuse import drop_pixel_shuffle, fold_input_scale, fold_skip_adain, unshuffle_hwc
from .errors import BackendUnavailableError
from .export import cached_export, decoder_inputs, encoder_outputs
from .frames import check_rgb8, rgb8_to_tensor, tensor_to_rgb8
from .model import Feats, StatsByTap, StyleModel


class Backend(Protocol):
    name: str

    def encode(self, frame: np.ndarray) -> tuple[Feats, StatsByTap]: ...

    def decode(self, feats: Feats, content: StatsByTap, style: StatsByTap, alpha: float) -> np.ndarray: ...


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
    def encode(self, frame: np.ndarray) -> tuple[Feats, StatsByTap]:
        x = rgb8_to_tensor(frame, self.device, torch.float16 if self.half else torch.float32)
        if self.half:
            x = x.contiguous(memory_format=torch.channels_last)
        feats = {k: v.float() for k, v in self.model.encode(x).items()}
        return feats, {k: calc_mean_std(v) for k, v in feats.items()}

    @torch.inference_mode()
    def decode(self, feats: Feats, content: StatsByTap, style: StatsByTap, alpha: float) -> np.ndarray:
        dtype = torch.float16 if self.half else torch.float32

        def cast(pair):
            return tuple(t.to(self.device, dtype) for t in pair)

        out = self.model.decode({k: v.to(self.device, dtype) for k, v in feats.items()},
                                {k: cast(v) for k, v in content.items()}, {k: cast(v) for k, v in style.items()},
                                alpha)
        return tensor_to_rgb8(out)


def cpu_has_native_bf16() -> bool:
    """True where the CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX), so bf16 convolutions
    run at about twice the fp32 rate; elsewhere oneDNN emulates bf16 and it is slower than fp32."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, so looked up with a default
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


# torch's "reflect" mirrors without repeating the edge pixel, as OpenCV's BORDER_REFLECT_101 does
_CV_BORDERS = {"reflect": "BORDER_REFLECT_101", "replicate": "BORDER_REPLICATE"}


class TorchBf16Backend:
    """Eager PyTorch on a CPU with native bfloat16: bf16 weights and activations (channels_last),
    fp32 statistics and AdaIN coefficients.

    Per frame it spends its time in oneDNN's bf16 convolutions and does little else: the
    1/255 input scale lives in the first convolution's weights, AdaIN on a skip tap is folded
    into that skip's 1x1 projection (a 1x1 convolution of an affine map is a 1x1 convolution),
    and a final PixelShuffle becomes a reordering of the last convolution's output channels, so
    the uint8 frame comes out of one strided copy.
    """

    def __init__(self, model: StyleModel, device: torch.device):
        if device.type != "cpu":
            raise BackendUnavailableError("torch-bf16 is for CPUs; on a GPU use torch (fp16) or onnxruntime")
        if not cpu_has_native_bf16():
            raise BackendUnavailableError("this CPU has no native bfloat16 (AVX512-BF16 or AMX), where bf16 "
                                          "runs slower than fp32; use onnxruntime or torch")
        m = copy.deepcopy(model).cpu().eval()  # a copy: the caller's fp32 model still encodes styles
        for mod in m.modules():
            if isinstance(mod, nn.ReLU):
                mod.inplace = True
        self._scaled_input = fold_input_scale(m.encoder)  # 0..255 is exact in bf16
        first = m.encoder.layers[0]
        self._frame_border = None
        if self._scaled_input and first.padding_mode in _CV_BORDERS:
            # pad the uint8 frame (3 channels, one OpenCV call) instead of the bf16 tensor
            self._frame_border = (first.padding[0], _CV_BORDERS[first.padding_mode])
            first.padding, first.padding_mode = (0, 0), "zeros"
        self.shuffle = drop_pixel_shuffle(m.decoder)
        # fp32 masters of the skip projections: the folded weights are made per frame
        self.skips = {tap: (conv.weight.detach().clone(), conv.bias.detach().clone())
                      for tap, conv in m.decoder.skips.items()}
        self.model = m.to(torch.bfloat16).to(memory_format=torch.channels_last)
        self.decoder = m.decoder
        self.deepest = m.decoder.deepest
        self.taps = m.taps
        self.name = "torch-cpu-bf16"

    @torch.inference_mode()
    def encode(self, frame: np.ndarray) -> tuple[Feats, StatsByTap]:
        check_rgb8(frame)
        if self._frame_border is not None:
            import cv2

            p, border = self._frame_border
            frame = cv2.copyMakeBorder(frame, p, p, p, p, getattr(cv2, border))
        if not (frame.flags.writeable and frame.flags.c_contiguous):  # torch warns on read-only memory
            frame = np.array(frame, order="C")
        x = torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0).to(torch.bfloat16)
        if not self._scaled_input:
            x = x.mul_(1.0 / 255.0)
        feats = self.model.encode(x)
        return feats, {k: calc_mean_std(v.float()) for k, v in feats.items()}

    @torch.inference_mode()
    def decode(self, feats: Feats, content: StatsByTap, style: StatsByTap, alpha: float) -> np.ndarray:
        scale, shift = adain_affine(content[self.deepest], style[self.deepest], alpha)
        x = torch.addcmul(shift.to(torch.bfloat16), feats[self.deepest], scale.to(torch.bfloat16))

        def skip(tap: str) -> torch.Tensor:
            w, b = fold_skip_adain(*self.skips[tap], *adain_affine(content[tap], style[tap], alpha))
            return F.conv2d(feats[tap], w.to(torch.bfloat16), b.to(torch.bfloat16))

        return self._rgb8(self.decoder.run(x, skip))

    def _rgb8(self, x: torch.Tensor) -> np.ndarray:
        y = x.float().clamp_(0.0, 1.0).mul_(255.0).add_(0.5).to(torch.uint8).permute(0, 2, 3, 1)  # (1, h, w, C)
        if self.shuffle:
            y = unshuffle_hwc(y, self.shuffle)
        return y[0].contiguous().numpy()


class OrtBackend:
    """ONNX Runtime on the CPU, CUDA or TensorRT execution provider.

    Thread spinning is off by default: the encoder and decoder sessions (and the decode/encode
    threads of a video run) share the cores, and spinning pools starve each other. Measured on
    two cores: stylize-video at 640x360 went from 9.6 fps with spinning to 21.4 fps without.
    """

    def __init__(self, model: StyleModel, provider: str = "CPUExecutionProvider", threads: int | None = None,
                 spinning: bool = False, cache_dir: str | os.PathLike | None = None, precision: str = "fp32"):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendUnavailableError(
                "onnxruntime is not installed: pip install 'realtime-style[onnx]' (or [gpu] on CUDA machines)") from e
        if provider not in ort.get_available_providers():
            raise BackendUnavailableError(f"{provider} is not available in this onnxruntime "
                                          f"(has {', '.join(ort.get_available_providers())})")
        if precision == "int8":
            if provider != "CPUExecutionProvider":
                raise BackendUnavailableError("int8 graphs are for the CPU; on a GPU use onnxruntime or torch (fp16)")
            from .int8 import find_int8

            paths = find_int8(model, cache_dir)
        elif precision == "fp32":
            paths = cached_export(model, cache_dir)
        else:
            raise ValueError(f"precision must be fp32 or int8, got {precision!r}")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = threads or min(os.cpu_count() or 1, 8)
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        opts.log_severity_level = 3
        self.encoder, self.decoder = (_ort_session(ort, paths[part], opts, provider) for part in ("encoder", "decoder"))
        if self.encoder.get_providers()[0] != provider:
            raise BackendUnavailableError(f"onnxruntime fell back from {provider} to {self.encoder.get_providers()[0]}")
        self.name = "onnxruntime-" + provider.replace("ExecutionProvider", "").lower() + \
            ("-int8" if precision == "int8" else "")
        self.taps = model.taps
        self._outputs = encoder_outputs(model.taps)

    def encode(self, frame: np.ndarray) -> tuple[Feats, StatsByTap]:
        if not frame.flags.c_contiguous:
            frame = np.ascontiguousarray(frame)
        outs = [torch.from_numpy(o) for o in self.encoder.run(self._outputs, {"rgb8": frame[None]})]
        feats = {tap: outs[3 * i] for i, tap in enumerate(self.taps)}
        return feats, {tap: (outs[3 * i + 1], outs[3 * i + 2]) for i, tap in enumerate(self.taps)}

    def decode(self, feats: Feats, content: StatsByTap, style: StatsByTap, alpha: float) -> np.ndarray:
        values = []
        for tap in self.taps:  # a few hundred numbers: torch's thread pool stays asleep
            values += [feats[tap], *adain_affine(content[tap], style[tap], alpha)]
        feeds = dict(zip(decoder_inputs(self.taps), map(_np, values)))
        return self.decoder.run(None, feeds)[0][0]


def _ort_session(ort, path, opts, provider: str):
    try:
        return ort.InferenceSession(str(path), opts, providers=[provider])
    except Exception as e:  # noqa: BLE001 - ORT's own exception types (InvalidProtobuf, Fail, ...) are not builtins
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise BackendUnavailableError(f"ONNX Runtime could not load {path} ({type(e).__name__}: {first})") from e


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().float().numpy())


BACKENDS: dict[str, Callable[..., Backend]] = {
    "torch": lambda model, device, cache_dir=None, threads=None, spinning=None: TorchBackend(model, device),
    "torch-bf16": lambda model, device, cache_dir=None, threads=None, spinning=None: TorchBf16Backend(model, device),
    "onnxruntime": lambda model, device, **kw: OrtBackend(
        model, "CUDAExecutionProvider" if device.type == "cuda" else "CPUExecutionProvider", **kw),
    "tensorrt": lambda model, device, **kw: OrtBackend(model, "TensorrtExecutionProvider", **kw),
    "onnxruntime-int8": lambda model, device, **kw: OrtBackend(
        model, "CUDAExecutionProvider" if device.type == "cuda" else "CPUExecutionProvider", precision="int8", **kw),
}
# CPU order: fastest first among those that keep the picture. torch-bf16 runs where the CPU
# multiplies bf16 in hardware (it refuses to start elsewhere), with fp32's flicker; then fp32
# ONNX Runtime, then eager torch. The int8 graphs are fast but roughly double the frame-to-frame
# flicker, and video is what this tool is for, so int8 is opt-in (--backend onnxruntime-int8).
# The measurements behind this order are in the model cards.
AUTO_ORDER = {"cpu": ["torch-bf16", "onnxruntime", "torch"], "cuda": ["tensorrt", "onnxruntime", "torch"]}


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
