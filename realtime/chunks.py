"""Long videos in chunks: plan, stylise one chunk into a part file, join the parts.

- ``probe_packets`` reads the video packets' timestamps and keyframe flags without decoding.
- ``scan_cuts`` finds the scene cuts (one cheap pass over 32-px luma thumbnails, the measure and
  threshold of the temporal smoother's own cut test).
- ``plan_chunks`` cuts the timeline into chunks of about ``seconds``, each starting at a scene
  cut where there is one near the target (the seam then lies where the picture changes anyway),
  else at an input keyframe, else at a frame (decoded from the keyframe before it), and gives
  each chunk ``warmup`` frames before its start: they are stylised and thrown away, so the
  temporal smoothing state has settled when the chunk's own frames begin (at a cut the smoother
  resets, as in one process).
- ``run_chunk`` stylises one chunk into ``OUT.parts/part-NNNN.mp4`` (written atomically and
  checked: frames written == frames planned), with the input's timestamps and no audio.
- ``join_parts`` remuxes the parts' packets, without re-encoding, into the output and muxes the
  input's audio once (copied, or transcoded where the container needs it).

Parts are encoded as the single-process output is (x264 with B-frames): every part opens with
the same B-frame delay, so the joined decode timestamps run on strictly increasing across the
seams. ``--deterministic`` encodes each part on one thread and without B-frames: with B-frames,
x264's macroblock-tree rate control varied from run to run even on one thread on some content
(measured on a 320x192 clip: 4 runs of the same 48 frames gave 2 different streams, without
B-frames 4 identical ones; a 160x96 pattern clip gave identical streams either way), at the
price of larger parts.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import queue
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from .errors import BadVideoError, StylizeError
from .media import MediaInput, Muxer, import_av
from .outputs import OutputFile, write_text_atomic

DETERMINISTIC_OPTIONS = {"bf": "0"}  # libx264 reads "bf" (an unknown "bframes" key is silently ignored)


@dataclass(frozen=True)
class PacketIndex:
    """The video stream's frames in presentation order: pts (stream time base) and keyframe flags."""

    pts: tuple[int, ...]
    keyframes: tuple[int, ...]  # pts of the keyframes
    time_base: Fraction

    def seconds(self, pts: int) -> float:
        return float(pts * self.time_base)


def probe_packets(path: str | Path) -> PacketIndex:
    """Demux (no decoding) the first video stream's packets."""
    with MediaInput(path) as media:
        pts, keys = [], []
        for packet in media.container.demux(media.video):
            if packet.pts is None or packet.size == 0:
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
        if not pts:
            raise BadVideoError(f"{path}: the video stream holds no frames")
        return PacketIndex(tuple(sorted(pts)), tuple(sorted(keys)), media.video.time_base or Fraction(1, 90000))


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # pts of the first frame written (inclusive)
    end: int | None  # pts of the next chunk's first frame (exclusive); None for the last
    frames: int
    warmup_from: int  # pts of the first frame stylised (warm-up frames are not written)
    seek: int  # pts of the keyframe decoding starts at
    at_cut: bool = False  # starts at a scene cut

    @property
    def name(self) -> str:
        return f"part-{self.index:04d}.mp4"


_LUMA8_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv411p",
                            "yuv440p", "yuvj440p", "nv12", "nv21", "gray"})


def scan_cuts(path: str | Path, threshold: float = 0.12) -> list[int]:
    """The pts of frames that begin a new scene: the mean absolute change of 32-px luma
    thumbnails from the frame before exceeds ``threshold`` (the temporal smoother's measure, on
    the decoder's luma plane, so no colour conversion: about 0.5 ms a 640x360 frame, decoding included)."""
    import cv2
    import numpy as np

    cuts: list[int] = []
    with MediaInput(path) as media:
        prev = None
        for frame in media.container.decode(media.video):
            if frame.format.name in _LUMA8_FORMATS:  # 8-bit luma in plane 0: read it as it is
                plane = frame.planes[0]
                luma = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :frame.width]
            else:  # 10-bit, RGB and others: let swscale make 8-bit grey
                luma = frame.to_ndarray(format="gray")
            th = max(1, round(frame.height * 32 / frame.width))
            thumb = cv2.resize(luma, (32, th), interpolation=cv2.INTER_AREA).astype(np.float32)
            thumb = (thumb - 16.0) / 219.0  # limited-range luma to [0, 1], as the smoother's grey
            if prev is not None and frame.pts is not None and (prev.shape != thumb.shape
                                                                or float(np.abs(thumb - prev).mean()) > threshold):
                cuts.append(frame.pts)
            prev = thumb
    return sorted(cuts)


def plan_chunks(index: PacketIndex, seconds: float, warmup: int = 15, cuts: tuple[int, ...] = ()) -> list[Chunk]:
    """Chunks of about ``seconds``; a start snaps to the scene cut (``cuts``: pts) nearest the
    target within a quarter chunk, else to such a keyframe, else to the frame at the target."""
    pts = index.pts
    step = seconds / float(index.time_base)
    starts = [0]
    target = pts[0] + step
    frames = set(pts)
    while True:
        i = bisect.bisect_left(pts, target)
        if i >= len(pts) - 1:
            break
        best = pts[i]
        for candidates in (cuts, index.keyframes):
            near = [k for k in candidates if abs(k - pts[i]) <= step / 4 and k > pts[starts[-1]] and k in frames]
            if near:
                best = min(near, key=lambda k: abs(k - pts[i]))
                break
        starts.append(bisect.bisect_left(pts, best))
        target = pts[starts[-1]] + step
    cut_set = set(cuts)
    chunks = []
    for n, s in enumerate(starts):
        e = starts[n + 1] if n + 1 < len(starts) else len(pts)
        w = max(0, s - warmup)
        seek = max([k for k in index.keyframes if k <= pts[w]], default=pts[0])
        chunks.append(Chunk(n, pts[s], pts[e] if e < len(pts) else None, e - s, pts[w], seek,
                            n > 0 and pts[s] in cut_set))
    return chunks


@dataclass(frozen=True)
class ChunkTask:
    """Everything a worker needs for one chunk (picklable: paths, numbers, plain dicts)."""

    input: str
    parts_dir: str
    chunk: Chunk
    deterministic: bool = False  # one x264 thread and no B-frames per part: byte-identical parts


def part_record(parts_dir: Path, chunk: Chunk) -> dict:
    return json.loads((parts_dir / f"{chunk.name}.json").read_text())


def part_done(parts_dir: Path, chunk: Chunk) -> bool:
    """A part counts as done when its record says it holds exactly the planned frames."""
    record = parts_dir / f"{chunk.name}.json"
    if not record.exists() or not (parts_dir / chunk.name).exists():
        return False
    try:
        return json.loads(record.read_text()).get("frames") == chunk.frames
    except (OSError, ValueError):
        return False


def run_chunk(task: ChunkTask, process: Callable, reset: Callable[[], None] | None = None,
              on_frame: Callable[[int], None] | None = None) -> dict:
    """Stylise one chunk (``process``: uint8 RGB -> uint8 RGB) into its part file."""
    chunk, parts = task.chunk, Path(task.parts_dir)
    if reset is not None:
        reset()  # the smoothing state starts with this chunk's warm-up, as in any worker
    target = parts / chunk.name
    with MediaInput(task.input) as media, OutputFile(target, overwrite=True) as out:
        muxer = Muxer(out.temp, media, queue.Queue(), with_audio=False,
                      options=DETERMINISTIC_OPTIONS if task.deterministic else None,
                      threads=1 if task.deterministic else None)
        written = 0
        digest = hashlib.sha256()  # of the frames before encoding: equal digests, equal pictures
        try:
            media.container.seek(chunk.seek, stream=media.video, backward=True, any_frame=False)
            for frame in media.frames():
                if frame.pts is None or frame.pts < chunk.warmup_from:
                    continue
                if chunk.end is not None and frame.pts >= chunk.end:
                    break
                styled = process(frame.rgb)
                if frame.pts >= chunk.start:
                    muxer.write(styled, frame.pts)
                    digest.update(styled.tobytes())
                    written += 1
                    if on_frame is not None:
                        on_frame(1)
        finally:
            muxer.finish(complete=True)
        if written != chunk.frames:
            raise StylizeError(f"chunk {chunk.index} wrote {written} frames where {chunk.frames} were planned "
                               f"(the input decodes differently from its packet index); run without --workers")
        out.commit()
    result = {"chunk": chunk.index, "frames": written, "sha256": digest.hexdigest(), "pid": os.getpid()}
    # written whole or not at all: a kill while writing must not leave a record that a rerun reads
    # as damaged (it would redo a finished part) or that another process sees half-written
    write_text_atomic(parts / f"{chunk.name}.json", json.dumps(result))
    return result


def join_parts(parts_dir: Path, chunks: list[Chunk], input_path: Path, out: OutputFile) -> dict:
    """Remux the parts' video packets and the input's audio, interleaved by time, into out.temp."""
    av = import_av()
    with MediaInput(input_path) as media, av.open(str(out.temp), "w") as dst:
        first = av.open(str(parts_dir / chunks[0].name))
        vout = dst.add_stream_from_template(first.streams.video[0])
        first.close()
        from .media import AudioPlan

        audio = AudioPlan(media.audio, dst, out.target.suffix.lower()) if media.audio is not None else None
        video_packets = _part_packets(av, parts_dir, chunks)
        audio_packets = media.container.demux(media.audio) if audio is not None else iter(())
        frames = 0
        for kind, packet in _interleave(video_packets, audio_packets):
            if kind == "video":
                packet.stream = vout
                dst.mux(packet)
                frames += 1
            else:
                audio.write(dst, packet)
        if audio is not None:
            audio.flush(dst)
    return {"frames": frames, "audio": audio.label if audio is not None else "none"}


def _part_packets(av, parts_dir: Path, chunks: list[Chunk]) -> Iterator:
    for chunk in chunks:
        with av.open(str(parts_dir / chunk.name)) as part:
            for packet in part.demux(part.streams.video[0]):
                if packet.size:
                    yield packet


def _interleave(video: Iterator, audio: Iterator) -> Iterator[tuple[str, object]]:
    """Both packet streams merged by decode time (as a muxer wants them)."""

    def when(p) -> float:
        t = p.dts if p.dts is not None else p.pts
        return float(t * p.time_base) if t is not None else 0.0

    v, a = next(video, None), next(audio, None)
    while v is not None or a is not None:
        if a is None or (v is not None and when(v) <= when(a)):
            yield "video", v
            v = next(video, None)
        else:
            if a.dts is not None or a.pts is not None:
                yield "audio", a
            a = next(audio, None)


def chunk_summary(chunks: list[Chunk], index: PacketIndex) -> list[dict]:
    return [{**asdict(c), "start_s": index.seconds(c.start)} for c in chunks]
