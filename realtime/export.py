"""ONNX export: an encoder graph and an AdaIN + decoder graph, statistics as inputs.

``encoder``: image (1, 3, H, W) float RGB in [0, 1], H and W multiples of the model's stride
(dynamic) -> one output per tap of the model (``model.taps``), named after the tap.
``decoder``: for every tap, its features and four (1, C, 1, 1) statistics named
``{tap}``, ``{tap}_content_mean``, ``{tap}_content_std``, ``{tap}_style_mean``,
``{tap}_style_std``; then ``alpha`` (1,) -> image (1, 3, H, W). AdaIN runs inside it; the
content statistics are inputs so temporal smoothing can pass time-averaged ones, and a style
switch only changes inputs, so one export serves every style. Exported files are cached by a
hash of the weights, the opset and the graph version.
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
GRAPH_VERSION = 3  # bump when the exported graphs' inputs or outputs change
STAT_NAMES = ("content_mean", "content_std", "style_mean", "style_std")


def decoder_inputs(taps: tuple[str, ...]) -> list[str]:
    return [n for t in taps for n in (t, *(f"{t}_{s}" for s in STAT_NAMES))] + ["alpha"]


class _EncoderGraph(nn.Module):
    def __init__(self, model: StyleModel):
        super().__init__()
        self.model = model

    def forward(self, image):
        feats = self.model.encode(image)
        return tuple(feats[t] for t in self.model.taps)


class _DecoderGraph(nn.Module):
    def __init__(self, model: StyleModel):
        super().__init__()
        self.model = model

    def forward(self, *args):
        *per_tap, alpha = args
        a = alpha.view(1, 1, 1, 1)
        t = {}
        for i, tap in enumerate(self.model.taps):
            feat, c_mean, c_std, s_mean, s_std = per_tap[5 * i: 5 * i + 5]
            t[tap] = a * adain_with_stats(feat, s_mean, s_std, (c_mean, c_std)) + (1.0 - a) * feat
        return self.model.decoder(t) if self.model.multi_level else self.model.decoder(t[self.model.taps[-1]])


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
    image = torch.rand(1, 3, 2 * s, 3 * s)
    paths = {"encoder": out_dir / "encoder.onnx", "decoder": out_dir / "decoder.onnx"}
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter's deprecation and constant-folding notes are known and harmless
        warnings.simplefilter("ignore", (UserWarning, DeprecationWarning, torch.jit.TracerWarning))
        feats = model.encode(image)
        hw = {2: "height", 3: "width"}
        torch.onnx.export(_EncoderGraph(model), (image,), str(paths["encoder"]), input_names=["image"],
                          output_names=list(model.taps), dynamic_axes={"image": hw, **{t: hw for t in model.taps}},
                          opset_version=opset, dynamo=False)
        args = []
        for tap in model.taps:
            c = feats[tap].shape[1]
            args += [feats[tap]] + [torch.rand(1, c, 1, 1) + 0.5 for _ in STAT_NAMES]
        args.append(torch.ones(1))
        torch.onnx.export(_DecoderGraph(model), tuple(args), str(paths["decoder"]),
                          input_names=decoder_inputs(model.taps), output_names=["image"],
                          dynamic_axes={"image": hw, **{t: hw for t in model.taps}}, opset_version=opset, dynamo=False)
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

