"""The evaluation metrics themselves: identities, orderings and file formats."""

import numpy as np
import pytest
import torch

from conftest import random_vgg16_state
from realtime import nets
from realtime.tools.evaluate import content_distance, contact_sheet, luminance_ssim, pick, style_distance
from realtime.tools.temporal_eval import FlowField, ghosting, naive_blend, read_flo, sintel_error, warping_error


@pytest.fixture(scope="module")
def teacher():
    return nets.vgg16_teacher(random_vgg16_state())


def _img(seed, h=64, w=64):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def test_distances_are_zero_on_identity_and_grow_with_change(teacher):
    from realtime.tools.evaluate import teacher_features

    a, b = _img(0), _img(1)
    fa, fb = teacher_features(teacher, a), teacher_features(teacher, b)
    noisy = np.clip(a.astype(int) + np.random.default_rng(2).integers(-20, 20, a.shape), 0, 255).astype(np.uint8)
    fn = teacher_features(teacher, noisy)
    assert style_distance(fa, fa) == pytest.approx(0, abs=1e-6)
    assert content_distance(fa, fa) == pytest.approx(0, abs=1e-6)
    assert 0 < content_distance(fn, fa) < content_distance(fb, fa)
    assert style_distance(fb, fa) > 0


def test_ssim():
    a = _img(0)
    assert luminance_ssim(a, a) == pytest.approx(1.0)
    assert luminance_ssim(a, _img(1)) < 0.2


def test_pick_spreads_over_the_folder(tmp_path):
    for i in range(10):
        (tmp_path / f"{i:02d}.jpg").write_bytes(b"x")
    assert [p.name for p in pick(tmp_path, 3)] == ["00.jpg", "04.jpg", "09.jpg"]  # linspace 0, 4.5, 9
    assert len(pick(tmp_path, 50)) == 10


def test_contact_sheet_shape():
    sheet = contact_sheet([[_img(0, 40, 60), _img(1, 80, 80)], [_img(2, 50, 50)]], height=32)
    assert sheet.shape[0] == 2 * (32 + 6) and sheet.dtype == np.uint8


def test_read_flo(tmp_path):
    flow = np.random.default_rng(0).normal(size=(5, 7, 2)).astype(np.float32)
    path = tmp_path / "f.flo"
    with open(path, "wb") as f:
        np.array([202021.25], np.float32).tofile(f)
        np.array([7, 5], np.int32).tofile(f)
        flow.tofile(f)
    assert np.array_equal(read_flo(path), flow)
    (tmp_path / "bad.flo").write_bytes(b"\0" * 16)
    with pytest.raises(ValueError):
        read_flo(tmp_path / "bad.flo")


def _textured(w=200, h=96):
    import cv2

    base = (np.random.default_rng(5).random((h // 4, w // 4 + 10, 3)) * 255).astype(np.uint8)
    return cv2.resize(base, ((w // 4 + 10) * 4, h), interpolation=cv2.INTER_CUBIC)


def test_warping_error_sees_flicker_not_motion():
    scene = _textured()
    frames = [np.ascontiguousarray(scene[:, 2 * t: 2 * t + 160]) for t in range(6)]
    flow = FlowField()
    flows = [flow(frames[t], frames[t - 1]) for t in range(1, 6)]
    steady = warping_error(frames, flows)
    flicker = [np.clip(f.astype(int) + (20 if t % 2 else -20), 0, 255).astype(np.uint8) for t, f in enumerate(frames)]
    assert steady < 0.02  # a clean pan is almost fully explained by the flow
    assert warping_error(flicker, flows) > steady + 0.1
    blended = naive_blend(flicker, 0.6)
    assert warping_error(blended, flows) < warping_error(flicker, flows)
    assert ghosting(frames, frames, flows) == 0.0


def test_sintel_error_with_exact_flow():
    img = _textured(120, 64)[:, :120]
    shifted = np.roll(img, 3, axis=1)  # frame t+1 is frame t moved 3 px right
    flow = np.zeros(img.shape[:2] + (2,), np.float32)
    flow[..., 0] = 3
    occ = np.zeros(img.shape[:2], bool)
    occ[:, -3:] = True  # these leave the frame
    assert sintel_error(img, shifted, flow, occ, np.zeros_like(occ)) < 1e-6


def test_border_measure_sees_a_painted_frame_and_not_a_photo():
    from realtime.tools.evaluate import border_measure

    from conftest import real_image

    img = real_image(240, 320)
    own = border_measure(img)
    framed = img.copy()
    framed[:3] = framed[-3:] = 235  # a bright band ...
    framed[:, :3] = framed[:, -3:] = 235
    framed[5] = framed[-6] = 20  # ... and a dark line a few rows in, as our first models drew
    framed[:, 5] = framed[:, -6] = 20
    assert border_measure(framed) > own + 15
    # it measures the edge, not the content: the same photo moved by a few pixels scores alike
    assert abs(border_measure(np.roll(img, (7, 9), axis=(0, 1))[12:, 12:]) - own) < max(3.0, 0.5 * own)
    with pytest.raises(ValueError, match="too small"):
        border_measure(img[:16, :16])
