"""Live frame sources: a webcam, a video file played at its own pace, or a stream URL.

Every source yields ``Frame`` (uint8 RGB, capture time on ``time.monotonic()``, index) and is
a context manager. ``open_source`` picks the kind from the ``--camera`` argument.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import BadVideoError, CameraError
from .frames import Frame, bgr_to_rgb


@contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV logs a dozen warnings for every backend that fails to open a camera index; we say
    what went wrong in one line instead."""
    import cv2

    log = cv2.utils.logging
    level = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        log.setLogLevel(level)


def list_cameras(max_index: int = 6) -> list[int]:
    import cv2

    found = []
    with quiet_opencv():
        for i in range(max_index):
            cap = cv2.VideoCapture(i)
            if cap.isOpened():
                found.append(i)
            cap.release()
    return found


class CameraSource:
    """An OpenCV webcam; asks for a size and rate, then reports what the camera really gives."""

    def __init__(self, index: int, size: tuple[int, int] | None = None, fps: float | None = None,
                 retries: int = 30):
        import cv2

        self._cv2 = cv2
        with quiet_opencv():
            self.cap = cv2.VideoCapture(index)
        if not self.cap.isOpened():
            found = list_cameras()
            listed = ", ".join(map(str, found)) if found else "none"
            raise CameraError(f"camera {index} could not be opened (cameras found: {listed}); "
                              f"pass --camera N, or a video file to test without a camera")
        if size:
            self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        if fps:
            self.cap.set(cv2.CAP_PROP_FPS, fps)
        self.size = (int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or fps or 30.0)
        self.retries = retries
        self.name = f"camera {index}"

    def __iter__(self) -> Iterator[Frame]:
        index, misses = 0, 0
        while True:
            ok, bgr = self.cap.read()
            if not ok:  # unplugged or busy: retry for a while, then say so
                misses += 1
                if misses > self.retries:
                    raise CameraError(f"{self.name} stopped delivering frames (unplugged?)")
                time.sleep(0.1)
                continue
            misses = 0
            yield Frame(bgr_to_rgb(bgr), time.monotonic(), index)
            index += 1

    def close(self) -> None:
        self.cap.release()

    def __enter__(self) -> CameraSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class MediaClock:
    """Where a paced file source's media time stands on the monotonic clock: media time ``m``
    (loops unrolled) is shown at ``start + m``. A recording of the live output uses it to take
    the file's sound for the stretch it recorded."""

    path: str
    start: float | None = None  # monotonic time of media time 0; set when the first frame is out
    period: float | None = None  # one pass of the file, once a loop has shown it

    def media_time(self, monotonic: float) -> float:
        return monotonic - (self.start if self.start is not None else monotonic)


class FileSource:
    """A video file (or stream URL) as a live source: upright frames (rotation applied, as in
    file jobs) released at the file's own pace (``paced``); ``loop`` starts again at the end."""

    def __init__(self, path: str, loop: bool = False, paced: bool = True):
        from .media import MediaInput

        self.path = path
        with MediaInput(path) as probe:  # one-line errors for a missing or unreadable file
            self.fps = float(probe.rate)
            first = next(probe.frames(), None)
            if first is None:
                raise BadVideoError(f"{path} has a video stream that decodes to no frames")
            self.size = (first.rgb.shape[1], first.rgb.shape[0])  # upright, as the frames will be
            has_audio = probe.audio is not None
        self.loop = loop
        self.paced = paced and not probe.is_url  # a network stream is paced by its sender
        self.name = path
        # the file's sound can follow the live output into a recording when frames keep media pace
        self.clock = MediaClock(path) if self.paced and has_audio else None

    def __iter__(self) -> Iterator[Frame]:
        from .media import MediaInput

        index = 0
        start = time.monotonic()
        if self.clock is not None:
            self.clock.start = start
        offset = 0.0  # media time of earlier loops
        while True:
            last = 0.0
            with MediaInput(self.path) as media:
                for frame in media.frames():
                    t = frame.time + offset
                    last = t
                    if self.paced:
                        wait = start + t - time.monotonic()
                        if wait > 0:
                            time.sleep(wait)
                    yield Frame(frame.rgb, time.monotonic(), index)
                    index += 1
            if not self.loop or index == 0:
                return
            offset = last + 1.0 / self.fps
            if self.clock is not None and self.clock.period is None:
                self.clock.period = offset

    def close(self) -> None:
        pass

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(spec: str, loop: bool = False, size: tuple[int, int] | None = None, fps: float | None = None):
    """'0', '1', ... -> a webcam; anything else -> a file or URL."""
    if spec.isdigit():
        return CameraSource(int(spec), size, fps)
    return FileSource(spec, loop=loop)
