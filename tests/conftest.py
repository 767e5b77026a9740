"""Fixtures: tiny models and media made in tmp_path; ../shared/data when it is there."""

from __future__ import annotations

from fractions import Fraction

import cv2  # noqa: F401 - before PyAV, or OpenCV's Qt window never opens (see realtime/_av.py)
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = SHARED / "data"
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent (CI has it)")


def _hardware_missing(marker: str) -> str | None:
    """Why a test marked with a hardware marker cannot run here (None: it can)."""
    import shutil

    if marker == "requires_cuda" and not torch.cuda.is_available():
        return "needs a CUDA GPU (scripts/gpu_check.sh runs these where there is one)"
    if marker == "requires_camera" and not any(Path("/dev").glob("video*")):
        return "needs a real webcam (/dev/video*)"
    if marker == "requires_display" and shutil.which("Xvfb") is None:
        return "Xvfb is not installed (apt-get install xvfb; .ci/run installs it)"
    return None


def pytest_runtest_setup(item):
    for marker in ("requires_cuda", "requires_camera", "requires_display"):
        if item.get_closest_marker(marker) is not None:
            why = _hardware_missing(marker)
            if why:
                pytest.skip(why)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Exported graphs and downloads go to a temporary cache, never the user's."""
    import os

    path = tmp_path_factory.mktemp("cache")
    old = os.environ.get("REALTIME_STYLE_CACHE")
    os.environ["REALTIME_STYLE_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("REALTIME_STYLE_CACHE", None)
    else:
        os.environ["REALTIME_STYLE_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A randomly initialised student (width 1/8, depth 3), saved like our real models."""
    from realtime import nets
    from realtime.model import save_student

    torch.manual_seed(0)
    cfg = nets.StudentConfig(width=0.125, depth=3)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    return save_student(nets.student_encoder(cfg), nets.student_decoder(cfg), cfg, path)


def random_vgg16_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """VGG-16 conv weights under the Caffe file's keys (blockB_convK), He-initialised: the shape
    of ../shared/weights/vgg16_imagenet_caffe.safetensors without its 56 MB, for tests."""
    from realtime import nets

    gen = torch.Generator().manual_seed(seed)
    state = {}
    for spec in nets.VGG16_BLOCKS:
        if spec != "pool":
            name, cin, cout = spec
            state[f"{name}.weight"] = torch.randn(cout, cin, 3, 3, generator=gen) * (2.0 / (9 * cin)) ** 0.5
            state[f"{name}.bias"] = torch.zeros(cout)
    return state


@pytest.fixture(scope="session")
def teacher_path(tmp_path_factory) -> Path:
    """A random VGG-16 teacher saved as a safetensors file (see random_vgg16_state)."""
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("teacher") / "vgg16.safetensors"
    save_file(random_vgg16_state(), str(path))
    return path


@pytest.fixture(scope="session")
def default_model():
    """The bundled default model (ships in the repo, loads offline)."""
    from realtime.model import load_model

    return load_model("default", allow_download=False)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path):
    from realtime.model import load_student

    return load_student(tiny_model_path)


def pattern(h: int, w: int, t: int = 0) -> np.ndarray:
    """A moving colour pattern with edges, uint8 (h, w, 3) RGB."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 3 + t * 5) % 256, (yy * 2 + t * 3) % 256, ((xx + yy) // 4 * 20) % 256], axis=-1)
    img[(yy // 8 + xx // 8 + t) % 2 == 0] //= 2
    return img.astype(np.uint8)


def make_clip(path: Path, frames: int = 24, size: tuple[int, int] = (64, 48), rate: Fraction | int = 24,
              audio: bool = True, rotation: int | None = None, pix_fmt: str | None = None,
              audio_seconds: float | None = None, x264: dict | None = None, pts: list[int] | None = None,
              time_base: Fraction | None = None) -> Path:
    """An H.264 clip (optionally with a 440 Hz AAC track, as long as the video unless
    ``audio_seconds`` says otherwise, and rotation metadata). ``x264`` sets encoder options (a
    GOP, B-frames); ``pts`` with ``time_base`` gives each frame its own timestamp (variable rate)."""
    import av

    w, h = size
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=rate)
        v.width, v.height = w, h
        v.pix_fmt = pix_fmt or ("yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p")
        if x264:
            v.options = dict(x264)
        if time_base is not None:
            v.codec_context.time_base = time_base
        if rotation is not None:
            v.set_display_rotation(rotation)
        a = None
        if audio:
            a = c.add_stream("aac", rate=44100)
            a.layout = "mono"
        n_audio = int((audio_seconds or frames / float(rate)) * 44100)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n_audio) / 44100)).astype(np.float32)
        sent = 0
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(pattern(h, w, i), format="rgb24")
            f.pts = pts[i] if pts is not None else i
            if time_base is not None:
                f.time_base = time_base
            c.mux(v.encode(f))
            # interleave: audio up to the end of this frame, as real recordings are laid out
            until = min(n_audio, int((i + 1) / float(rate) * 44100))
            while a is not None and sent + 1024 <= until:
                af = av.AudioFrame.from_ndarray(tone[None, sent:sent + 1024], format="flt", layout="mono")
                af.sample_rate, af.pts = 44100, sent
                c.mux(a.encode(af))
                sent += 1024
        c.mux(v.encode(None))
        if a is not None:
            if sent < n_audio:
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[None, sent:]), format="flt", layout="mono")
                af.sample_rate, af.pts = 44100, sent
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path


def make_pcm_clip(path: Path, frames: int, size: tuple[int, int], rate: int, audio_rate: int, channels: int,
                  seconds: float) -> Path:
    """An .mkv of H.264 video and 16-bit PCM audio (a 440 Hz tone) at any sample rate."""
    import av

    w, h = size
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=rate)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = c.add_stream("pcm_s16le", rate=audio_rate)
        a.layout = layout
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(pattern(h, w, i), format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        n = int(seconds * audio_rate)
        tone = (np.sin(2 * np.pi * 440 * np.arange(n) / audio_rate) * 8000).astype(np.int16)
        af = av.AudioFrame.from_ndarray(np.repeat(tone[None], channels, axis=0).T.reshape(1, -1).copy(),
                                        format="s16", layout=layout)
        af.sample_rate, af.pts = audio_rate, 0
        c.mux(a.encode(af))
        c.mux(a.encode(None))
    return path


def probe(path: Path) -> dict:
    """Frame count (decoded), size, rate, rotation and audio duration of a file, via PyAV."""
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info = {"width": v.width, "height": v.height, "rate": v.average_rate, "audio": None, "pts": []}
        for f in c.decode(video=0):
            info["pts"].append(float(f.pts * f.time_base))
            info["rotation"] = getattr(f, "rotation", 0)
        info["frames"] = len(info["pts"])
    with av.open(str(path)) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            samples = sum(fr.samples for fr in c.decode(audio=0))
            info["audio"] = samples / a.codec_context.sample_rate
    return info


@pytest.fixture
def style_image(tmp_path) -> Path:
    from PIL import Image

    path = tmp_path / "style.png"
    rng = np.random.default_rng(1)
    img = (rng.random((96, 80, 3)) * 255).astype(np.uint8)
    img[::8] = [200, 30, 30]
    Image.fromarray(img).save(path)
    return path


def real_image(h=96, w=128) -> np.ndarray:
    """The first evaluation photo of ../shared/data, w wide and cropped to at most h rows; the
    moving pattern where the data is absent."""
    eval_dir = SHARED_DATA / "content" / "eval"
    if eval_dir.is_dir():
        from realtime.images import load_image, resize_long_side

        img = load_image(sorted(eval_dir.iterdir())[0])
        return np.ascontiguousarray(resize_long_side(img, w)[:h - h % 16 or 16])
    return pattern(h, w)


def modulated_model(path: Path):
    """A small reflect-padded student with a non-zero skip and style modulation, saved to path
    and loaded back (so the file format is part of what a test exercises)."""
    from realtime import nets
    from realtime.model import load_student, save_student

    torch.manual_seed(4)
    cfg = nets.StudentConfig(width=0.125, skips=("relu2_1",), padding="reflect", modulate=16)
    enc, dec = nets.student_encoder(cfg), nets.student_decoder(cfg)
    torch.nn.init.normal_(dec.skips["relu2_1"].weight, std=0.3)
    torch.nn.init.normal_(dec.mod.mlp[2].weight, std=0.3)
    return load_student(save_student(enc, dec, cfg, path))


def spread_output(model, frame: np.ndarray) -> None:
    """Random decoders give a near-constant output that clips to one grey, where any mismatch
    would hide; rescale the last convolution so the output of this frame spans mid-range."""
    from realtime.frames import rgb8_to_tensor

    with torch.no_grad():
        y = model(rgb8_to_tensor(frame), model.style_stats(rgb8_to_tensor(frame)))
        conv = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        conv.weight *= 0.2 / y.std()
        conv.bias += 0.5 - y.mean() * 0.2 / y.std()


def registered_model(name: str):
    """A registered model and whether it has real weights: a bundled one as shipped, a downloadable
    one with random weights."""
    from realtime import nets
    from realtime.model import StyleModel, load_model
    from realtime.registry import registry

    spec = registry()[name]
    if all(f.bundled for f in spec.files):
        return load_model(name, allow_download=False), True
    assert spec.arch == "adain-vgg19", f"no random stand-in for {name} ({spec.arch})"
    torch.manual_seed(0)
    return StyleModel(name, nets.vgg19_encoder(nets.vgg_normalised()), nets.adain_decoder()).eval(), False


def frame_diff(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """|ref - got| in uint8 levels, after checking both are frames of one shape and ref is a real
    picture (a flat colour would hide any mismatch)."""
    assert ref.dtype == got.dtype == np.uint8 and ref.shape == got.shape
    assert ref.std() > 10
    return np.abs(ref.astype(int) - got.astype(int))


def registered_case(name: str):
    """A registered model and a real image cropped to its stride; random weights get an output
    spread over mid-range, so a mismatch between backends shows."""
    model, trained = registered_model(name)
    s = model.stride
    img = real_image()
    img = np.ascontiguousarray(img[: img.shape[0] // s * s, : img.shape[1] // s * s])
    if not trained:
        spread_output(model, img)
    return model, img
