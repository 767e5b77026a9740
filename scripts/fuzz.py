#!/usr/bin/env python3
"""Byte-flip fuzzing of `stylize-video` (not in CI: it takes minutes).

    python scripts/fuzz.py --files 200 --out runs/fuzz

Makes a small mp4 with audio (and an mkv), then N copies with random bytes flipped, cut or
duplicated, and runs `stylize video` on each in its own process with a time limit. Counts:
tracebacks (any "Traceback" on stderr, or an exit status other than 0, 2 and 130), hangs
(the time limit hit), and unplayable outputs at a final name (an output that exists but does
not decode). Prints a summary and writes OUT/report.json with every case.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def make_seed(folder: Path) -> list[Path]:
    import av

    seeds = []
    for suffix in (".mp4", ".mkv"):
        path = folder / f"seed{suffix}"
        with av.open(str(path), "w") as c:
            v = c.add_stream("libx264", rate=24)
            v.width, v.height, v.pix_fmt = 96, 64, "yuv420p"
            a = c.add_stream("aac", rate=44100)
            a.layout = "mono"
            rng = np.random.default_rng(0)
            sent = 0
            for i in range(24):
                img = np.clip(np.roll(rng.integers(0, 255, (64, 96, 3)), i, axis=1), 0, 255).astype(np.uint8)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = i
                c.mux(v.encode(frame))
                while sent < (i + 1) * 44100 // 24 - 1024:
                    af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
                    af.sample_rate, af.pts = 44100, sent
                    c.mux(a.encode(af))
                    sent += 1024
            c.mux(v.encode(None))
            c.mux(a.encode(None))
        seeds.append(path)
    return seeds


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """Flip bytes (most cases), cut the file short, or duplicate a block."""
    buf = bytearray(data)
    kind = rng.choice(["flip", "flip", "flip", "cut", "dup"])
    if kind == "flip":
        for _ in range(int(rng.integers(1, 40))):
            buf[int(rng.integers(0, len(buf)))] = int(rng.integers(0, 256))
    elif kind == "cut":
        buf = buf[: int(rng.integers(16, len(buf)))]
    else:
        a = int(rng.integers(0, len(buf) - 64))
        b = a + int(rng.integers(16, 512))
        buf[b:b] = buf[a:b]
    return bytes(buf)


def plays(path: Path) -> bool:
    import av

    try:
        with av.open(str(path)) as c:
            return sum(1 for _ in c.decode(video=0)) > 0
    except Exception:  # noqa: BLE001 - anything that does not decode is unplayable
        return False


def run_case(case: Path, style: Path, out: Path, timeout: float) -> dict:
    t0 = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "realtime", "video", str(case), "--style", str(style), "-o",
                               str(out), "--quiet", "--backend", "torch"], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"file": case.name, "hang": True, "seconds": timeout}
    result = {"file": case.name, "exit": proc.returncode, "seconds": round(time.monotonic() - t0, 2),
              "stderr": proc.stderr.strip().splitlines()[-3:]}
    result["traceback"] = "Traceback" in proc.stderr or proc.returncode not in (0, 2, 130)
    result["output"] = out.exists()
    result["unplayable"] = out.exists() and not plays(out)
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before a case counts as a hang")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    from PIL import Image

    out = Path(args.out)
    cases_dir = out / "cases"
    cases_dir.mkdir(parents=True, exist_ok=True)
    style = out / "style.png"
    Image.fromarray((np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)).save(style)
    seeds = make_seed(out)
    rng = np.random.default_rng(args.seed)
    results = []
    for i in range(args.files):
        seed = seeds[i % len(seeds)]
        case = cases_dir / f"case{i:04d}{seed.suffix}"
        case.write_bytes(mutate(seed.read_bytes(), rng))
        target = out / "outputs" / f"case{i:04d}.mp4"
        target.parent.mkdir(exist_ok=True)
        results.append(run_case(case, style, target, args.timeout))
        r = results[-1]
        flag = "HANG" if r.get("hang") else "TRACEBACK" if r.get("traceback") else \
            "UNPLAYABLE" if r.get("unplayable") else f"exit {r['exit']}"
        print(f"{case.name}: {flag}", flush=True)
    summary = {"files": len(results), "tracebacks": sum(bool(r.get("traceback")) for r in results),
               "hangs": sum(bool(r.get("hang")) for r in results),
               "unplayable_outputs": sum(bool(r.get("unplayable")) for r in results),
               "exit_0": sum(r.get("exit") == 0 for r in results), "exit_2": sum(r.get("exit") == 2 for r in results),
               "outputs_written": sum(bool(r.get("output")) for r in results)}
    (out / "report.json").write_text(json.dumps({"summary": summary, "cases": results}, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
