"""ONNX export: an encoder graph and an AdaIN + decoder graph, uint8 frames in and out.

``encoder``: ``rgb8`` uint8 (1, H, W, 3) RGB, H and W multiples of the model's stride (dynamic)
-> for every tap of the model (``model.taps``) its features ``{tap}`` (1, C, h, w) and their
channel statistics ``{tap}_mean`` and ``{tap}_std`` (1, C, 1, 1).
``decoder``: for every tap its features and the per-channel affine map ``{tap}_scale``,
``{tap}_shift`` (1, C, 1, 1) that AdaIN and the strength blend reduce to (``adain_affine``)
-> ``rgb8`` uint8 (1, H, W, 3).

Frames cross the graph boundary as uint8 HWC and the statistics are computed inside, so a frame
needs no tensor work outside ONNX Runtime (torch's thread pool waking between two ORT calls
cost ~4 ms per 640x480 frame on two cores). The content statistics stay outside the decoder so
temporal smoothing can average them; a style switch only changes inputs, so one export serves
every style. The 1/255 input scale is folded into the first convolution, and a pixel-shuffle
output layer is folded into the final transpose to HWC (ONNX Runtime's DepthToSpace took 2.9 ms
per 640x480 frame). Exported files are cached by a hash of the weights, the opset and the graph
version.
"""

from __future__ import annotations

import copy
import hashlib
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .adain import calc_mean_std
from .fuse import drop_pixel_shuffle, fold_input_scale, unshuffle_hwc
from .model import StyleModel

OPSET = 17
GRAPH_VERSION = 4  # bump when the exported graphs' inputs or outputs change


def encoder_outputs(taps: tuple[str, ...]) -> list[str]:
    return [n for t in taps for n in (t, f"{t}_mean", f"{t}_std")]


def decoder_inputs(taps: tuple[str, ...]) -> list[str]:
    return [n for t in taps for n in (t, f"{t}_scale", f"{t}_shift")]


class _EncoderGraph(nn.Module):
    def __init__(self, model: StyleModel):
        super().__init__()
        self.model = copy.deepcopy(model)
        self.scale_input = not fold_input_scale(self.model.encoder)

    def forward(self, rgb8):
        x = rgb8.permute(0, 3, 1, 2).float()
        if self.scale_input:
            x = x * (1.0 / 255.0)
        feats = self.model.encode(x)
        return tuple(x for tap in self.model.taps for x in (feats[tap], *calc_mean_std(feats[tap])))


class _DecoderGraph(nn.Module):
    def __init__(self, model: StyleModel):
        super().__init__()
        self.model = copy.deepcopy(model)
        self.shuffle = drop_pixel_shuffle(self.model.decoder)

    def forward(self, *args):
        t = {tap: args[3 * i] * args[3 * i + 1] + args[3 * i + 2] for i, tap in enumerate(self.model.taps)}
        y = self.model.decoder(t)
        y = (y.permute(0, 2, 3, 1).clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
        return unshuffle_hwc(y, self.shuffle) if self.shuffle else y


def model_hash(model: StyleModel) -> str:
    """sha256 over the parameter names, shapes and bytes, and how each convolution pads: the
    identity of the network (one set of weights padded two ways makes two different graphs)."""
    h = hashlib.sha256()
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d) and mod.padding_mode != "zeros":
            h.update(f"{name}:{mod.padding_mode}".encode())
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
    rgb8 = torch.randint(0, 256, (1, 2 * s, 3 * s, 3), dtype=torch.uint8)
    paths = {"encoder": out_dir / "encoder.onnx", "decoder": out_dir / "decoder.onnx"}
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter's deprecation and constant-folding notes are known and harmless
        warnings.simplefilter("ignore", (UserWarning, DeprecationWarning, torch.jit.TracerWarning))
        encoder = _EncoderGraph(model)
        feats = encoder(rgb8)
        hwc, chw = {1: "height", 2: "width"}, {2: "height", 3: "width"}
        torch.onnx.export(encoder, (rgb8,), str(paths["encoder"]), input_names=["rgb8"],
                          output_names=encoder_outputs(model.taps),
                          dynamic_axes={"rgb8": hwc, **{t: chw for t in model.taps}}, opset_version=opset, dynamo=False)
        args = []
        for i, _ in enumerate(model.taps):
            f = feats[3 * i]
            args += [f, torch.rand(1, f.shape[1], 1, 1) + 0.5, torch.rand(1, f.shape[1], 1, 1)]
        torch.onnx.export(_DecoderGraph(model), tuple(args), str(paths["decoder"]),
                          input_names=decoder_inputs(model.taps), output_names=["rgb8"],
                          dynamic_axes={"rgb8": hwc, **{t: chw for t in model.taps}}, opset_version=opset, dynamo=False)
    for path in paths.values():
        onnx.checker.check_model(onnx.load(str(path)))
    return paths


SUMS = "SHA256SUMS"
GRAPH_PARTS = ("encoder", "decoder")


def write_sums(folder: Path, parts: tuple[str, ...] = GRAPH_PARTS) -> None:
    """Record the sha256 of each graph beside it (written last: its presence means complete)."""
    from .registry import sha256_of

    lines = [f"{sha256_of(folder / f'{part}.onnx')}  {part}.onnx" for part in parts]
    tmp = folder / f"{SUMS}.tmp{os.getpid()}"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, folder / SUMS)


def check_sums(folder: Path, parts: tuple[str, ...] = GRAPH_PARTS) -> str | None:
    """None when every graph in folder matches its recorded sha256, else what is wrong."""
    from .registry import sha256_of

    sums = folder / SUMS
    if not sums.exists():
        return "no SHA256SUMS beside the graphs"
    recorded = dict(reversed(line.split("  ", 1)) for line in sums.read_text().splitlines() if "  " in line)
    for part in parts:
        path = folder / f"{part}.onnx"
        if not path.exists():
            return f"{path.name} is missing"
        if recorded.get(path.name) != sha256_of(path):
            return f"{path.name} does not match its sha256"
    return None


def cached_export(model: StyleModel, cache_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Export once per (weights, opset); later calls reuse the files after checking their sha256,
    and a damaged cache (a truncated or edited graph) is made again."""
    import shutil

    from .registry import cache_root

    folder = cache_root(cache_dir) / "onnx" / f"{model_hash(model)[:16]}-op{OPSET}-g{GRAPH_VERSION}"
    paths = {part: folder / f"{part}.onnx" for part in GRAPH_PARTS}
    if folder.exists() and check_sums(folder) is None:
        return paths
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    fresh = export_onnx(model, tmp)
    write_sums(tmp)
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    try:
        os.replace(tmp, folder)  # the whole folder at once: a reader never sees half a graph
    except OSError:  # another process made it meanwhile: use ours from where it is
        return fresh
    return paths

