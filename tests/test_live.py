"""The live pipeline on a file source paced in real time, with file and UDP sinks."""

import socket
import threading
import time

import numpy as np
import pytest

from conftest import make_clip, probe
from conftest import pattern as make_pattern
from realtime.frames import Frame
from realtime.live import LiveSession, put_latest
from realtime.sinks import EncoderSink, SinkContext, open_sink
from realtime.errors import CameraError
from realtime.sources import FileSource, open_source


def test_put_latest_replaces():
    import queue

    q = queue.Queue(maxsize=1)
    assert put_latest(q, 1) is False
    assert put_latest(q, 2) is True
    assert q.get_nowait() == 2


def test_file_source_is_paced(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=12, rate=24, audio=False)
    t0 = time.monotonic()
    frames = list(FileSource(str(clip)))
    assert len(frames) == 12
    assert time.monotonic() - t0 >= 11 / 24 - 0.02  # released at the clip's own pace
    looped = []
    for f in FileSource(str(clip), loop=True, paced=False):
        looped.append(f)
        if len(looped) == 30:
            break
    assert [f.index for f in looped] == list(range(30))


def test_paced_file_to_recording(tmp_path, tiny_model, style_image):
    from realtime.stylizer import Stylizer

    clip = make_clip(tmp_path / "c.mp4", frames=24, rate=24, size=(64, 48), audio=False)
    s = Stylizer(tiny_model, device="cpu", backend="torch")
    s.set_style(style_image)
    out = tmp_path / "rec.mp4"
    source = FileSource(str(clip))
    with EncoderSink(str(out), source.size, source.fps) as sink:
        stats = LiveSession(source, (), sinks=[sink], process=s.stylize).run()
    assert stats["processed_fps"] > 0 and stats["sent_fps"][str(out)] > 0
    info = probe(out)
    assert info["frames"] == stats["sent_frames"][str(out)] > 0
    assert (info["width"], info["height"]) == (64, 48)
    assert info["pts"][-1] == pytest.approx(23 / 24, abs=0.15)  # real-time pacing kept


def test_slow_model_drops_stale_frames_and_latency_stays_bounded():
    frames_made = 60

    def source():
        for i in range(frames_made):  # 100 fps camera
            yield Frame(np.full((16, 16, 3), i % 256, np.uint8), time.monotonic(), i)
            time.sleep(0.01)

    def slow(rgb):
        time.sleep(0.05)  # a 20 fps model
        return rgb

    class Collect:
        name = "collect"
        seen = []

        def send(self, rgb, t):
            self.seen.append(int(rgb[0, 0, 0]))

        def close(self):
            pass

    sink = Collect()
    stats = LiveSession(source(), (), sinks=[sink], process=slow).run()
    assert stats["dropped_frames"] > frames_made // 3  # stale frames were skipped...
    assert stats["latency_ms_p95"] < 150  # ...so latency stays near one model step, not growing
    assert sink.seen == sorted(sink.seen)  # order kept


def test_stats_time_only_the_running_stretch():
    """fps is frames over the time the threads ran: not the set-up before ``run`` (a model
    loading) nor a sink's close (a recording being finalised)."""

    def source():
        for i in range(30):  # 0.5 s at 60 fps
            yield Frame(np.zeros((8, 8, 3), np.uint8), time.monotonic(), i)
            time.sleep(1 / 60)

    class SlowClose:
        name = "slow-close"

        def send(self, rgb, t):
            pass

        def close(self):
            time.sleep(1.0)

    session = LiveSession(source(), (), sinks=[SlowClose()], process=lambda rgb: rgb)
    time.sleep(1.0)  # as long as loading a model
    stats = session.run()
    assert stats["processed_frames"] == 30
    assert 0.4 < stats["seconds"] < 1.2, stats["seconds"]  # the 0.5 s run, not 2.5 s
    assert stats["processed_fps"] > 25


@pytest.mark.slow
def test_udp_stream_is_received(tmp_path):
    import av

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"udp://127.0.0.1:{port}"
    received = {}

    def receive():
        try:
            with av.open(f"{url}?timeout=8000000", format="mpegts", timeout=10) as c:
                for frame in c.decode(video=0):
                    received["size"] = (frame.width, frame.height)
                    received["n"] = received.get("n", 0) + 1
                    if received["n"] >= 10:
                        return
        except av.error.FFmpegError as e:
            received["error"] = str(e)

    listener = threading.Thread(target=receive, daemon=True)
    listener.start()
    time.sleep(0.5)
    sink = open_sink(url, SinkContext((96, 64), 25))
    t0 = time.monotonic()
    for i in range(75):
        rgb = np.full((64, 96, 3), (i * 3) % 256, np.uint8)
        sink.send(rgb, t0 + i / 25)
        time.sleep(1 / 50)
    sink.close()
    listener.join(timeout=15)
    assert received.get("n", 0) >= 10, received
    assert received["size"] == (96, 64)


def test_camera_missing_is_one_line(tmp_path):
    with pytest.raises(CameraError, match="cameras found"):
        open_source("7")


@pytest.mark.slow
def test_webcam_command_on_a_clip(tmp_path, tiny_model_path, style_image):
    import json
    import subprocess
    import sys

    clip = make_clip(tmp_path / "c.mp4", frames=24, rate=24, size=(64, 48), audio=False)
    stats = tmp_path / "stats.json"
    proc = subprocess.run([sys.executable, "-m", "realtime", "webcam", "--camera", str(clip), "--loop",
                           "--style", str(style_image), "--model", str(tiny_model_path), "--output",
                           str(tmp_path / "rec.mp4"), "--duration", "2", "--stats-json", str(stats)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(stats.read_text())
    assert data["capture_fps"] > 15 and data["processed_fps"] > 0
    assert probe(tmp_path / "rec.mp4")["frames"] > 5


def test_unplugged_camera_retries_then_says_so(monkeypatch):
    import cv2

    from realtime.sources import CameraSource

    class FlakyCapture:
        """A camera that delivers three frames, then nothing (unplugged)."""

        def __init__(self, index):
            self.n = 0

        def isOpened(self):  # noqa: N802 - OpenCV's name
            return True

        def set(self, prop, value):
            return True

        def get(self, prop):
            return {cv2.CAP_PROP_FRAME_WIDTH: 32, cv2.CAP_PROP_FRAME_HEIGHT: 24, cv2.CAP_PROP_FPS: 30}.get(prop, 0)

        def read(self):
            self.n += 1
            return (True, np.zeros((24, 32, 3), np.uint8)) if self.n <= 3 else (False, None)

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", FlakyCapture)
    cam = CameraSource(0, retries=3)
    assert cam.size == (32, 24)
    got = []
    with pytest.raises(CameraError, match="stopped delivering frames"):
        for frame in cam:
            got.append(frame)
    assert len(got) == 3 and got[0].rgb.shape == (24, 32, 3)


@pytest.mark.slow
def test_webcam_ctrl_c_keeps_the_recording(tmp_path, tiny_model_path, style_image):
    import signal
    import subprocess
    import sys

    clip = make_clip(tmp_path / "c.mp4", frames=24, rate=24, size=(64, 48), audio=False)
    rec = tmp_path / "rec.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "realtime", "webcam", "--camera", str(clip), "--loop", "--style",
                             str(style_image), "--model", str(tiny_model_path), "--output", str(rec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a runner started in the background passes SIGINT on as ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        seen = []
        while not (seen and seen[-1].startswith("live:")):  # printed once the model is loaded
            line = proc.stderr.readline()
            assert line, f"exited before going live: {''.join(seen)}"
            seen.append(line)
        time.sleep(2)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "processed_fps" in out
    assert probe(rec)["frames"] > 5


@pytest.mark.requires_camera
def test_a_real_camera_delivers_upright_rgb_frames():
    from realtime.sources import CameraSource

    with CameraSource(0) as cam:
        frames = []
        for frame in cam:
            frames.append(frame)
            if len(frames) == 5:
                break
    assert all(f.rgb.dtype == np.uint8 and f.rgb.shape == (cam.size[1], cam.size[0], 3) for f in frames)
    assert [f.index for f in frames] == list(range(5))


def test_a_rotated_file_plays_upright_in_the_live_path(tmp_path):
    """The live file source decodes through the same media module as file jobs: a phone clip
    with rotation metadata comes out portrait, the same pixels stylize-video sees."""
    from realtime.jobs import VideoJob

    clip = make_clip(tmp_path / "rot.mp4", frames=4, size=(64, 32), audio=False, rotation=-90)
    live = [f.rgb for f in FileSource(str(clip), paced=False)]
    seen = []
    with VideoJob(clip, tmp_path / "out.mp4", progress=False) as job:
        job.run(lambda rgb: seen.append(rgb) or rgb)
    assert FileSource(str(clip)).size == (32, 64)
    assert len(live) == len(seen) == 4
    assert all(a.shape == (64, 32, 3) and np.array_equal(a, b) for a, b in zip(live, seen))


def test_smoothing_key_is_applied_between_frames_on_the_inference_thread(tiny_model, style_image):
    """Pressing m while frames flow: the smoother is reset on the inference thread, never inside
    a blend, and every frame comes out whole."""
    from realtime.controls import LiveController
    from realtime.stylizer import Stylizer

    s = Stylizer(tiny_model, device="cpu", backend="torch", temporal=True)
    s.set_style(style_image)
    smoother = s.smoother
    state = {"in_blend": False, "bad": [], "resets": 0, "threads": set()}
    blend, reset = smoother.blend, smoother.reset

    def watched_blend(fresh):
        state["in_blend"] = True
        try:
            time.sleep(0.002)  # widen the window a reset from another thread would hit
            return blend(fresh)
        finally:
            state["in_blend"] = False

    def watched_reset():
        if state["in_blend"]:
            state["bad"].append("reset inside blend")
        state["resets"] += 1
        state["threads"].add(threading.current_thread().name)
        reset()

    smoother.blend, smoother.reset = watched_blend, watched_reset
    controller = LiveController(s, [])
    out = []

    class Collect:
        name = "collect"

        def send(self, rgb, t):
            out.append(rgb)

        def close(self):
            pass

    def frames():
        for i in range(120):
            yield Frame(np.ascontiguousarray(np.roll(make_pattern(48, 64), i, axis=1)), time.monotonic(), i)
            time.sleep(0.005)

    session = LiveSession(frames(), (), sinks=[Collect()], process=controller)
    presser = threading.Thread(target=lambda: [controller.handle_key(ord("m")) or time.sleep(0.01)
                                               for _ in range(40)])
    presser.start()
    stats = session.run(duration=30)
    presser.join()
    assert state["resets"] >= 20 and not state["bad"]
    assert state["threads"] == {"inference"}
    assert stats["processed_frames"] > 20
    assert all(o.shape == (48, 64, 3) and o.dtype == np.uint8 for o in out)


def _clip_with_sound(path, frames, rate, sound, sr=44100, sound_start=0.0):
    """A 64x48 clip of ``frames`` at ``rate`` with ``sound`` (mono float32 samples at ``sr``) as AAC,
    its first sample at ``sound_start`` seconds."""
    import av

    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=rate)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=sr)
        a.layout = "mono"
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(make_pattern(48, 64, i), format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        for s in range(0, len(sound), 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(sound[None, s:s + 1024]), format="flt", layout="mono")
            af.sample_rate, af.pts = sr, int(round(sound_start * sr)) + s
            c.mux(a.encode(af))
        c.mux(a.encode(None))
    return path


def _tone(seconds, sr=44100):
    return (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


@pytest.mark.slow
def test_a_recording_from_a_looped_file_carries_its_sound_in_step(tmp_path):
    """A file used as the camera: the recording has the file's sound for the stretch it recorded,
    looped with the picture (silent half, tone half, again), as long as the video."""
    import av

    tone = _tone(2.0)
    tone[:len(tone) // 2] = 0  # silent for the first second, a 440 Hz tone for the second
    clip = _clip_with_sound(tmp_path / "c.mp4", 48, 24, tone)
    out = tmp_path / "rec.mp4"
    with LiveSession(str(clip), [str(out)], loop=True, process=lambda rgb: rgb) as session:
        session.run(duration=4.6)
    video = probe(out)
    assert video["audio"] == pytest.approx(video["pts"][-1] + 1 / 24, abs=0.1)
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        sr = c.streams.audio[0].rate
        sound = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    tenth = sr // 10
    loud = np.array([np.abs(sound[i:i + tenth]).mean() > 0.05 for i in range(0, len(sound) - tenth + 1, tenth)])
    expected = (np.arange(len(loud)) % 20) >= 10  # the clip from its start: 1 s silent, 1 s tone, looped
    assert (loud == expected).mean() >= 0.9, "".join("#" if x else "." for x in loud)
    assert loud[32:38].all() and not loud[22:28].any(), "".join("#" if x else "." for x in loud)  # second pass


def test_a_camera_recording_has_no_sound_stream(tmp_path):
    def camera():
        for i in range(15):
            time.sleep(1 / 30)
            yield Frame(make_pattern(48, 64, i), time.monotonic(), i)

    out = tmp_path / "cam.mp4"
    with LiveSession(camera(), [str(out)], size=(64, 48), fps=30, process=lambda rgb: rgb) as session:
        session.run()
    assert probe(out)["audio"] is None and probe(out)["frames"] >= 1


def test_audio_window_loops_an_odd_period_from_mid_loop_with_the_gaps_silent(tmp_path):
    """A 32-frame 30 fps clip (a period of 1.0667 s, not a round number) whose sound starts 0.2 s
    in: 20 loops from mid-loop come back with exactly the asked length, the first 0.2 s of each
    loop silent and the rest loud (a float loop counter used to hang here)."""
    from realtime.media import audio_window

    rate, sr, frames, late = 30, 44100, 32, 0.2
    clip = _clip_with_sound(tmp_path / "odd.mp4", frames, rate, _tone(frames / rate - late), sr, sound_start=late)
    period, start = frames / rate, 1.234
    end = start + 20 * period
    result = []
    worker = threading.Thread(target=lambda: result.append(np.concatenate(
        list(audio_window(str(clip), start, end, period, sr, "mono")), axis=1)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert result, "audio_window did not finish"
    sound = result[0][0]
    assert len(sound) == round((end - start) * sr)
    for k in range(2, 21):  # each later loop: silent head, loud body
        head = int((k * period + 0.03 - start) * sr), int((k * period + 0.17 - start) * sr)
        body = int((k * period + 0.3 - start) * sr), int((k * period + 0.9 - start) * sr)
        assert np.abs(sound[head[0]:head[1]]).max() < 0.02, k
        assert np.abs(sound[body[0]:body[1]]).mean() > 0.1, k
