"""ONNX export: the per-frame graph with the style statistics as inputs.

``stylize`` graph: image (1, 3, H, W) float RGB in [0, 1] with H, W multiples of the model's
stride (dynamic), style_mean and style_std (1, C, 1, 1), alpha (1,) -> image (1, 3, H, W).
A style switch only changes the inputs, so one export serves every style. ``encoder`` graph:
image -> features, for computing style statistics without torch. Exported files are cached
by a hash of the weights and the opset.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .adain import adain_with_stats
from .model import StyleModel

OPSET = 17


class _StylizeGraph(nn.Module):
    def __init__(self, model: StyleModel):
        super().__init__()
        self.model = model

    def forward(self, image, style_mean, style_std, alpha):
        feat = self.model.encoder(image)
        t = adain_with_stats(feat, style_mean, style_std)
        t = alpha.view(1, 1, 1, 1) * t + (1.0 - alpha.view(1, 1, 1, 1)) * feat
        return self.model.decoder(t)


def model_hash(model: StyleModel) -> str:
    """sha256 over the parameter names, shapes and bytes: the identity of the weights."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def export_onnx(model: StyleModel, out_dir: str | os.PathLike, opset: int = OPSET) -> dict[str, Path]:
    """Write ``stylize.onnx`` and ``encoder.onnx`` into out_dir and check them with onnx.checker."""
    try:
        import onnx
    except ImportError as e:
        raise ImportError("ONNX export needs the onnx package: pip install 'realtime-style[onnx]'") from e
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    s = model.stride
    c = model.encoder.out_channels
    image = torch.rand(1, 3, 2 * s, 3 * s)
    stats = (torch.rand(1, c, 1, 1), torch.rand(1, c, 1, 1) + 0.5)
    alpha = torch.ones(1)
    paths = {"stylize": out_dir / "stylize.onnx", "encoder": out_dir / "encoder.onnx"}
    hw = {2: "height", 3: "width"}
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter's deprecation and constant-folding notes are known and harmless
        warnings.simplefilter("ignore", (UserWarning, DeprecationWarning, torch.jit.TracerWarning))
        torch.onnx.export(_StylizeGraph(model), (image, *stats, alpha), str(paths["stylize"]),
                          input_names=["image", "style_mean", "style_std", "alpha"], output_names=["output"],
                          dynamic_axes={"image": hw, "output": hw}, opset_version=opset, dynamo=False)
        torch.onnx.export(model.encoder, (image,), str(paths["encoder"]), input_names=["image"],
                          output_names=["features"], dynamic_axes={"image": hw, "features": hw},
                          opset_version=opset, dynamo=False)
    for path in paths.values():
        onnx.checker.check_model(onnx.load(str(path)))
    return paths


def cached_export(model: StyleModel, cache: str | os.PathLike | None = None) -> dict[str, Path]:
    """Export once per (weights, opset); later calls reuse the files."""
    from .registry import cache_dir

    folder = cache_dir(cache) / "onnx" / f"{model_hash(model)[:16]}-op{OPSET}"
    paths = {"stylize": folder / "stylize.onnx", "encoder": folder / "encoder.onnx"}
    if all(p.exists() for p in paths.values()):
        return paths
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    export_onnx(model, tmp)
    try:
        tmp.rename(folder)
    except OSError:  # another process exported it first
        pass
    return paths

