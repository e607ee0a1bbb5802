"""Measuring time: a :class:`Timer` runs a statement in blocks, a :class:`Measurement` holds samples.

Modelled on ``torch.utils.benchmark``: a warm-up call, blocks sized so that clock overhead is
negligible, device synchronisation once per block (not per call), and adaptive repetition that stops
when the relative interquartile range is below a threshold or the time budget is spent.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np


class Clock(Protocol):
    """Times one block of calls. ``stop`` returns the elapsed seconds, after synchronising."""

    def start(self) -> None: ...

    def stop(self) -> float: ...


class WallClock:
    """``time.perf_counter`` around the block, with the backend's synchronisation at both ends."""

    def __init__(self, synchronize: Callable[[], None] = lambda: None):
        self._sync = synchronize
        self._t0 = 0.0

    def start(self) -> None:
        self._sync()
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        self._sync()
        return time.perf_counter() - self._t0


@dataclass
class Measurement:
    """Raw per-call times (one sample per block) and their statistics, in seconds."""

    samples: list[float]
    number: int  # calls per block
    median: float = field(init=False)
    iqr: float = field(init=False)

    def __post_init__(self):
        q1, q2, q3 = np.percentile(self.samples, [25, 50, 75])
        self.median, self.iqr = float(q2), float(q3 - q1)

    @classmethod
    def pooled(cls, measurements: list[Measurement]) -> Measurement:
        """One measurement of the samples of several rounds (taken in different processes and at
        different times, so that their spread includes what varies between runs)."""
        return cls([s for m in measurements for s in m.samples], measurements[0].number)

    def scaled(self, factor: float) -> Measurement:
        """The samples times ``factor`` (in another unit)."""
        return Measurement([s * factor for s in self.samples], self.number)

    @property
    def relative_iqr(self) -> float:
        return self.iqr / self.median if self.median > 0 else float("inf")


class Timer:
    """Time ``stmt`` (a no-argument callable) with a :class:`Clock`."""

    def __init__(self, stmt: Callable[[], object], clock: Clock | None = None):
        self.stmt = stmt
        self.clock = clock or WallClock()

    def _block(self, number: int) -> float:
        self.clock.start()
        for _ in range(number):
            self.stmt()
        return self.clock.stop() / number

    def block_size(self, min_block_time: float = 0.02) -> int:
        """Grow the number of calls per block until one block takes ``min_block_time``."""
        return self._calibrate(min_block_time)[0]

    def _calibrate(self, min_block_time: float = 0.02) -> tuple[int, float]:
        """The calls per block, and the per-call time of the last calibration block: that block ran
        exactly that many calls after the warm-up and took at least ``min_block_time``, so it is
        the first sample (at T = 2000 a call takes seconds: one call fewer per measurement)."""
        number = 1
        while True:
            per_call = self._block(number)
            if per_call * number >= min_block_time or number >= 1_000_000:
                return number, per_call
            number = max(number * 2, int(min_block_time / max(per_call, 1e-9)) + 1)

    def blocks(self, number: int, repeat: int) -> Measurement:
        """Exactly ``repeat`` blocks of ``number`` calls (a block size calibrated earlier)."""
        return Measurement([self._block(number) for _ in range(repeat)], number)

    def timeit(self, repeat: int) -> Measurement:
        """Exactly ``repeat`` blocks (no adaptivity), for reproducible counts."""
        number, first = self._calibrate()
        return Measurement([first] + [self._block(number) for _ in range(repeat - 1)], number)

    def adaptive_autorange(
        self, threshold: float = 0.1, min_blocks: int = 5, min_time: float = 0.1, budget: float = 2.0
    ) -> Measurement:
        """Repeat blocks until IQR/median < ``threshold`` (after ``min_blocks`` and ``min_time``)
        or until ``budget`` seconds have been spent."""
        number, first = self._calibrate()
        samples: list[float] = [first]
        spent = first * number
        while True:
            samples.append(self._block(number))
            spent += samples[-1] * number
            if len(samples) >= min_blocks and spent >= min_time:
                if Measurement(samples, number).relative_iqr < threshold or spent >= budget:
                    break
            elif spent >= budget and len(samples) >= 3:
                break
        return Measurement(samples, number)
