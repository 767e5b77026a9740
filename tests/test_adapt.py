"""Adaptive resolution: the live path holds its frame rate on a busy machine and gives the
resolution back when the machine is free again (simulated frame times; the measured
contention bench is `stylize bench --contention`)."""

import pytest

from realtime.adapt import LEVELS, OVER, Adapter


def _run(adapter, frames, cost_at_full):
    """Feed frame times that grow with the processed area, as the network's do."""
    scales = []
    for _ in range(frames):
        adapter.record(cost_at_full * adapter.scale ** 2 + 0.002)
        scales.append(adapter.scale)
    return scales


def test_steps_down_until_frames_fit_then_holds():
    a = Adapter(target_fps=25)  # 40 ms per frame
    scales = _run(a, 300, cost_at_full=0.080)  # twice the budget at full size: 0.72 fits (41 -> 43 ms), 0.6 does
    final = scales[-1]
    assert final < 1.0 and 0.080 * final ** 2 + 0.002 <= OVER * 0.040  # within the tolerance it allows
    assert len(set(scales[-150:])) == 1  # settled: no see-sawing between levels
    assert a.changes <= len(LEVELS)


def test_gives_the_resolution_back_when_the_load_goes():
    a = Adapter(target_fps=25)
    _run(a, 200, cost_at_full=0.080)
    assert a.scale < 1.0
    _run(a, 400, cost_at_full=0.020)  # the other programs closed
    assert a.scale == 1.0


def test_an_idle_machine_keeps_full_resolution():
    a = Adapter(target_fps=30)
    assert set(_run(a, 500, cost_at_full=0.020)) == {1.0}
    assert a.max_size((480, 640, 3)) is None
    a.level = 3
    assert a.max_size((480, 640, 3)) == round(640 * LEVELS[3])
    assert a.max_size((480, 640, 3), user_max=300) == 300


def test_thread_probe_keeps_the_faster_setting(monkeypatch):
    import torch

    current = {"n": 2}
    monkeypatch.setattr(torch, "set_num_threads", lambda n: current.__setitem__("n", n))
    a = Adapter(target_fps=25, thread_options=(2, 1), threads=2)
    for _ in range(600):  # two threads are slower here (a competitor holds one core)
        a.record(0.030 if current["n"] == 2 else 0.020)
    assert a.threads == 1 and current["n"] == 1
