"""The commands as a user runs them: exit codes, one-line errors, outputs on disk."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import make_clip, probe


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "realtime", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def run_video(*args):
    code = "import sys; from realtime.cli import stylize_video_main; sys.exit(stylize_video_main())"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300)


def one_line_error(proc):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.mark.slow
def test_stylize_video_end_to_end(tmp_path, tiny_model_path, style_image):
    src = make_clip(tmp_path / "in.mp4", frames=12, size=(48, 32))
    proc = run_video(src, "--style", style_image, "--model", tiny_model_path, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["frames"] == 12 and summary["output"].endswith("in_stylized.mp4")
    assert probe(tmp_path / "in_stylized.mp4")["frames"] == 12
    again = run_video(src, "--style", style_image, "--model", tiny_model_path)
    assert "--overwrite" in one_line_error(again)
    mixed = run_video(src, "--style", style_image, "--style", style_image, "--style-weights", "1", "3",
                      "--model", tiny_model_path, "-o", tmp_path / "mix.mkv", "--alpha", "0.5", "--quiet")
    assert mixed.returncode == 0 and "12 frames" in mixed.stdout


@pytest.mark.slow
def test_bad_inputs(tmp_path, tiny_model_path, style_image):
    src = make_clip(tmp_path / "in.mp4", frames=3, audio=False)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert "not found" in one_line_error(run_video(tmp_path / "none.mp4", "--style", style_image))
    assert "not a video" in one_line_error(run_video(notes, "--style", style_image))
    err = one_line_error(run_video(src, "--style", notes, "--model", tiny_model_path))
    assert "not an image" in err
    err = one_line_error(run_video(src, "--style", style_image, "--model", "no-such-model"))
    assert "known models" in err and "lite" in err
    err = one_line_error(run_video(src, "--style", style_image, "--model", tiny_model_path, "-o", tmp_path / "x" / "o.mp4"))
    assert "does not exist" in err
    usage = run_video(src, "--style", style_image, "--style-weights", "1", "2")
    assert usage.returncode == 2 and "--style-weights" in usage.stderr
    assert run_video(src, "--style", style_image, "--alpha", "3").returncode == 2


@pytest.mark.slow
def test_image_batch_skips_bad_files(tmp_path, tiny_model_path, style_image):
    contents, styles = tmp_path / "c", tmp_path / "s"
    contents.mkdir(), styles.mkdir()
    for i in range(2):
        Image.fromarray((np.random.default_rng(i).random((30 + i, 41, 3)) * 255).astype(np.uint8)).save(contents / f"p{i}.png")
    (contents / "broken.jpg").write_text("not a picture")
    Image.open(style_image).save(styles / "a.png")
    Image.open(style_image).convert("L").save(styles / "b.jpg")
    out = tmp_path / "out"
    proc = run("image", contents, "--style", styles, "-o", out, "--model", tiny_model_path)
    assert proc.returncode == 1
    assert "broken.jpg" in proc.stderr and "4 written, 2 skipped" in proc.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["p0__a.png", "p0__b.png", "p1__a.png", "p1__b.png"]
    assert Image.open(out / "p1__b.png").size == (41, 31)
    single = run("image", contents / "p0.png", "--style", style_image, "-o", tmp_path / "one.jpg",
                 "--model", tiny_model_path)
    assert single.returncode == 0 and (tmp_path / "one.jpg").exists()


def test_models_and_doctor():
    listed = run("models", "list")
    assert listed.returncode == 0 and "swift (default)" in listed.stdout and "bundled" in listed.stdout
    assert "adain-vgg19" in listed.stdout
    doctor = run("doctor")
    assert doctor.returncode == 0 and "libx264 encode" in doctor.stdout and "torch" in doctor.stdout
    verify = run("models", "verify", "swift")
    assert verify.returncode == 0 and "bundled" in verify.stdout and "swift int8 graphs (bundled): ok" in verify.stdout
    assert "known models" in one_line_error(run("models", "pull", "nope"))


@pytest.mark.slow
def test_ctrl_c_finalises_a_playable_file(tmp_path, tiny_model_path, style_image):
    import signal
    import time

    src = make_clip(tmp_path / "long.mp4", frames=400, size=(320, 240), audio=True)
    out = tmp_path / "out.mp4"
    code = "import sys; from realtime.cli import stylize_video_main; sys.exit(stylize_video_main())"
    proc = subprocess.Popen([sys.executable, "-c", code, str(src), "--style", str(style_image), "--model",
                             str(tiny_model_path), "-o", str(out), "--backend", "torch"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a runner started in the background passes SIGINT on as ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = proc.stderr.readline()  # the progress line of the first frame
    assert "/400" in first, first
    time.sleep(0.5)  # a few more frames; the whole clip takes 10 s or more even on an idle machine
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    info = probe(out)
    assert 0 < info["frames"] < 400 and info["audio"] is not None
    assert src.stat().st_size > 0


def test_truncated_clip_says_how_much_was_kept(tmp_path, tiny_model_path, style_image):
    src = make_clip(tmp_path / "in.mkv", frames=60, size=(64, 48), audio=False)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(src.read_bytes()[: int(src.stat().st_size * 0.6)])
    proc = run_video(cut, "--style", style_image, "--model", tiny_model_path, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "warning: decoding stopped after" in proc.stderr and "(incomplete)" in proc.stdout


def test_unwritable_output_folder(tmp_path, monkeypatch):
    import os

    from realtime.errors import OutputError
    from realtime.outputs import check_target

    src = make_clip(tmp_path / "in.mp4", frames=2, audio=False)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode & os.W_OK else real_access(p, mode))
    with pytest.raises(OutputError, match="not writable"):
        check_target(tmp_path / "o.mp4", [src], overwrite=False)


def test_cli_temporal_strength_default_is_the_librarys():
    from realtime import cli
    from realtime.temporal import DEFAULT_STRENGTH, TemporalConfig

    assert cli.TEMPORAL_STRENGTH == DEFAULT_STRENGTH == TemporalConfig().strength
    for command in (["video", "in.mp4", "--style", "s.jpg"], ["webcam", "--style", "s.jpg"]):
        assert cli.build_parser().parse_args(command).temporal_strength == DEFAULT_STRENGTH


@pytest.mark.slow
def test_tools_work_from_an_installed_copy(tmp_path, style_image, teacher_path):
    """`stylize bench` and `stylize eval` from a non-editable install, run outside the checkout:
    nothing may reach for scripts/ or a source tree."""
    import os
    from pathlib import Path

    site = tmp_path / "site"
    repo = Path(__file__).resolve().parents[1]
    build = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(repo)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    assert (site / "realtime" / "tools" / "evaluate.py").exists() and not (site / "scripts").exists()
    data = tmp_path / "data"
    for folder, seed in (("content/eval", 1), ("style/eval", 2)):
        (data / folder).mkdir(parents=True)
        for i in range(2):
            rng = np.random.default_rng(seed * 10 + i)
            Image.fromarray((rng.random((96, 128, 3)) * 255).astype(np.uint8)).save(data / folder / f"p{i}.png")
    (data / "video").mkdir()
    make_clip(data / "video" / "clip.mp4", frames=6, size=(64, 48), audio=False)
    env = {**os.environ, "PYTHONPATH": str(site)}

    def installed(*args):
        proc = subprocess.run([sys.executable, "-m", "realtime", *map(str, args)], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc

    where = subprocess.run([sys.executable, "-c", "import realtime; print(realtime.__file__)"], capture_output=True,
                           text=True, cwd=tmp_path, env=env)
    assert where.stdout.strip().startswith(str(site))
    installed("bench", "--style", style_image, "--sizes", "256x256", "--backend", "torch", "--no-peer",
              "--json", tmp_path / "bench.json")
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert rows and all(r["ms"] > 0 for r in rows)
    installed("eval", "quality", "--teacher", teacher_path, "--data", data, "--contents", "2", "--styles", "2",
              "--size", "128", "--out", tmp_path / "q")
    assert json.loads((tmp_path / "q" / "report.json").read_text())["methods"]["default"]["pairs"] == 4
    installed("eval", "temporal", "--data", data, "--clips", "clip.mp4", "--styles", "1", "--frames", "4",
              "--width", "64", "--out", tmp_path / "t")
    assert (tmp_path / "t" / "report.json").exists()


def test_cli_constants_match_the_library():
    """The CLI writes these out so that --help need not import torch; they must agree."""
    from realtime import cli
    from realtime.backends import BACKENDS
    from realtime.tools.bench import SIZES

    assert tuple(SIZES) == cli.BENCH_SIZES
    assert set(cli.BACKENDS) == {"auto", *BACKENDS}
