"""Preview window (under Xvfb), virtual camera (through pyvirtualcam's backend contract), keys."""

import os
import subprocess
import threading
import time

import numpy as np
import pytest

from conftest import pattern
from realtime.errors import OutputError
from realtime.frames import Frame
from realtime.live import LiveSession


@pytest.fixture
def xvfb(monkeypatch):
    display = ":97"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "640x480x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    monkeypatch.setenv("DISPLAY", display)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    yield display
    proc.terminate()
    proc.wait(timeout=10)


def _source(n=60, h=120, w=160):
    for i in range(n):
        yield Frame(pattern(h, w, 0), time.monotonic(), i)
        time.sleep(0.03)


@pytest.mark.requires_display
def test_preview_window_shows_the_stylised_frame(xvfb, default_model, style_image):
    import cv2
    from PIL import ImageGrab

    from realtime.sinks import PreviewSink
    from realtime.stylizer import Stylizer

    s = Stylizer(default_model, device="cpu")
    s.set_style(style_image)
    expected = s.stylize(pattern(120, 160, 0))
    pipeline = LiveSession(_source(1000), (), sinks=[PreviewSink()], process=s.stylize)
    found = {"score": 0.0, "raw": 0.0, "shots": 0}

    def watch():
        # look at the screen every half second until the stylised frame is there: on a loaded
        # machine (or a fresh one building its font cache) the window may take many seconds to draw
        time.sleep(1.0)
        while not pipeline.stop_event.is_set():
            shot = np.asarray(ImageGrab.grab(xdisplay=xvfb).convert("RGB"))
            found["shots"] += 1
            score = float(cv2.matchTemplate(shot, expected, cv2.TM_CCOEFF_NORMED).max())
            if score > found["score"]:
                found["score"] = score
                found["raw"] = float(cv2.matchTemplate(shot, pattern(120, 160, 0), cv2.TM_CCOEFF_NORMED).max())
            if score > 0.95:
                pipeline.stop_event.set()  # the main thread closes the window
                return
            time.sleep(0.5)

    watcher = threading.Thread(target=watch)
    watcher.start()
    stats = pipeline.run(duration=30)  # the window lives on this (the main) thread
    watcher.join()
    assert stats["sent_frames"]["preview"] > 10
    score, raw = found["score"], found["raw"]
    assert score > 0.9, f"stylised frame not found on screen in {found['shots']} screenshots (best match {score:.2f})"
    assert raw < score  # what is shown is the stylised frame, not the camera frame


def test_preview_without_display_is_one_line(monkeypatch):
    from realtime.sinks import PreviewSink

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    sink = PreviewSink()
    with pytest.raises(OutputError, match="needs a display"):
        sink._open(64, 48)


class FakeCam:
    """Stands in for the device only: pyvirtualcam's backend contract."""

    frames: list = []

    def __init__(self, *, width, height, fps, fourcc, device, **kw):
        self.width, self.height, self.fourcc = width, height, fourcc

    def close(self):
        pass

    def send(self, frame):
        FakeCam.frames.append(frame.copy())

    def device(self):
        return "fake-cam-0"

    def native_fourcc(self):
        return None


def test_virtual_camera_through_the_backend_contract(monkeypatch):
    pyvirtualcam = pytest.importorskip("pyvirtualcam", reason="optional extra [virtualcam] not installed")
    from realtime.sinks import VirtualCamSink

    monkeypatch.setitem(pyvirtualcam.camera.BACKENDS, "test-fake", FakeCam)  # removed after the test
    FakeCam.frames = []
    sink = VirtualCamSink((160, 120), 30, backend="test-fake")
    stats = LiveSession(_source(10), (), sinks=[sink], process=lambda rgb: 255 - rgb).run()
    sink.close()
    assert sink.name == "virtualcam fake-cam-0"
    assert len(FakeCam.frames) == stats["sent_frames"][sink.name] > 0
    # pyvirtualcam hands backends a flat RGB buffer
    assert np.array_equal(FakeCam.frames[0].reshape(120, 160, 3), 255 - pattern(120, 160, 0))


def test_no_virtual_camera_device_is_a_clear_error():
    pytest.importorskip("pyvirtualcam", reason="optional extra [virtualcam] not installed")
    from realtime.sinks import VirtualCamSink

    if os.path.exists("/dev/video0"):
        pytest.skip("this machine has a video device")
    with pytest.raises(OutputError, match="modprobe v4l2loopback"):
        VirtualCamSink((160, 120), 30)


def test_keys_change_the_live_settings(tmp_path, tiny_model, style_image):
    from PIL import Image

    from realtime.controls import LiveController
    from realtime.sinks import RecordingSink
    from realtime.stylizer import Stylizer

    second = tmp_path / "b.png"
    Image.fromarray(pattern(64, 64, 9)).save(second)
    s = Stylizer(tiny_model, device="cpu", backend="torch")
    s.set_style(style_image)
    before = s._stats
    recorder = RecordingSink(tmp_path, (160, 120), 30)
    c = LiveController(s, [style_image, second], recorder, still_dir=tmp_path)
    frame = pattern(120, 160, 0)

    def press(key):  # as the preview does: queued, then applied by the inference thread
        c.handle_key(key)
        c.apply_pending()

    c.handle_key(ord("-"))
    assert s.alpha == 1.0  # not applied until the inference thread takes the next frame
    c.process(frame)
    assert s.alpha == pytest.approx(0.9)
    press(ord("n"))
    c._switching.join(timeout=30)
    assert s._stats is not before and c.index == 1
    press(ord("t"))
    assert np.array_equal(c.process(frame), frame)  # style off shows the camera
    press(ord("t"))
    c.process(frame)
    press(ord("s"))
    assert c.stills and c.stills[0].exists()
    press(ord("r"))
    for i in range(5):
        recorder.send(frame, 100 + i / 30)
    press(ord("r"))  # stop: the file is finalised
    from conftest import probe

    assert probe(recorder.files[0])["frames"] == 5
    stop = threading.Event()
    c.stop_event = stop
    c.handle_key(27)
    assert stop.is_set()


@pytest.mark.requires_display
@pytest.mark.slow
def test_webcam_command_shows_a_preview_from_a_file_source(xvfb, tmp_path, tiny_model_path, style_image):
    """The file source loads PyAV; the window must still open (regression: it hung when av came first)."""
    import json
    import subprocess
    import sys

    from conftest import make_clip

    clip = make_clip(tmp_path / "c.mp4", frames=24, rate=24, size=(64, 48), audio=False)
    stats = tmp_path / "stats.json"
    proc = subprocess.run([sys.executable, "-m", "realtime", "webcam", "--camera", str(clip), "--loop", "--style",
                           str(style_image), "--model", str(tiny_model_path), "--output", "preview", "--duration", "4",
                           "--stats-json", str(stats), "--record-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "DISPLAY": xvfb})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(stats.read_text())["sent_frames"]["preview"] > 10
