"""Killed runs never leave an unplayable file under the output's name, and a rerun completes.

SIGTERM and SIGHUP finalise like Ctrl-C (a playable file up to the last frame); SIGKILL and a
file-size limit leave nothing at the final name (the hidden temporary file is replaced by the
next run); two runs on one output: the second is refused at once.
"""

import signal
import subprocess
import sys
import time

import pytest

from conftest import make_clip, probe

pytestmark = pytest.mark.slow


def _start(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "realtime", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)


def _video_args(clip, out, model, style, *extra):
    return ["video", clip, "--style", style, "--model", model, "-o", out, *extra]


def _wait_for_progress(proc, out, timeout=60.0):
    """Until the run has written frames to its temporary file (or ended)."""
    temp = out.with_name(f".{out.stem}.partial{out.suffix}")
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and proc.poll() is None:
        if temp.exists() and temp.stat().st_size > 2000:
            return
        time.sleep(0.05)


def _long_clip(tmp_path):
    # large enough that no machine finishes it before the signal arrives
    return make_clip(tmp_path / "long.mp4", frames=400, size=(320, 240), audio=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_finalise_a_playable_file(tmp_path, tiny_model_path, style_image, sig):
    clip, out = _long_clip(tmp_path), tmp_path / "out.mp4"
    proc = _start(_video_args(clip, out, tiny_model_path, style_image))
    _wait_for_progress(proc, out)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    frames = probe(out)["frames"]
    assert 0 < frames < 400
    assert not list(tmp_path.glob(".*partial*"))


def test_sigkill_leaves_nothing_at_the_final_name_and_a_rerun_completes(tmp_path, tiny_model_path, style_image):
    clip, out = _long_clip(tmp_path), tmp_path / "out.mp4"
    proc = _start(_video_args(clip, out, tiny_model_path, style_image))
    _wait_for_progress(proc, out)
    proc.kill()
    proc.communicate(timeout=30)
    assert not out.exists()
    assert list(tmp_path.glob(".out.partial.mp4"))  # the hidden temporary file the next run replaces
    short = make_clip(tmp_path / "short.mp4", frames=12, size=(64, 48), audio=True)
    rerun = subprocess.run([sys.executable, "-m", "realtime", *map(str, _video_args(short, out, tiny_model_path,
                                                                                 style_image, "--quiet"))],
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert probe(out)["frames"] == 12 and not list(tmp_path.glob(".out.partial.mp4"))


def test_file_size_limit_leaves_nothing_and_says_so(tmp_path, tiny_model_path, style_image):
    import resource

    clip, out = _long_clip(tmp_path), tmp_path / "out.mp4"

    def limit():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))  # `ulimit -f 64`

    proc = subprocess.run([sys.executable, "-m", "realtime", *map(str, _video_args(clip, out, tiny_model_path,
                                                                                   style_image, "--quiet"))],
                          capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "disk is full or a file-size limit" in lines[0], proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.partial.mp4"))


def test_a_second_run_on_the_same_output_is_refused(tmp_path, tiny_model_path, style_image):
    # long enough that the first run is still writing when the second one has started up
    clip = make_clip(tmp_path / "longer.mp4", frames=2400, size=(320, 240), audio=False)
    out = tmp_path / "out.mp4"
    first = _start(_video_args(clip, out, tiny_model_path, style_image))
    try:
        _wait_for_progress(first, out)
        second = subprocess.run([sys.executable, "-m", "realtime",
                                 *map(str, _video_args(clip, out, tiny_model_path, style_image, "--overwrite"))],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert "another run is writing" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert probe(out)["frames"] > 0  # the first run's file, whole


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_webcam_recording_killed(tmp_path, tiny_model_path, style_image, sig):
    clip, rec = make_clip(tmp_path / "c.mp4", frames=48, size=(64, 48), audio=False), tmp_path / "rec.mp4"
    proc = _start(["webcam", "--camera", clip, "--loop", "--style", style_image, "--model", tiny_model_path,
                   "--output", rec])
    seen = []
    while not (seen and seen[-1].startswith("live:")):
        line = proc.stderr.readline()
        assert line, "".join(seen)
        seen.append(line)
    time.sleep(2)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    if sig == signal.SIGKILL:
        assert not rec.exists()
    else:
        assert proc.returncode == 0
        assert probe(rec)["frames"] > 5
    rerun = subprocess.run([sys.executable, "-m", "realtime", "webcam", "--camera", str(clip), "--style",
                            str(style_image), "--model", str(tiny_model_path), "--output", str(rec), "--overwrite",
                            "--duration", "1.5"], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert probe(rec)["frames"] > 5
