"""Making the int8 ONNX graphs of a model: static QDQ quantisation calibrated on real content x
style pairs, as the Stylizer feeds them. The runtime side (finding and checking the graphs)
is ``realtime.int8``."""

from __future__ import annotations

import time
import argparse
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..export import GRAPH_VERSION, cached_export, decoder_inputs, model_hash, write_sums
from ..int8 import HASH_KEY, VERSION_KEY
from ..model import StyleModel


def calibration_feeds(model: StyleModel, contents: Iterable[np.ndarray], styles: Iterable[np.ndarray]
                      ) -> tuple[list[dict], list[dict]]:
    """Encoder and decoder inputs of real content x style pairs, as the Stylizer feeds them."""
    from ..adain import adain_affine, calc_mean_std
    from ..frames import rgb8_to_tensor

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
    write_sums(out_dir)
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


USAGE = """Make the int8 ONNX graphs of a model, calibrated on training photographs and artworks.

    python scripts/quantize.py --model lite --data ../shared/data

Writes models/<name>/int8/{encoder,decoder}.onnx (beside the bundled weights), then
prints the speed of fp32 and int8 ONNX Runtime at 640x480 and the mean absolute difference of
their outputs on held-out eval pairs. Whether int8 is good enough is for scripts/evaluate.py
(--backend onnxruntime-int8) to say.
"""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--data", required=True, help="folder with content/train, style/train, content/eval, style/eval")
    p.add_argument("--pairs", type=int, default=16, help="calibration pairs")
    args = p.parse_args(argv)

    from .evaluate import pick
    from ..images import load_image, resize_long_side
    from ..model import load_model
    from ..int8 import int8_dirs
    from ..stylizer import Stylizer

    data = Path(args.data)
    model = load_model(args.model)

    def images(folder: str, n: int, side: int) -> list[np.ndarray]:
        return [resize_long_side(load_image(f, max_side=None), side) for f in pick(data / folder, n)]

    t0 = time.perf_counter()
    out = int8_dirs(model)[0]  # beside the bundled weights, where the onnxruntime-int8 backend looks first
    paths = quantize_int8(model, images("content/train", args.pairs, 640), images("style/train", args.pairs, 512), out)
    print(f"wrote {paths['encoder']} and {paths['decoder']} in {time.perf_counter() - t0:.1f} s")

    contents, styles = images("content/eval", 6, 640), pick(data / "style/eval", 6)
    results = {}
    for backend in ("onnxruntime", "onnxruntime-int8"):
        st = Stylizer(model, device="cpu", backend=backend)
        outs = []
        for content, style in zip(contents, styles):
            st.set_style(style)
            outs.append(st.stylize(content).astype(np.float32))
        st.set_style(styles[0])
        frame = np.ascontiguousarray(contents[0][:480, :640])
        for _ in range(3):
            st.stylize(frame)
        t = time.perf_counter()
        for _ in range(20):
            st.stylize(frame)
        results[backend] = (outs, 1000 * (time.perf_counter() - t) / 20, frame.shape)
    pairs = zip(results["onnxruntime"][0], results["onnxruntime-int8"][0])
    diff = np.mean([np.abs(a - b).mean() / 255 for a, b in pairs])
    for name, (_, ms, shape) in results.items():
        print(f"{name:<20} {ms:6.1f} ms per {shape[1]}x{shape[0]} frame (style cached)")
    print(f"mean |int8 - fp32| on 6 eval pairs: {diff:.4f} (RGB in [0, 1])")


if __name__ == "__main__":
    main()
