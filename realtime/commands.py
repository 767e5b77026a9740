"""The commands behind ``stylize``: thin functions over the library (one per subcommand).

Each takes the parsed arguments and returns an exit status; errors the user can fix are
raised as ``StylizeError`` and printed as one line by ``cli._run``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

def _make_stylizer(args: argparse.Namespace, temporal: bool = False, temporal_strength: float = 0.9):
    """The Stylizer the style options describe (no style set yet)."""
    from .stylizer import Stylizer

    return Stylizer(model=args.model, device=args.device, alpha=args.alpha, preserve_color=args.preserve_color,
                    max_size=args.max_size, cache_dir=args.cache_dir, backend=args.backend, temporal=temporal,
                    temporal_strength=temporal_strength)


def cmd_video(args: argparse.Namespace) -> int:
    if len(args.input) > 1:  # several inputs: a batch into the -o folder (or beside the first input)
        outdir = Path(args.output) if args.output else Path(args.input[0]).parent
        return _batch(args, args.input, outdir)
    if args.workers > 1 or args.cluster:
        _report(_chunked_video(args, args.input[0], args.output, args.overwrite), args.json)
        return 0
    from .jobs import VideoJob

    # the input is opened and the output checked before the model loads
    with VideoJob(args.input[0], args.output, overwrite=args.overwrite, progress=not args.quiet,
                  inputs=tuple(Path(s) for s in args.style)) as job:
        stylizer = _make_stylizer(args, args.temporal == "on", args.temporal_strength)
        stylizer.set_style(args.style, args.style_weights)
        job.settings = stylizer.describe()
        summary = job.run(stylizer.stylize)
    _report(summary, args.json)
    return 0


def _report(summary, as_json: bool) -> None:
    for w in summary.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(json.dumps(summary.to_dict()) if as_json else summary.line())


def _worker_spec(args: argparse.Namespace):
    from .engines import WorkerSpec

    return WorkerSpec(model=args.model, device="cpu" if args.device == "auto" else args.device,
                      backend=args.backend, alpha=args.alpha, preserve_color=args.preserve_color,
                      max_size=args.max_size, temporal=args.temporal == "on",
                      temporal_strength=args.temporal_strength, cache_dir=args.cache_dir,
                      threads=args.threads_per_worker or 0)


def _chunked_video(args: argparse.Namespace, input_path: str, output: str | None, overwrite: bool):
    """One video in chunks on --workers (locally or on --cluster); its VideoSummary."""
    from .scaleout import ChunkedVideoJob

    job = ChunkedVideoJob(input_path, output, _worker_spec(args), styles=[Path(s) for s in args.style],
                          weights=args.style_weights, workers=max(1, args.workers), chunk_seconds=args.chunk_seconds,
                          warmup=args.warmup, cluster=args.cluster, overwrite=overwrite, progress=not args.quiet,
                          deterministic=args.deterministic)
    return job.run()


def cmd_batch(args: argparse.Namespace) -> int:
    return _batch(args, args.inputs, Path(args.output))


def _batch(args: argparse.Namespace, specs: list[str], outdir: Path) -> int:
    from .errors import StylizeError
    from .multi import expand_inputs, items_json, plan_batch, run_batch, summary_table

    items = plan_batch(expand_inputs(specs), [Path(s) for s in args.style], outdir)
    stylizer = _make_stylizer(args, args.temporal == "on", args.temporal_strength)
    settings = {k: getattr(args, k) for k in ("model", "alpha", "preserve_color", "max_size", "temporal",
                                               "temporal_strength", "style_weights")}
    current: dict = {}

    def do_item(item) -> None:
        if item.ray_result is not None:  # made on Ray already
            status, message = item.ray_result
            if status != "done":
                raise StylizeError(message)
            item.frames = 1
            return
        key = tuple(item.styles)
        if current.get("styles") != key:
            stylizer.set_style(item.styles, args.style_weights if len(item.styles) == len(args.style) else None)
            current["styles"] = key
        stylizer.reset()
        if item.kind == "image":
            _stylize_one_image(stylizer, item)
        elif args.workers > 1 or args.cluster:
            summary = _chunked_video(args, str(item.input), str(item.output), overwrite=True)
            item.frames, item.chunks = summary.frames, summary.settings.get("chunks", [])
        else:
            from .jobs import VideoJob

            with VideoJob(item.input, item.output, overwrite=True, progress=not args.quiet,
                          inputs=tuple(item.styles)) as job:
                item.frames = job.run(stylizer.stylize).frames

    from contextlib import nullcontext

    from .engines import ray_session

    try:
        with ray_session(None if args.cluster == "auto" else args.cluster) if args.cluster else nullcontext():
            if args.cluster:  # one Ray for the whole batch: pictures through Ray Data, then videos in chunks
                _ray_images(args, items, settings)
            run_batch(items, settings, do_item, lambda line: print(line, file=sys.stderr))
    except KeyboardInterrupt:
        print(summary_table(items), file=sys.stderr)
        raise
    if args.json:
        print(json.dumps({"items": items_json(items), "settings": stylizer.describe()}, indent=1))
    else:
        print(summary_table(items))
    return 1 if any(it.status == "failed" for it in items) else 0


def _ray_images(args: argparse.Namespace, items: list, settings: dict) -> None:
    """On a cluster the pictures go through Ray Data in one pass; run_batch then sees them done
    (or failed) and records them, and the videos run chunk by chunk on Ray after."""
    from dataclasses import replace

    from .engines import default_threads, run_ray_images
    from .multi import Manifest, settings_key

    manifest = Manifest(items[0].output.parent) if items else None
    todo = [it for it in items if it.kind == "image" and it.input.exists()
            and not manifest.complete(it, settings_key(it, settings))]
    if not todo:
        return
    spec = replace(_worker_spec(args), threads=args.threads_per_worker or default_threads(args.workers))
    rows = run_ray_images(spec, [(str(it.input), str(it.output), it.styles) for it in todo], max(1, args.workers),
                          args.style_weights, None if args.cluster == "auto" else args.cluster)
    by_output = {r["output"]: r for r in rows}
    for it in todo:
        r = by_output.get(str(it.output), {"status": "failed", "message": "no result from Ray"})
        it.ray_result = (r["status"], r["message"])


def _stylize_one_image(stylizer, item) -> None:
    from .images import load_image
    from .outputs import save_picture

    save_picture(item.output, stylizer.stylize(load_image(item.input)), (item.input, *item.styles), overwrite=True)
    item.frames = 1


def cmd_image(args: argparse.Namespace) -> int:
    from .batch import default_image_output, plan_images, stylize_images

    content = Path(args.content)
    output = Path(args.output) if args.output else default_image_output(content)
    plan = plan_images(content, [Path(s) for s in args.style], output, overwrite=args.overwrite)
    stylizer = _make_stylizer(args)  # after the inputs and the output are checked
    report = stylize_images(plan, stylizer, style_weights=args.style_weights)
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
    if args.action == "pull":
        for name in names:
            _, paths = resolve(name, args.cache_dir)
            for role, path in paths.items():
                print(f"{name} {role}: {path} (sha256 verified)")
        return 0
    bad = 0
    for name in names:
        for wf in get_spec(name).files:
            status = file_status(wf, args.cache_dir)
            bad += status == "corrupt"
            print(f"{name} {wf.filename}: {status}")
    for label, status in _graph_statuses(names, args.cache_dir):
        bad += status.startswith("damaged")
        print(f"{label}: {status}")
    return 1 if bad else 0


def _graph_statuses(names: list[str], cache_dir: str | None) -> list[tuple[str, str]]:
    """The bundled int8 graphs of the named models, then every exported graph in the cache."""
    from .export import check_sums
    from .registry import cache_root, models_dir

    out = []
    for name in names:
        folder = models_dir() / name / "int8"
        if folder.is_dir():
            damage = check_sums(folder)
            out.append((f"{name} int8 graphs (bundled)", f"damaged: {damage}; reinstall" if damage else "ok"))
    graphs = cache_root(cache_dir) / "onnx"
    for folder in sorted(graphs.iterdir()) if graphs.is_dir() else []:
        if folder.is_dir() and ".tmp" not in folder.name:
            damage = check_sums(folder)
            out.append((f"cached graphs {folder.name}",
                        f"damaged: {damage} (made again on next use)" if damage else "ok"))
    return out


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import report

    print(report(args.cache_dir))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .tools.bench import run_bench, write_json

    for model in args.model:
        result = run_bench(model, Path(args.style), args.device, args.sizes,
                           Path(args.clip) if args.clip else None, peer=not args.no_peer,
                           microast=Path(args.microast) if args.microast else None, backends=args.backend,
                           contention=Path(args.contention) if args.contention else None,
                           contention_seconds=args.contention_seconds)
        args.no_peer, args.microast = True, None  # the peers once per run, not once per model
        if args.json:
            out = Path(args.json)
            write_json(result, out.with_name(f"{out.stem}_{Path(model).stem}{out.suffix}") if len(args.model) > 1 else out)
    return 0


def _style_pictures(entries: list[str]) -> list[Path]:
    """--style entries with folders expanded to their pictures (sorted)."""
    from .batch import pictures
    from .errors import InputNotFoundError
    from .images import IMAGE_SUFFIXES

    styles: list[Path] = []
    for entry in map(Path, entries):
        if not entry.exists():
            raise InputNotFoundError(f"style not found: {entry}")
        if entry.is_dir():
            found = pictures(entry)
            if not found:
                raise InputNotFoundError(f"no pictures in the style folder {entry} (looked for "
                                         f"{', '.join(sorted(IMAGE_SUFFIXES))})")
            styles += found
        else:
            styles.append(entry)
    return styles


def cmd_webcam(args: argparse.Namespace) -> int:
    from .adapt import make_adapter
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
        adapter = None if args.no_adapt else make_adapter(stylizer, args.target_fps or min(30.0, session.context.fps))
        controller = LiveController(stylizer, styles if gallery else [], still_dir=Path(args.record_dir),
                                    adapter=adapter)
        if "preview" in outputs:
            ctx = session.context
            controller.recorder = session.attach_sink(RecordingSink(Path(args.record_dir), ctx.size, ctx.fps, ctx.audio))
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


def cmd_studio(args: argparse.Namespace) -> int:
    from .errors import StylizeError

    try:
        import uvicorn  # noqa: F401 - checked here so the message names the extra
        from .studio.app import LOCAL, create_app
        from .studio.studio import Studio
    except ImportError as e:
        raise StylizeError(f"stylize studio needs the [studio] extra: pip install 'realtime-style[studio]' "
                           f"({e.name} is missing)") from e
    import socket

    with socket.socket() as probe:  # a busy port is one line now, not a traceback once the model is loaded
        if probe.connect_ex((args.host if args.host != "0.0.0.0" else "127.0.0.1", args.port)) == 0:
            raise StylizeError(f"port {args.port} is in use; pass --port N")
    args.alpha, args.preserve_color = 1.0, None
    styles = [Path(s) for s in args.styles] or []
    for path in styles:
        if not path.exists():
            from .errors import InputNotFoundError

            raise InputNotFoundError(f"style not found: {path}")

    def make(temporal: bool):
        return _make_stylizer(args, temporal, args.temporal_strength)

    with Studio(args.camera, make, styles, loop=args.loop, record_dir=Path(args.record_dir),
                target_fps=args.target_fps, adapt=not args.no_adapt) as studio:
        app = create_app(studio, upload_limit=args.upload_limit_mb * 2**20)
        query = "" if args.host in LOCAL else f"?token={app.state.token}"
        url = f"http://{'127.0.0.1' if args.host == '0.0.0.0' else args.host}:{args.port}/{query}"
        print(f"studio: {url}  (Ctrl-C to stop)", file=sys.stderr, flush=True)
        if not args.no_browser:
            import webbrowser

            webbrowser.open(url)
        studio.start()
        _serve(app, args.host, args.port)
    return 0


def _serve(app, host: str, port: int) -> None:
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    uvicorn.Server(config).run()


COMMANDS = {"studio": cmd_studio, "video": cmd_video, "batch": cmd_batch, "image": cmd_image, "models": cmd_models,
            "doctor": cmd_doctor, "bench": cmd_bench, "export-onnx": cmd_export_onnx, "eval": cmd_eval, "webcam": cmd_webcam}
