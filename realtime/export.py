"""ONNX export: an encoder graph and an AdaIN + decoder graph, statistics as inputs.

``encoder``: image (1, 3, H, W) float RGB in [0, 1], H and W multiples of the model's stride
(dynamic) -> features (1, C, H/s, W/s).
``decoder``: features, content_mean, content_std, style_mean, style_std (each (1, C, 1, 1))
and alpha (1,) -> image (1, 3, H, W). AdaIN runs inside it; the content statistics are inputs
so temporal smoothing can pass time-averaged ones, and a style switch only changes inputs,
so one export serves every style. Exported files are cached by a hash of the weights and
the opset.
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
GRAPH_VERSION = 2  # bump when the exported graphs' inputs or outputs change
DECODER_INPUTS = ["features", "content_mean", "content_std", "style_mean", "style_std", "alpha"]


class AdainDecoder(nn.Module):
    """AdaIN with given statistics, the strength blend, then the decoder."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, feat, content_mean, content_std, style_mean, style_std, alpha):
        t = adain_with_stats(feat, style_mean, style_std, (content_mean, content_std))
        a = alpha.view(1, 1, 1, 1)
        return self.decoder(a * t + (1.0 - a) * feat)


def model_hash(model: StyleModel) -> str:
    """sha256 over the parameter names, shapes and bytes: the identity of the weights."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def export_onnx(model: StyleModel, out_dir: str | os.PathLike, opset: int = OPSET) -> dict[str, Path]:
    """Write ``encoder.onnx`` and ``decoder.onnx`` into out_dir and check them with onnx.checker."""
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
    feat = torch.rand(1, c, 2, 3)
    stats = [torch.rand(1, c, 1, 1) + 0.5 for _ in range(4)]
    alpha = torch.ones(1)
    paths = {"encoder": out_dir / "encoder.onnx", "decoder": out_dir / "decoder.onnx"}
    hw = {2: "height", 3: "width"}
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter's deprecation and constant-folding notes are known and harmless
        warnings.simplefilter("ignore", (UserWarning, DeprecationWarning, torch.jit.TracerWarning))
        torch.onnx.export(model.encoder, (image,), str(paths["encoder"]), input_names=["image"],
                          output_names=["features"], dynamic_axes={"image": hw, "features": hw},
                          opset_version=opset, dynamo=False)
        torch.onnx.export(AdainDecoder(model.decoder), (feat, *stats, alpha), str(paths["decoder"]),
                          input_names=DECODER_INPUTS, output_names=["image"],
                          dynamic_axes={"features": hw, "image": hw}, opset_version=opset, dynamo=False)
    for path in paths.values():
        onnx.checker.check_model(onnx.load(str(path)))
    return paths


def cached_export(model: StyleModel, cache: str | os.PathLike | None = None) -> dict[str, Path]:
    """Export once per (weights, opset); later calls reuse the files."""
    from .registry import cache_dir

    folder = cache_dir(cache) / "onnx" / f"{model_hash(model)[:16]}-op{OPSET}-g{GRAPH_VERSION}"
    paths = {"encoder": folder / "encoder.onnx", "decoder": folder / "decoder.onnx"}
    if all(p.exists() for p in paths.values()):
        return paths
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    fresh = export_onnx(model, tmp)
    folder.mkdir(parents=True, exist_ok=True)
    for key, path in fresh.items():  # per file, atomically: a reader never sees half a graph
        os.replace(path, paths[key])
    tmp.rmdir()
    return paths

