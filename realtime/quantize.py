"""int8 ONNX graphs for the CPU: static QDQ quantisation of the convolutions.

The exported fp32 graphs (``export.py``) are quantised per channel (weights int8, activations
uint8) with activation ranges calibrated on real photographs and artworks. AdaIN, the
statistics and the output stay in float. Calibration needs images, so the graphs of a bundled
model are made once, by us (``scripts/quantize.py``), and ship beside its weights in
``models/<name>/int8/``; each graph records the hash of the weights it came from, and a graph
whose hash does not match the loaded model is refused.

Dynamic quantisation (ConvInteger) was measured too: 124 ms against fp32's 25 ms for lite at
640x480 on two cores, so it is not offered.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from .errors import BackendUnavailableError
from .export import GRAPH_VERSION, cached_export, decoder_inputs, model_hash
from .model import StyleModel

HASH_KEY = "realtime_style.model_hash"
VERSION_KEY = "realtime_style.graph_version"
PARTS = ("encoder", "decoder")


def int8_dirs(model: StyleModel, cache: str | os.PathLike | None = None, digest: str | None = None) -> list[Path]:
    """Where int8 graphs for this model may be: bundled with it, then the cache."""
    from .registry import cache_dir, models_dir

    digest = digest or model_hash(model)
    return [models_dir() / model.name / "int8", cache_dir(cache) / "onnx" / f"{digest[:16]}-g{GRAPH_VERSION}-int8"]


def find_int8(model: StyleModel, cache: str | os.PathLike | None = None) -> dict[str, Path]:
    """The int8 graphs made from exactly this model's weights, or BackendUnavailableError."""
    import onnx

    digest = model_hash(model)
    looked = []
    for folder in int8_dirs(model, cache, digest):
        paths = {p: folder / f"{p}.onnx" for p in PARTS}
        if not all(p.exists() for p in paths.values()):
            looked.append(f"{folder} (none)")
            continue
        meta = [dict((m.key, m.value) for m in onnx.load(str(p), load_external_data=False).metadata_props)
                for p in paths.values()]
        if {m.get(HASH_KEY) for m in meta} != {digest}:
            looked.append(f"{folder} (made from other weights)")
        elif {m.get(VERSION_KEY) for m in meta} != {str(GRAPH_VERSION)}:
            looked.append(f"{folder} (an older graph layout; make them again)")
        else:
            return paths
    raise BackendUnavailableError(
        f"no int8 graphs for model {model.name}: looked in {'; '.join(looked)}. Make them with "
        "scripts/quantize.py --model MODEL --data DIR (needs calibration images), or use --backend onnxruntime")


def calibration_feeds(model: StyleModel, contents: Iterable[np.ndarray], styles: Iterable[np.ndarray]
                      ) -> tuple[list[dict], list[dict]]:
    """Encoder and decoder inputs of real content x style pairs, as the Stylizer feeds them."""
    from .adain import adain_affine, calc_mean_std
    from .frames import rgb8_to_tensor

    enc, dec = [], []
    s = model.stride
    with torch.no_grad():
        for content, style in zip(contents, styles):
            content = np.ascontiguousarray(content[: content.shape[0] // s * s, : content.shape[1] // s * s])
            style = style[: style.shape[0] // s * s, : style.shape[1] // s * s]
            feats, style_stats = model.encode(rgb8_to_tensor(content)), model.style_stats(rgb8_to_tensor(style))
            enc.append({"rgb8": content[None]})
            values = []
            for tap in model.taps:
                values += [feats[tap], *adain_affine(calc_mean_std(feats[tap]), style_stats[tap])]
            dec.append(dict(zip(decoder_inputs(model.taps), [v.float().contiguous().numpy() for v in values])))
    return enc, dec


def quantize_int8(model: StyleModel, contents: list[np.ndarray], styles: list[np.ndarray],
                  out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write int8 ``encoder.onnx`` and ``decoder.onnx`` into out_dir, calibrated on the pairs."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Feeds(CalibrationDataReader):
        def __init__(self, feeds: list[dict]):
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    fp32 = cached_export(model)
    enc, dec = calibration_feeds(model, contents, styles)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    digest = model_hash(model)
    paths = {}
    for part, feeds in (("encoder", enc), ("decoder", dec)):
        tmp = out_dir / f"{part}.tmp{os.getpid()}.onnx"
        with _quiet_root_logger():  # ORT logs a pre-processing hint per graph through the root logger
            quantize_static(str(fp32[part]), str(tmp), Feeds(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["Conv"])
        graph = onnx.load(str(tmp))
        graph.metadata_props.add(key=HASH_KEY, value=digest)
        graph.metadata_props.add(key=VERSION_KEY, value=str(GRAPH_VERSION))
        onnx.checker.check_model(graph)
        onnx.save(graph, str(tmp))
        paths[part] = out_dir / f"{part}.onnx"
        os.replace(tmp, paths[part])
    return paths


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)
