"""Scale-out (issue 22): chunked long videos on local workers or Ray, resumable, seamless; batches.

Clips are made here: a 29.97 fps clip with B-frames, a 1 s GOP and AAC; a variable-rate .mkv;
a file with a single keyframe. Chunked output must equal the input in frame count, timestamps,
duration and audio packets (byte for byte), and play.
"""

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import make_clip, pattern, probe

pytestmark = pytest.mark.slow
NTSC = Fraction(30000, 1001)


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "realtime", *map(str, args)], capture_output=True, text=True,
                          timeout=600, **kw)


def _audio_packets(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def _clips(tmp_path: Path) -> dict[str, Path]:
    return {
        "ntsc_bframes_gop": make_clip(tmp_path / "ntsc.mp4", frames=150, size=(640, 360), rate=NTSC, audio=True,
                                      x264={"g": "30", "bf": "2", "keyint_min": "30"}),
        "vfr": make_clip(tmp_path / "vfr.mkv", frames=90, size=(160, 96), rate=30, audio=True,
                         pts=[int(round(i * 1.37)) + (i // 17) * 3 for i in range(90)], time_base=Fraction(1, 30)),
        "one_keyframe": make_clip(tmp_path / "onekey.mp4", frames=120, size=(160, 96), rate=24, audio=True,
                                  x264={"g": "1000", "keyint_min": "1000", "sc_threshold": "0"}),
    }


@pytest.mark.parametrize("name", ["ntsc_bframes_gop", "vfr", "one_keyframe"])
def test_chunked_output_matches_the_input(tmp_path, tiny_model_path, style_image, name):
    clip = _clips(tmp_path)[name]
    out = tmp_path / f"out{clip.suffix}"
    proc = _cli("video", clip, "--style", style_image, "--model", tiny_model_path, "-o", out, "--workers", "2",
                "--chunk-seconds", "2", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert len(summary["settings"]["chunks"]) >= 2
    a, b = probe(clip), probe(out)
    assert b["frames"] == a["frames"]
    assert b["pts"] == pytest.approx(a["pts"], abs=1e-3)  # the input's timestamps, each one
    assert b["audio"] == pytest.approx(a["audio"], abs=1e-3)
    assert _audio_packets(out) == _audio_packets(clip)  # copied once, byte for byte
    assert not (tmp_path / f"out{clip.suffix}.parts").exists()
    import av

    with av.open(str(out)) as c:  # the parts' B-frame delays line up: decode order runs on across the seams
        dts = [p.dts for p in c.demux(video=0) if p.size and p.dts is not None]  # Matroska keeps few
    assert all(b > a for a, b in zip(dts, dts[1:]))
    if name == "one_keyframe":
        from realtime.chunks import probe_packets

        assert len(probe_packets(clip).keyframes) == 1


def test_chunk_starts_snap_to_keyframes(tmp_path):
    from realtime.chunks import plan_chunks, probe_packets

    index = probe_packets(_clips(tmp_path)["ntsc_bframes_gop"])
    chunks = plan_chunks(index, 2.0, warmup=10)
    assert sum(c.frames for c in chunks) == len(index.pts)
    assert all(c.start in index.keyframes for c in chunks)
    assert all(c.seek <= c.warmup_from <= c.start for c in chunks)


def test_chunk_starts_snap_to_scene_cuts_before_keyframes(tmp_path):
    """A clip with a keyframe every second and a scene cut between two of them: the seam near
    the cut goes to the cut (where the picture changes anyway), the others to keyframes; the
    cut scan finds what the temporal smoother finds."""
    import av

    from realtime.chunks import plan_chunks, probe_packets, scan_cuts
    from realtime.media import MediaInput
    from realtime.temporal import TemporalSmoother

    clip = tmp_path / "cut.mp4"
    with av.open(str(clip), "w") as c:
        v = c.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = 160, 96, "yuv420p"
        v.options = {"g": "24", "keyint_min": "24", "sc_threshold": "0", "bf": "2"}
        yy, xx = np.mgrid[0:96, 0:160]
        for i in range(120):  # a slowly drifting gradient, then another scene (dark, the other way)
            ramp = ((xx + i) * 1.5 % 256) if i < 40 else (60 + (yy + i) % 40)
            rgb = np.repeat(ramp[..., None], 3, axis=2).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode(None))
    index = probe_packets(clip)
    cuts = scan_cuts(clip)
    smoother, seen = TemporalSmoother(), []
    with MediaInput(clip) as media:
        for frame in media.frames():
            if smoother.begin(frame.rgb):
                seen.append(frame.pts)
    assert cuts == seen == [index.pts[40]]
    assert index.pts[40] not in index.keyframes
    chunks = plan_chunks(index, 2.0, warmup=10, cuts=tuple(cuts))
    assert [c.start for c in chunks[:2]] == [index.pts[0], index.pts[40]]  # the cut
    assert len(chunks) == 3 and chunks[2].start in index.keyframes  # 2 s on: the keyframe nearest frame 88
    assert abs(index.pts.index(chunks[2].start) - 88) <= 12
    assert [c.at_cut for c in chunks] == [False, True, False]
    assert sum(c.frames for c in chunks) == len(index.pts)
    assert all(c.seek in index.keyframes and c.seek <= c.warmup_from <= c.start for c in chunks)
    assert plan_chunks(index, 2.0, warmup=10)[1].start in index.keyframes  # no cuts given: a keyframe


def _seam_errors(frames, outputs, starts):
    from realtime.tools.temporal_eval import FlowField, pair_error

    flow = FlowField()
    errs = {}
    for t in range(1, len(frames)):
        errs[t] = pair_error(outputs[t], outputs[t - 1], *flow(frames[t], frames[t - 1]))
    return {t: errs[t] for t in starts}, np.percentile(list(errs.values()), 95), errs


def test_warmup_makes_seams_as_smooth_as_one_process(tmp_path, default_model, style_image):
    """The warping error at each seam, before encoding: with warm-up within 1.2x of the single
    process at the same frame and under the within-chunk 95th percentile; without, larger."""
    from realtime.chunks import ChunkTask, plan_chunks, probe_packets, run_chunk
    from realtime.stylizer import Stylizer

    frames_n = 72
    clip = make_clip(tmp_path / "pan.mp4", frames=frames_n, size=(192, 128), rate=24, audio=False,
                     x264={"g": "24", "keyint_min": "24"})
    from realtime.media import MediaInput

    with MediaInput(clip) as m:
        frames = [f.rgb for f in m.frames()]
    s = Stylizer(default_model, device="cpu", backend="torch", temporal=True)
    s.set_style(style_image)
    single = [s.stylize(f) for f in frames]
    index = probe_packets(clip)
    results = {}
    for warmup in (15, 0):
        parts = tmp_path / f"parts{warmup}"
        parts.mkdir()
        chunks = plan_chunks(index, 1.0, warmup=warmup)
        seq: list = [None] * frames_n
        for c in chunks:
            made = []

            def keep(rgb, made=made):
                out = s.stylize(rgb)
                made.append(out)
                return out

            run_chunk(ChunkTask(str(clip), str(parts), c), keep, s.reset)
            first = index.pts.index(c.start)
            seq[first:first + c.frames] = made[-c.frames:]  # the frames written, after the warm-up
        starts = [index.pts.index(c.start) for c in chunks[1:]]
        results[warmup] = _seam_errors(frames, seq, starts)
    _, _, single_errs = _seam_errors(frames, single, [])
    seams, p95, _ = results[15]
    for t, err in seams.items():
        assert err <= 1.2 * single_errs[t] + 1e-4, (t, err, single_errs[t])
        assert err <= p95, (t, err, p95)
    cold = results[0][0]
    assert np.mean(list(cold.values())) > np.mean(list(seams.values()))


def _pids_holding(path_fragment: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(path_fragment in os.readlink(fd) for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _writing_a_part(pid: int) -> bool:
    try:
        return any(".partial" in os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir() if _safe_link(fd))
    except OSError:  # the process is gone
        return False


def _kill_a_worker_mid_chunk(parts: Path, command: int, timeout=120.0) -> int:
    """SIGKILL a worker (never the command's own process) while it is writing a part. It is
    stopped first and checked again, so the kill cannot land after it finished that part (a
    loaded machine made that race real)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        for pid in [p for p in _pids_holding(str(parts)) if p not in (os.getpid(), command)]:
            if not _writing_a_part(pid):
                continue
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                continue
            if _writing_a_part(pid):  # frozen mid-part: the kill interrupts this chunk
                os.kill(pid, signal.SIGKILL)
                return pid
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.02)
    raise AssertionError("no worker was seen writing a part")


def _safe_link(fd: Path) -> bool:
    try:
        os.readlink(fd)
        return True
    except OSError:
        return False


def _long_clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "long.mp4", frames=240, size=(320, 192), rate=24, audio=True,
                     x264={"g": "24", "keyint_min": "24"})


def test_local_pool_killed_worker_then_rerun_does_only_the_rest(tmp_path, tiny_model_path, style_image):
    clip, out = _long_clip(tmp_path), tmp_path / "out.mp4"
    args = ["video", clip, "--style", style_image, "--model", tiny_model_path, "-o", out, "--workers", "2",
            "--chunk-seconds", "2", "--quiet", "--json"]
    proc = subprocess.Popen([sys.executable, "-m", "realtime", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    parts = tmp_path / "out.mp4.parts"
    t0 = time.monotonic()
    while not list(parts.glob("part-*.mp4.json")) and time.monotonic() - t0 < 120:
        time.sleep(0.02)  # one part finished, then a worker dies inside the next
    _kill_a_worker_mid_chunk(parts, proc.pid)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "worker process died" in err and "run the same command again" in err, err
    assert not out.exists()
    done_before = len(list(parts.glob("part-*.mp4.json")))
    rerun = _cli(*[a for a in args if a != "--quiet"])  # with the progress bar on stderr
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    total = len(summary["settings"]["chunks"])
    assert summary["settings"]["chunks_run"] == total - done_before < total
    assert f"| chunks {done_before}/{total}" in rerun.stderr and f"| chunks {total}/{total}" in rerun.stderr
    assert probe(out)["frames"] == 240


def test_killed_command_rerun_redoes_only_unfinished_parts(tmp_path, tiny_model_path, style_image):
    clip, out = _long_clip(tmp_path), tmp_path / "out.mp4"
    args = ["video", clip, "--style", style_image, "--model", tiny_model_path, "-o", out, "--workers", "2",
            "--chunk-seconds", "1", "--quiet", "--json"]
    proc = subprocess.Popen([sys.executable, "-m", "realtime", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    parts = tmp_path / "out.mp4.parts"
    t0 = time.monotonic()
    while len(list(parts.glob("part-*.mp4.json"))) < 2 and time.monotonic() - t0 < 120:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the command and its workers
    proc.communicate(timeout=60)
    done = {p.name for p in parts.glob("part-*.mp4.json")}
    assert done and not out.exists()
    rerun = _cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["settings"]["chunks_run"] <= len(summary["settings"]["chunks"]) - len(done)
    assert probe(out)["frames"] == 240


def _decoded(path: Path) -> list[np.ndarray]:
    from realtime.media import MediaInput

    with MediaInput(path) as m:
        return [f.rgb for f in m.frames()]


def test_ray_retries_a_killed_workers_chunk(tmp_path, tiny_model_path, style_image):
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    clip = _long_clip(tmp_path)
    base = ["video", clip, "--style", style_image, "--model", tiny_model_path, "--workers", "2",
            "--chunk-seconds", "2", "--quiet", "--json", "--cluster", "auto", "--deterministic", "--backend", "torch"]
    clean = _cli(*base, "-o", tmp_path / "clean.mp4")
    assert clean.returncode == 0, clean.stderr
    proc = subprocess.Popen([sys.executable, "-m", "realtime", *map(str, base), "-o", str(tmp_path / "killed.mp4")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _kill_a_worker_mid_chunk(tmp_path / "killed.mp4.parts", proc.pid, timeout=300)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    killed = json.loads(out)
    assert "retries" in json.dumps(killed["warnings"]), (killed["warnings"], err[-3000:])  # Ray's own words if not
    # the frames before encoding, chunk by chunk: the retried chunk painted exactly what it would have
    digests = [[c["frames_sha256"] for c in json.loads(run)["settings"]["chunks"]] for run in (clean.stdout, out)]
    assert digests[0] == digests[1]
    assert len(_decoded(tmp_path / "killed.mp4")) == 240
    assert _video_packets(tmp_path / "killed.mp4") == _video_packets(tmp_path / "clean.mp4")  # --deterministic


def _video_packets(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(video=0) if p.size]


def test_batch_of_videos_and_pictures_with_bad_files(tmp_path, tiny_model_path, style_image):
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        make_clip(src / f"v{i}.mp4", frames=8 + i, size=(64, 48), audio=i % 2 == 0)
        Image.fromarray(pattern(48, 64, i)).save(src / f"p{i}.png")
    (src / "corrupt.mp4").write_bytes(os.urandom(4000))
    (src / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")  # unreadable: a link to nothing
    out = tmp_path / "out"
    first = _cli("batch", src, "--style", style_image, "--model", tiny_model_path, "-o", out, "--quiet")
    assert first.returncode == 1
    assert "10 done, 0 already complete, 2 failed" in first.stdout
    assert "corrupt.mp4" in first.stdout and "gone.mp4" in first.stdout and "Traceback" not in first.stderr
    assert len([p for p in out.iterdir() if not p.name.startswith(".")]) == 10
    for i in range(5):
        assert probe(out / f"v{i}.mp4")["frames"] == 8 + i
    stamps = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    again = _cli("batch", src, "--style", style_image, "--model", tiny_model_path, "-o", out, "--quiet")
    assert again.returncode == 1 and "0 done, 10 already complete, 2 failed" in again.stdout
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if not p.name.startswith("."))


def test_batch_of_pictures_on_ray_data(tmp_path, tiny_model_path, style_image):
    pytest.importorskip("ray.data", reason="the [ray] extra is not installed")
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(pattern(48, 64, i)).save(src / f"p{i}.png")
    (src / "broken.png").write_bytes(b"not a picture")
    out = tmp_path / "out"
    proc = _cli("batch", src, "--style", style_image, "--model", tiny_model_path, "-o", out, "--quiet",
                "--cluster", "auto", "--workers", "2", "--backend", "torch", "--json")
    assert proc.returncode == 1, proc.stderr
    items = {Path(it["input"]).name: it for it in json.loads(proc.stdout)["items"]}
    assert [items[f"p{i}.png"]["status"] for i in range(3)] == ["done"] * 3
    assert items["broken.png"]["status"] == "failed" and "picture" in items["broken.png"]["message"]
    for i in range(3):
        assert np.asarray(Image.open(out / f"p{i}.png")).shape == (48, 64, 3)


@pytest.mark.slow
def test_ray_batch_of_videos_reuses_its_workers(tmp_path, tiny_model_path, style_image):
    """The videos of a batch on Ray share the actors (each builds its Stylizer once): every chunk of
    both videos ran in one of the two worker processes, and both outputs are whole."""
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b"):
        make_clip(src / f"{name}.mp4", frames=72, size=(160, 96), rate=24, audio=True, x264={"g": "24"})
    out = tmp_path / "out"
    proc = _cli("batch", src, "--style", style_image, "--model", tiny_model_path, "-o", out, "--quiet",
                "--cluster", "auto", "--workers", "2", "--chunk-seconds", "1", "--backend", "torch", "--json")
    assert proc.returncode == 0, proc.stderr
    items = json.loads(proc.stdout)["items"]
    chunks = [c for it in items for c in it["chunks"]]
    assert len(items) == 2 and len(chunks) >= 6
    assert len({c["worker_pid"] for c in chunks}) <= 2
    assert all(probe(out / f"{name}.mp4")["frames"] == 72 for name in ("a", "b"))
