"""Temporal smoothing on synthetic motion: less flicker, no ghosts, cuts reset."""

import numpy as np
import pytest
import torch

from realtime.temporal import TemporalConfig, TemporalSmoother, fb_confidence, full_res_map, warp


def _scene(h=120, w=160, seed=0):
    import cv2

    rng = np.random.default_rng(seed)
    base = (rng.random((h // 8, w // 8 + 40, 3)) * 255).astype(np.uint8)
    return cv2.resize(base, ((w // 8 + 40) * 8, h), interpolation=cv2.INTER_CUBIC)


def _pan(t, w=160):
    return np.ascontiguousarray(_scene()[:, 2 * t: 2 * t + w])  # moves 2 px per frame


def _flicker(frame, t):
    """A stand-in for per-frame stylisation: the frame plus noise that changes every frame."""
    noise = np.random.default_rng(100 + t).normal(0, 12, frame.shape)
    return np.clip(frame + noise, 0, 255).astype(np.uint8)


def test_warp_with_constant_flow_shifts():
    img = _scene()
    flow = np.zeros(img.shape[:2] + (2,), np.float32)
    flow[..., 0] = 3
    out = warp(img, flow)
    assert np.array_equal(out[:, :-3], img[:, 3:])


def test_full_res_map_equals_scaling_the_flow_up():
    import cv2

    rng = np.random.default_rng(0)
    small = cv2.GaussianBlur(rng.normal(0, 3, (30, 40, 2)).astype(np.float32), (0, 0), 3)
    full = cv2.resize(small, (80, 60), interpolation=cv2.INTER_LINEAR) * 2  # the flow in full-size pixels
    ys, xs = np.mgrid[0:60, 0:80].astype(np.float32)
    expected = full + np.stack([xs, ys], axis=-1)
    err = np.abs(full_res_map(small, (80, 60)) - expected)
    assert err[1:-1, 1:-1].max() < 1e-3  # exact inside
    assert err.max() <= 0.5 + 1e-3  # half a pixel at the outermost rows and columns


@pytest.mark.parametrize("backward", [True, False])
def test_confidence_drops_where_the_match_is_wrong(backward):
    img = _scene()[..., 1].copy()  # a grey frame
    zero = np.zeros(img.shape + (2,), np.float32)
    changed = img.copy()
    changed[20:50, 30:70] = 255 - changed[20:50, 30:70]  # something new appeared here
    conf = fb_confidence(changed, img, zero, zero if backward else None, 0.75, 0.06)
    assert conf[60:, 100:].min() > 0.99  # unchanged and still: trusted
    assert conf[25:45, 35:65].mean() < 0.1  # the photometric check catches the change with or without flow back
    shifted = zero.copy()
    shifted[..., 0] = -5  # points outside the frame on the left
    assert (fb_confidence(img, img, shifted, None, 0.75, 0.06)[:, :5] == 0).all()


def test_smoothing_reduces_flicker_on_a_pan():
    sm = TemporalSmoother(TemporalConfig(strength=0.8))
    fresh_diffs, smooth_diffs = [], []
    prev_fresh = prev_smooth = None
    for t in range(12):
        frame = _pan(t)
        sm.begin(frame)
        fresh = _flicker(frame, t)
        smooth = sm.blend(fresh)
        if prev_fresh is not None:  # motion-compensated change: content moved 2 px left
            fresh_diffs.append(np.abs(fresh[:, :-2].astype(float) - prev_fresh[:, 2:]).mean())
            smooth_diffs.append(np.abs(smooth[:, :-2].astype(float) - prev_smooth[:, 2:]).mean())
        prev_fresh, prev_smooth = fresh, smooth
    assert np.mean(smooth_diffs[3:]) < 0.6 * np.mean(fresh_diffs[3:])


def test_a_small_fast_object_keeps_a_trusted_flow():
    """A 60-px textured block crossing a still background at 20 px per frame (a hand waved at a
    webcam). A coarse flow (DIS refined only to a 64-px-wide level) loses it, and the confidence
    then hands it to the fresh, flickering frame (mean 0.6 here); the default flow follows it."""
    import cv2

    rng = np.random.default_rng(0)
    block = cv2.resize((rng.random((80, 166, 3)) * 255).astype(np.uint8), (1000, 480), interpolation=cv2.INTER_CUBIC)
    still = cv2.resize((rng.random((30, 40, 3)) * 255).astype(np.uint8), (640, 480), interpolation=cv2.INTER_CUBIC)
    sm = TemporalSmoother()
    confs = []
    for t in range(10):
        x = 40 + 20 * t
        frame = still.copy()
        frame[200:260, x:x + 60] = block[200:260, x:x + 60]
        sm.begin(frame)
        sm.blend(frame)
        if t:
            conf = cv2.resize(sm.last_confidence, (640, 480), interpolation=cv2.INTER_LINEAR)
            confs.append(conf[210:250, x + 10:x + 50].mean())
    assert np.mean(confs) > 0.72


def test_no_ghost_where_an_object_left():
    sm = TemporalSmoother(TemporalConfig(strength=0.8))
    bg = _scene()[:, :160]
    for t in range(8):
        frame = bg.copy()
        x = 20 + 12 * t  # a white square moving 12 px per frame
        frame[40:80, x:x + 30] = 255
        sm.begin(frame)
        out = sm.blend(frame)  # identity "stylisation": any ghost is the smoother's doing
    left = slice(40, 80), slice(20 + 12 * 6, 20 + 12 * 7)  # where the square was one frame ago
    ghost = np.abs(out[left].astype(float) - frame[left]).mean()
    naive = 0.6 * np.abs(255.0 - frame[left]).mean()  # what a 0.6 pixel blend leaves there
    assert ghost < 0.2 * naive


@pytest.mark.parametrize("clamp", [0, 3])
def test_clamp_cuts_what_the_fresh_output_never_had(clamp):
    """A dark streak in the previous output on a still, flat wall (what a bad flow drags in) is
    kept by plain blending and cut by the neighbourhood clamp; the wall's own flicker still averages."""
    sm = TemporalSmoother(TemporalConfig(strength=0.9, clamp=clamp, detail_restore=0.0))
    wall = np.full((120, 160, 3), 200, np.uint8)
    frame = _scene()[:, :160]  # the input: still, so flow and confidence trust every pixel
    sm.begin(frame)
    sm.blend(wall)
    sm._out_prev = sm._out_prev.copy()
    sm._out_prev[:, 80:82] = 60  # the streak
    sm.begin(frame)
    fresh = _flicker(wall, 1)
    out = sm.blend(fresh).astype(float)
    streak = np.abs(out[:, 80:82] - fresh[:, 80:82]).mean()
    if clamp:
        assert streak < 50  # within the fresh wall's own noise and the clamp's slack (half its range)
        assert out[:, 20:60].std() < 0.5 * fresh[:, 20:60].std()  # flicker away from the streak still averages
    else:
        assert streak > 100


def test_scene_cut_resets():
    sm = TemporalSmoother()
    a = _scene(seed=1)[:, :160]
    b = (_scene(seed=2)[:, :160] * 0.5).astype(np.uint8)  # another scene, darker
    for frame in (a, a):
        sm.begin(frame)
        sm.blend(_flicker(frame, 0))
    assert sm.begin(b) is True
    fresh = _flicker(b, 5)
    assert np.array_equal(sm.blend(fresh), fresh)
    assert sm.cuts == 1


def test_stats_move_by_the_momentum():
    sm = TemporalSmoother(TemporalConfig(stats_momentum=0.75))
    m0, s0 = torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1)
    assert torch.equal(sm.smooth_stats({"relu4_1": (m0, s0)})["relu4_1"][0], m0)
    m, s = sm.smooth_stats({"relu4_1": (m0 + 4, s0 * 3)})["relu4_1"]
    assert torch.allclose(m, m0 + 1) and torch.allclose(s, s0 * 1.5)
    with pytest.raises(ValueError):
        TemporalConfig(strength=1.0)


def test_stylizer_temporal_flag(tiny_model):
    from realtime.stylizer import Stylizer

    s = Stylizer(tiny_model, device="cpu", temporal=True, temporal_strength=0.5)
    s.set_style(_scene())
    outs = [s.stylize(_pan(t)) for t in range(3)]
    assert all(o.shape == (120, 160, 3) for o in outs)
    assert s.smoother.last_confidence is not None
    s.reset()
    assert s.smoother.last_confidence is None



def _fine_texture(t, w=160):
    """Fine blurred-noise texture drifting 1.5 px per frame: sub-pixel warps blur it."""
    import cv2

    rng = np.random.default_rng(7)
    base = cv2.GaussianBlur((rng.random((120, w + 40, 3)) * 255).astype(np.uint8), (0, 0), 1.0)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)
    shift = np.float32([[1, 0, -1.5 * t], [0, 1, 0]])
    return cv2.warpAffine(base, shift, (w + 40, 120), flags=cv2.INTER_CUBIC)[:, :w]


@pytest.mark.parametrize("interpolation, restore, low, high", [
    ("linear", 0.0, 0.0, 0.85),  # repeated bilinear warps wash the texture out
    ("linear", 1.0, 0.9, 1.1),  # the unsharp mask brings it back (the default)
    ("cubic", 1.0, 0.9, 1.1),  # and keeps it with the sharper resampling
])
def test_texture_contrast_survives_repeated_warps(interpolation, restore, low, high):
    from realtime.temporal import detail_energy

    sm = TemporalSmoother(TemporalConfig(strength=0.9, detail_restore=restore, interpolation=interpolation))
    for t in range(12):
        frame = _fine_texture(t)
        sm.begin(frame)
        out = sm.blend(frame)  # identity "stylisation": any loss of contrast is the smoother's
    assert sm.last_confidence.mean() > 0.8  # the flow tracked the drift, so the warp was used
    assert low < detail_energy(out) / detail_energy(frame) < high
