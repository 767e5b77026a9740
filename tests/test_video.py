"""Video round trips on clips generated in tmp_path."""

from fractions import Fraction

import numpy as np
import pytest

from conftest import make_clip, make_pcm_clip, pattern, probe
from realtime.errors import BadVideoError, InputNotFoundError, OutputError
from realtime.stylizer import Stylizer
from realtime.jobs import VideoJob


def stylize_video(src, out=None, *, process, overwrite=False, progress=True):
    """One VideoJob with a frame function, as the CLI and the API run it."""
    with VideoJob(src, out, overwrite=overwrite, progress=progress) as job:
        return job.run(process)


@pytest.fixture
def stylizer(tiny_model, style_image):
    s = Stylizer(tiny_model, device="cpu")
    s.set_style(style_image)
    return s


@pytest.mark.parametrize("size", [(64, 48), (51, 37)])
def test_round_trip_keeps_frames_rate_size_and_audio(tmp_path, stylizer, size):
    src = make_clip(tmp_path / "in.mp4", frames=30, size=size, rate=24, audio=True)
    out = tmp_path / "out.mp4"
    summary = stylize_video(src, out, process=stylizer.stylize, progress=False)
    a, b = probe(src), probe(out)
    assert summary.frames == a["frames"] == b["frames"] == 30
    assert (b["width"], b["height"]) == size
    assert b["rate"] == 24
    assert b["pts"] == pytest.approx(a["pts"], abs=1e-6)
    assert a["audio"] is not None and b["audio"] == pytest.approx(a["audio"], abs=0.05)
    assert summary.audio.startswith("copied") and summary.complete
    assert src.stat().st_size > 0  # input untouched


def test_ntsc_rate_and_timestamps_are_kept(tmp_path, stylizer):
    src = make_clip(tmp_path / "in.mp4", frames=20, rate=Fraction(30000, 1001), audio=False)
    out = tmp_path / "out.mkv"
    summary = stylize_video(src, out, process=stylizer.stylize, progress=False)
    b = probe(out)
    assert abs(float(b["rate"]) - 29.97) < 0.01 and summary.audio == "none"
    assert b["pts"] == pytest.approx(probe(src)["pts"], abs=1e-3)


def test_variable_frame_rate_is_kept(tmp_path, stylizer):
    import av

    src = tmp_path / "vfr.mkv"
    times = [0, 1, 2, 5, 6, 12, 13]  # in 1/30 s ticks: irregular gaps
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        v.codec_context.time_base = Fraction(1, 30)
        for i, t in enumerate(times):
            f = av.VideoFrame.from_ndarray(pattern(32, 32, i), format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 30)
            c.mux(v.encode(f))
        c.mux(v.encode(None))
    out = tmp_path / "out.mkv"
    stylize_video(src, out, process=stylizer.stylize, progress=False)
    assert probe(out)["pts"] == pytest.approx([t / 30 for t in times], abs=2e-3)


@pytest.mark.parametrize("size", [(96, 64), (51, 37)])  # yuv420p (OpenCV conversion) and yuv444p (swscale)
def test_colours_survive_the_encoder(tmp_path, size):
    import av

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    frames = [np.stack([128 + 100 * np.sin(xx / 7 + t), 128 + 90 * np.cos(yy / 5), 128 + 80 * np.sin((xx + yy) / 9)],
                       axis=-1).astype(np.uint8) for t in range(6)]  # smooth colours, which 4:2:0 can carry
    src = make_clip(tmp_path / "in.mp4", frames=6, size=size, audio=False)
    out = tmp_path / "out.mp4"
    it = iter(frames)
    stylize_video(src, out, process=lambda f: next(it), progress=False)
    with av.open(str(out)) as c:
        got = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(got) == 6
    for want, have in zip(frames, got):
        diff = np.abs(want.astype(float) - have)
        # 5.4 on the 96x64 clip with either conversion (x264 at crf 18 and 4:2:0); a channel swap is 48
        assert diff.mean() < 7.0
        assert np.abs(want.mean(axis=(0, 1)) - have.mean(axis=(0, 1))).max() < 2.5  # no cast, no range mix-up


def test_rotation_metadata_is_applied(tmp_path):
    src = make_clip(tmp_path / "rot.mp4", frames=4, size=(64, 32), audio=False, rotation=-90)
    out = tmp_path / "out.mp4"
    seen = []

    def identity(frame):
        seen.append(frame)
        return frame

    summary = stylize_video(src, out, process=identity, progress=False)
    assert seen[0].shape == (64, 32, 3)  # upright: portrait
    assert (summary.width, summary.height) == (32, 64)
    info = probe(out)
    assert (info["width"], info["height"]) == (32, 64) and not info.get("rotation")


def test_audio_is_transcoded_when_the_container_needs_it(tmp_path, stylizer):
    src = make_pcm_clip(tmp_path / "pcm.mkv", frames=10, size=(32, 32), rate=10, audio_rate=16000, channels=1,
                        seconds=1.0)
    out = tmp_path / "out.mp4"
    summary = stylize_video(src, out, process=stylizer.stylize, progress=False)
    assert "aac" in summary.audio
    assert probe(out)["audio"] == pytest.approx(1.0, abs=0.1)


def test_interruption_leaves_a_playable_file(tmp_path, stylizer):
    src = make_clip(tmp_path / "in.mp4", frames=60, audio=True)
    out = tmp_path / "out.mp4"
    count = 0

    def interrupted(frame):
        nonlocal count
        count += 1
        if count == 20:
            raise KeyboardInterrupt
        return stylizer.stylize(frame)

    with pytest.raises(KeyboardInterrupt):
        stylize_video(src, out, process=interrupted, progress=False)
    info = probe(out)
    assert info["frames"] == 19
    assert info["audio"] is not None and info["audio"] < 60 / 24


def test_failure_in_processing_keeps_what_was_written(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=30, audio=False)
    out = tmp_path / "out.mp4"
    calls = []

    def failing(frame):
        calls.append(1)
        if len(calls) == 10:
            raise ValueError("model exploded")
        return frame

    with pytest.raises(ValueError, match="exploded"):
        stylize_video(src, out, process=failing, progress=False)
    assert probe(out)["frames"] == 9


def test_truncated_video_keeps_what_decodes(tmp_path, stylizer):
    src = make_clip(tmp_path / "in.mkv", frames=60, size=(64, 48), audio=False)
    data = src.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    out = tmp_path / "out.mp4"
    summary = stylize_video(cut, out, process=stylizer.stylize, progress=False)
    assert 10 < summary.frames < 60
    assert probe(out)["frames"] == summary.frames


def test_bad_inputs_are_one_line_errors(tmp_path, stylizer):
    with pytest.raises(InputNotFoundError, match="not found"):
        stylize_video(tmp_path / "missing.mp4", process=stylizer.stylize)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(BadVideoError, match="not a video"):
        stylize_video(text, process=stylizer.stylize)
    audio_only = tmp_path / "tone.m4a"
    _write_audio_only(audio_only)
    with pytest.raises(BadVideoError, match="no video stream"):
        stylize_video(audio_only, tmp_path / "x.mp4", process=stylizer.stylize)


def test_output_rules(tmp_path, stylizer):
    src = make_clip(tmp_path / "in.mp4", frames=5, audio=False)
    before = src.read_bytes()
    with pytest.raises(OutputError, match="is the input"):
        stylize_video(src, src, process=stylizer.stylize, overwrite=True)
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="--overwrite"):
        stylize_video(src, existing, process=stylizer.stylize)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(OutputError, match="does not exist"):
        stylize_video(src, tmp_path / "no" / "dir" / "o.mp4", process=stylizer.stylize)
    with pytest.raises(OutputError, match="suffix"):
        stylize_video(src, tmp_path / "o.webm", process=stylizer.stylize)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    import os
    if os.geteuid() != 0:  # root can write anywhere
        with pytest.raises(OutputError, match="not writable"):
            stylize_video(src, locked / "o.mp4", process=stylizer.stylize)
    assert src.read_bytes() == before
    # default output lands beside the input
    summary = stylize_video(src, process=stylizer.stylize, progress=False)
    assert summary.output == str(tmp_path / "in_stylized.mp4")


def _write_audio_only(path):
    import av

    with av.open(str(path), "w") as c:
        a = c.add_stream("aac", rate=44100)
        a.layout = "mono"
        tone = np.zeros((1, 1024), np.float32)
        for i in range(10):
            af = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
            af.sample_rate, af.pts = 44100, i * 1024
            c.mux(a.encode(af))
        c.mux(a.encode(None))
