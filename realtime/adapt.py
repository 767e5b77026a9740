"""Adaptive resolution for live runs: hold a frame rate when the machine is busy.

When OBS, a browser and a call share the CPU, the model gets a fraction of it and, at full
resolution, frames pile up and latency doubles. ``Adapter`` watches how long each frame takes
on the inference thread and steps the processing scale down (the Stylizer stylises at a
smaller size and scales back up) when the frames take longer than the target allows, and up
again, one step at a time and only after a calm stretch, when they would fit. For torch
backends it also tries one intra-op thread against the default now and then, and keeps the
faster: OpenMP workers that spin at barriers waste their time slices when another process
holds the other core.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LEVELS = (1.0, 0.85, 0.72, 0.6, 0.5, 0.42, 0.35)  # fractions of the frame's long side
DOWN_AFTER = 6  # frames over budget (smoothed) before stepping down
OVER = 1.1  # "over budget": slower than the target by more than this factor (a few % is noise, not load)
UP_AFTER = 45  # frames at a level before stepping up, and only if the next level up would fit
UP_MARGIN = 0.75  # ... with this share of the budget to spare
PROBE_EVERY = 240  # frames between thread probes
PROBE_FRAMES = 10  # frames timed per thread setting in a probe
MIN_SIDE = 96  # never process below this long side


@dataclass
class Adapter:
    """Per-frame: ``max_size(shape)`` before stylising, ``record(seconds)`` after.

    target_fps: the rate to hold. thread_options: intra-op thread counts to try ((): do not).
    """

    target_fps: float
    thread_options: tuple[int, ...] = ()
    level: int = 0
    lowest: int = 0
    threads: int | None = None
    changes: int = 0
    _ema: float | None = None
    _since_change: int = 0
    _frames: int = 0
    _probe: list = field(default_factory=list)  # [(threads, [seconds...])] while probing

    @property
    def budget(self) -> float:
        return 1.0 / self.target_fps

    @property
    def scale(self) -> float:
        return LEVELS[self.level]

    def max_size(self, shape: tuple[int, ...], user_max: int | None = None) -> int | None:
        """The long side to stylise at (None: full size)."""
        long_side = max(shape[:2])
        if self.level == 0:
            return user_max
        side = max(MIN_SIDE, round(long_side * self.scale))
        return min(side, user_max) if user_max else side

    def record(self, seconds: float) -> None:
        self._frames += 1
        self._since_change += 1
        if self._probing(seconds):
            return
        self._ema = seconds if self._ema is None else 0.7 * self._ema + 0.3 * seconds
        over = self._ema > OVER * self.budget
        if over and self._since_change >= DOWN_AFTER and self.level < len(LEVELS) - 1:
            self._step(+1)
        elif not over and self._since_change >= UP_AFTER and self.level > 0:
            ratio = (LEVELS[self.level - 1] / LEVELS[self.level]) ** 2  # work grows with the area
            if self._ema * ratio < UP_MARGIN * self.budget:
                self._step(-1)
        if self.thread_options and self._frames % PROBE_EVERY == 0:
            self._probe = [(n, []) for n in self.thread_options]
            self._set_threads(self._probe[0][0])

    def _step(self, direction: int) -> None:
        old = LEVELS[self.level]
        self.level += direction
        self.lowest = max(self.lowest, self.level)
        self.changes += 1
        self._since_change = 0
        if self._ema is not None:  # a guess until new frames are timed
            self._ema *= (LEVELS[self.level] / old) ** 2

    def _probing(self, seconds: float) -> bool:
        """Time PROBE_FRAMES frames with each thread setting, then keep the fastest."""
        if not self._probe:
            return False
        for i, (n, times) in enumerate(self._probe):
            if len(times) < PROBE_FRAMES:
                times.append(seconds)
                if len(times) == PROBE_FRAMES and i + 1 < len(self._probe):
                    self._set_threads(self._probe[i + 1][0])
                break
        if all(len(times) == PROBE_FRAMES for _, times in self._probe):
            best = min(self._probe, key=lambda p: sorted(p[1])[len(p[1]) // 2])[0]
            self._set_threads(best)
            self._probe = []
        return True

    def _set_threads(self, n: int) -> None:
        import torch

        if self.threads != n:
            torch.set_num_threads(n)
            self.threads = n

    def describe(self) -> dict:
        return {"target_fps": self.target_fps, "scale": self.scale, "lowest_scale": LEVELS[self.lowest],
                "scale_changes": self.changes, "threads": self.threads}


def make_adapter(stylizer, target_fps: float) -> Adapter:
    """An Adapter for this Stylizer: torch backends on the CPU also get the thread probe."""
    import torch

    options: tuple[int, ...] = ()
    if stylizer.device.type == "cpu" and stylizer.backend.name.startswith("torch"):
        n = torch.get_num_threads()
        options = (n, 1) if n > 1 else ()
    return Adapter(target_fps, options, threads=torch.get_num_threads())
