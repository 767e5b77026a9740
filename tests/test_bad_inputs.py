"""Every bad input and fault a user or an attacker tried (issue 20): one line on stderr, exit 2,
no traceback or warning, inputs untouched, and nothing at the output's name unless it plays.

The commands run in this process (``realtime.cli.main``) so the corpus stays fast; the signal
and kill cases, which need a process of their own, are in test_kill.py.
"""

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_clip, make_pcm_clip, pattern, probe
from realtime import cli


@pytest.fixture
def world(tmp_path, tiny_model_path, style_image, monkeypatch):
    """A clip, a picture, a style and the tiny model; signal handlers are left alone in-process."""
    monkeypatch.setattr(cli, "_install_signals", lambda: None)
    clip = make_clip(tmp_path / "clip.mp4", frames=6, size=(64, 48), audio=True)
    picture = tmp_path / "a.png"
    Image.fromarray(pattern(48, 64, 3)).save(picture)
    return {"dir": tmp_path, "clip": clip, "picture": picture, "style": style_image, "model": tiny_model_path}


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def fails_in_one_line(capsys, *argv, match: str, untouched=(), absent=()) -> str:
    before = {p: sha(p) for p in untouched}
    try:
        code, _, err = run(capsys, *argv)
    except SystemExit as e:  # argparse's own exit (usage errors)
        code, err = e.code, capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and "Warning" not in err, err
    assert match.lower() in lines[0].lower(), lines[0]
    assert {p: sha(p) for p in untouched} == before
    for path in absent:
        assert not Path(path).exists(), f"{path} was left behind"
    return lines[0]


def video(w, *extra):
    return ("video", w["clip"], "--style", w["style"], "--model", w["model"], *extra)


def webcam(w, *extra):
    return ("webcam", "--camera", w["clip"], "--style", w["style"], "--model", w["model"], *extra)


def image(w, *extra):
    return ("image", w["picture"], "--style", w["style"], "--model", w["model"], *extra)


# --- 1. files destroyed -----------------------------------------------------------------------
def test_webcam_output_may_not_be_its_own_input(world, capsys):
    fails_in_one_line(capsys, *webcam(world, "--output", world["clip"], "--duration", "1"), match="is the input",
                      untouched=[world["clip"], world["style"]])


def test_webcam_output_may_not_be_its_own_input_through_a_link(world, capsys):
    link = world["dir"] / "link.mp4"
    os.link(world["clip"], link)
    fails_in_one_line(capsys, *webcam(world, "--output", link, "--duration", "1"), match="is the input",
                      untouched=[world["clip"]])


def test_webcam_keeps_an_existing_output_without_overwrite(world, capsys):
    existing = world["dir"] / "rec.mp4"
    existing.write_bytes(b"precious")
    fails_in_one_line(capsys, *webcam(world, "--output", existing, "--duration", "1"), match="exists",
                      untouched=[existing])


@pytest.mark.parametrize("target", ["picture", "style"])
def test_image_output_may_not_be_an_input(world, capsys, target):
    fails_in_one_line(capsys, *image(world, "-o", world[target], "--overwrite"), match="input",
                      untouched=[world["picture"], world["style"]])


def test_a_failed_overwrite_keeps_the_previous_good_file(world, capsys):
    good = world["dir"] / "out.mp4"
    assert run(capsys, *video(world, "-o", good, "--quiet"))[0] == 0
    before = sha(good)
    empty = world["dir"] / "empty.mkv"
    _video_without_frames(empty)
    fails_in_one_line(capsys, "video", empty, "--style", world["style"], "--model", world["model"], "-o", good,
                      "--overwrite", "--quiet", match="no frame")
    assert sha(good) == before and probe(good)["frames"] == 6


# --- 3. tracebacks ----------------------------------------------------------------------------
@pytest.mark.parametrize("weights, match", [(["-1"], "negative"), (["0"], "all 0"), (["0", "0"], "all 0"),
                                            (["nan"], "finite"), (["inf"], "finite"), (["x"], "number")])
def test_style_weights_are_checked(world, capsys, weights, match):
    styles = ["--style", world["style"]] * len(weights)
    fails_in_one_line(capsys, "video", world["clip"], *styles, "--style-weights", *weights, "--model", world["model"],
                      match=match)


def test_webcam_mixes_two_styles_with_weights(world, capsys, tmp_path):
    second = tmp_path / "b.png"
    Image.fromarray(pattern(64, 64, 9)).save(second)
    code, out, err = run(capsys, *webcam(world, "--style", second, "--style-weights", "1", "3", "--output",
                                         tmp_path / "rec.mp4", "--duration", "1.5"))
    assert code == 0, err
    assert '"styles": [' in out and second.name in out and "Traceback" not in err


def test_tiny_video_with_smoothing_plays(world, capsys, tmp_path):
    tiny = make_clip(tmp_path / "tiny.mp4", frames=5, size=(10, 8), audio=False)
    out = tmp_path / "tiny_out.mp4"
    code, _, err = run(capsys, "video", tiny, "--style", world["style"], "--model", world["model"], "-o", out,
                       "--quiet")
    assert code == 0, err
    assert probe(out)["frames"] == 5


@pytest.mark.parametrize("flag, value, match", [("--max-size", "8", "at least 16"), ("--alpha", "nan", "finite"),
                                                ("--temporal-strength", "1", "below 1")])
def test_settings_out_of_range(world, capsys, flag, value, match):
    fails_in_one_line(capsys, *video(world, flag, value), match=match)


def test_cuda_without_a_gpu(world, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    fails_in_one_line(capsys, *video(world, "--device", "cuda", "-o", world["dir"] / "o.mp4"), match="no CUDA GPU",
                      absent=[world["dir"] / "o.mp4"])


def test_huge_picture(world, capsys, tmp_path):
    big = tmp_path / "big.png"
    Image.MAX_IMAGE_PIXELS, limit = None, Image.MAX_IMAGE_PIXELS
    try:
        Image.new("L", (20000, 10000)).save(big)  # 200 MP, a few hundred KB of PNG
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    fails_in_one_line(capsys, "image", big, "--style", world["style"], "--model", world["model"], "-o",
                      tmp_path / "o.png", match="megapixels", absent=[tmp_path / "o.png"])


def test_colour_match_with_a_one_pixel_style(world, capsys, tmp_path):
    dot = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (200, 40, 40)).save(dot)
    out = tmp_path / "o.png"
    code, _, err = run(capsys, "image", world["picture"], "--style", dot, "--model", world["model"],
                       "--preserve-color", "match", "-o", out)
    assert code == 0 and err == "", err
    assert np.isfinite(np.asarray(Image.open(out), dtype=float)).all()


@pytest.mark.parametrize("flag, value, match", [("--fps", "nan", "finite"), ("--fps", "-5", "above 0"),
                                                ("--duration", "nan", "finite"), ("--duration", "0", "above 0"),
                                                ("--duration", "-1", "above 0")])
def test_webcam_rates_and_durations(world, capsys, flag, value, match):
    fails_in_one_line(capsys, *webcam(world, "--output", world["dir"] / "r.mp4", flag, value), match=match)


def test_malformed_model_metadata(world, capsys, tmp_path):
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(world["model"])), str(bad), metadata={"format": "realtime-style-student",
                                                                  "student": "{not json"})
    fails_in_one_line(capsys, "video", world["clip"], "--style", world["style"], "--model", bad, match="metadata")


def test_model_with_nan_weights(world, capsys, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(world["model"]), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(world["model"]))
    first = next(k for k in tensors if k.endswith("weight"))
    tensors[first][0] = math.nan
    bad = tmp_path / "nan.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    fails_in_one_line(capsys, "video", world["clip"], "--style", world["style"], "--model", bad, "-o",
                      tmp_path / "o.mp4", match="NaN", absent=[tmp_path / "o.mp4"])


def test_cache_dir_that_is_a_file(world, capsys, tmp_path):
    afile = tmp_path / "cache"
    afile.write_text("x")
    fails_in_one_line(capsys, *video(world, "--backend", "onnxruntime", "--cache-dir", afile), match="is a file")


def test_video_stream_without_frames(world, capsys, tmp_path):
    empty = tmp_path / "empty.mkv"
    _video_without_frames(empty)
    out = tmp_path / "o.mp4"
    fails_in_one_line(capsys, "video", empty, "--style", world["style"], "--model", world["model"], "-o", out,
                      match="no frame", absent=[out])


def _video_without_frames(path: Path) -> None:
    """A file with a video stream that holds no frame (and a little audio, so it is written)."""
    import av

    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=44100)
        a.layout = "mono"
        tone = np.zeros((1, 1024), np.float32)
        for k in range(4):
            af = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
            af.sample_rate, af.pts = 44100, 1024 * k
            c.mux(a.encode(af))
        c.mux(a.encode(None))


# --- 6. unclear messages ------------------------------------------------------------------------
def test_output_in_a_folder_that_is_missing_or_is_a_folder(world, capsys, tmp_path):
    fails_in_one_line(capsys, *video(world, "-o", tmp_path / "nope" / "o.mp4"), match="does not exist")
    (tmp_path / "d.mp4").mkdir()
    fails_in_one_line(capsys, *video(world, "-o", tmp_path / "d.mp4"), match="is a folder")


def test_random_bytes_are_not_called_truncated(world, capsys, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    line = fails_in_one_line(capsys, "video", junk, "--style", world["style"], "--model", world["model"],
                             match="not a video", untouched=[junk])
    assert "truncated" not in line


def test_a_fifo_is_refused_at_once(world, capsys, tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    fails_in_one_line(capsys, "video", fifo, "--style", world["style"], "--model", world["model"],
                      match="not a regular file")


def test_empty_style_folder(world, capsys, tmp_path):
    (tmp_path / "styles").mkdir()
    fails_in_one_line(capsys, "webcam", "--camera", world["clip"], "--style", tmp_path / "styles", "--model",
                      world["model"], "--output", tmp_path / "r.mp4", match="no pictures")


def test_192_khz_audio_is_resampled_for_aac(world, capsys, tmp_path):
    src = make_pcm_clip(tmp_path / "hires.mkv", frames=12, size=(64, 48), rate=24, audio_rate=192000, channels=2,
                        seconds=0.5)
    out = tmp_path / "o.mp4"
    code, _, err = run(capsys, "video", src, "--style", world["style"], "--model", world["model"], "-o", out,
                       "--quiet")
    assert code == 0, err
    info = probe(out)
    assert info["frames"] == 12 and info["audio"] == pytest.approx(0.5, abs=0.1)


def test_audio_outlasting_a_vfr_video_is_not_truncation(world, capsys, tmp_path):
    src = make_clip(tmp_path / "vfr.mkv", frames=12, size=(64, 48), audio=True, audio_seconds=3.0)
    code, _, err = run(capsys, "video", src, "--style", world["style"], "--model", world["model"], "-o",
                       tmp_path / "o.mkv", "--quiet")
    assert code == 0 and "truncated" not in err, err


# --- 7. rough edges ---------------------------------------------------------------------------
def test_image_is_quiet_and_writes_beside_its_input(world, capsys):
    code, out, err = run(capsys, *image(world))
    assert code == 0 and err == "", err
    assert (world["dir"] / "a_stylized.png").exists() and "a_stylized.png" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and "realtime-style" in capsys.readouterr().out


def test_json_summary_names_model_backend_and_style(world, capsys, tmp_path):
    import json

    code, out, err = run(capsys, *video(world, "-o", tmp_path / "o.mp4", "--json"))
    assert code == 0, err
    settings = json.loads(out)["settings"]
    assert settings["model"] == Path(world["model"]).stem and settings["backend"] and settings["styles"]
    assert "clip.mp4" in err  # progress still shows (on stderr)


def test_every_option_has_help():
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if isinstance(a, type(parser._subparsers._group_actions[0])))
    for name, sub in subs.choices.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"stylize {name} {action.option_strings[0]} has no help"
