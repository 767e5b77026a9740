"""int8 ONNX graphs for the CPU (static QDQ quantisation of the convolutions): finding them.

The exported fp32 graphs (``export.py``) are quantised per channel (weights int8, activations
uint8) with activation ranges calibrated on real photographs and artworks; AdaIN, the
statistics and the output stay in float. Calibration needs images, so the graphs of a bundled
model are made once, by us (``realtime.tools.quantize``, ``scripts/quantize.py``), and ship
beside its weights in ``models/<name>/int8/``; each graph records the hash of the weights it
came from, and a graph whose hash does not match the loaded model is refused.

Dynamic quantisation (ConvInteger) was measured too: 124 ms against fp32's 25 ms for lite at
640x480 on two cores, so it is not offered.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import BackendUnavailableError
from .export import GRAPH_VERSION, check_sums, model_hash
from .model import StyleModel

HASH_KEY = "realtime_style.model_hash"
VERSION_KEY = "realtime_style.graph_version"
PARTS = ("encoder", "decoder")


def int8_dirs(model: StyleModel, cache_dir: str | os.PathLike | None = None, digest: str | None = None) -> list[Path]:
    """Where int8 graphs for this model may be: bundled with it, then the cache."""
    from .registry import cache_root, models_dir

    digest = digest or model_hash(model)
    return [models_dir() / model.name / "int8", cache_root(cache_dir) / "onnx" / f"{digest[:16]}-g{GRAPH_VERSION}-int8"]


def find_int8(model: StyleModel, cache_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """The int8 graphs made from exactly this model's weights, or BackendUnavailableError."""
    import onnx

    digest = model_hash(model)
    looked = []
    bundled = int8_dirs(model, cache_dir, digest)[0]
    for folder in int8_dirs(model, cache_dir, digest):
        paths = {p: folder / f"{p}.onnx" for p in PARTS}
        if not all(p.exists() for p in paths.values()):
            looked.append(f"{folder} (none)")
            continue
        damage = check_sums(folder, PARTS)
        if damage and folder == bundled:
            raise BackendUnavailableError(f"the int8 graphs bundled with {model.name} are damaged ({damage}); "
                                          f"reinstall realtime-style, or use --backend onnxruntime")
        if damage:
            looked.append(f"{folder} ({damage})")
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
        "python -m realtime.tools.quantize --model MODEL --data DIR (needs calibration images), or use "
        "--backend onnxruntime")
