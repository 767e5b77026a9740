#!/usr/bin/env python3
"""Make the int8 ONNX graphs of a model, calibrated on training photographs and artworks.

    python scripts/quantize.py --model lite --data ../shared/data

Writes models/<name>/int8/{encoder,decoder}.onnx (beside the bundled weights), then
prints the speed of fp32 and int8 ONNX Runtime at 640x480 and the mean absolute difference of
their outputs on held-out eval pairs. Whether int8 is good enough is for scripts/evaluate.py
(--backend onnxruntime-int8) to say.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--data", required=True, help="folder with content/train, style/train, content/eval, style/eval")
    p.add_argument("--pairs", type=int, default=16, help="calibration pairs")
    args = p.parse_args()

    from realtime.evaluate import pick
    from realtime.images import load_image, resize_long_side
    from realtime.model import load_model
    from realtime.quantize import int8_dirs, quantize_int8
    from realtime.stylizer import Stylizer

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
