"""The Timer's arithmetic with a fake clock: block sizing, per-call times, when repetition stops,
and the compile time that one grid point derives from the first call."""
from __future__ import annotations

import itertools

import pytest

from harness.measure.timing import Measurement, Timer, WallClock


class FakeClock:
    """Virtual seconds: a statement advances ``now``; the clock reads it."""

    def __init__(self):
        self.now = 0.0
        self.blocks = 0

    def start(self) -> None:
        self._t0 = self.now

    def stop(self) -> float:
        self.blocks += 1
        return self.now - self._t0


def _timer(costs) -> tuple[Timer, FakeClock]:
    clock = FakeClock()
    costs = iter(costs)

    def stmt():
        clock.now += next(costs)

    return Timer(stmt, clock), clock


def test_block_grows_until_it_takes_the_minimum_block_time():
    timer, _ = _timer(itertools.repeat(0.001))
    assert timer.block_size(min_block_time=0.02) == 21  # 1 call: 1 ms, so int(0.02 / 0.001) + 1
    slow, _ = _timer(itertools.repeat(0.5))
    assert slow.block_size(min_block_time=0.02) == 1


def test_a_sample_is_the_blocks_time_divided_by_its_number_of_calls():
    timer, _ = _timer(itertools.repeat(0.001))
    m = timer.timeit(repeat=4)
    assert m.number == 21 and len(m.samples) == 4
    assert m.samples == pytest.approx([0.001] * 4, rel=1e-9)
    assert m.median == pytest.approx(0.001) and m.iqr == pytest.approx(0.0, abs=1e-15)


def test_the_calibration_block_is_the_first_sample():
    """A call longer than the minimum block time is a block of one call: the block that found the
    block size is kept, so a slow statement runs exactly ``repeat`` times, not once more."""
    timer, clock = _timer([0.5, 0.7, 0.6])  # a fourth call would run out of costs
    m = timer.timeit(repeat=3)
    assert (m.number, clock.blocks) == (1, 3) and m.samples == pytest.approx([0.5, 0.7, 0.6])
    fast, clock = _timer([0.001] + [0.0015] * 21 + [0.001] * 21)  # calibration: 1 call, then a block of 21
    m = fast.timeit(repeat=2)
    assert m.number == 21 and clock.blocks == 3 and m.samples == pytest.approx([0.0015, 0.001])


def test_adaptive_autorange_stops_at_min_blocks_once_the_spread_is_small():
    timer, clock = _timer(itertools.repeat(0.001))
    m = timer.adaptive_autorange(threshold=0.1, min_blocks=5, min_time=0.1, budget=10.0)
    assert len(m.samples) == 5  # 5 blocks of 21 ms pass min_time (0.1 s) and min_blocks together


def test_adaptive_autorange_stops_at_the_budget_when_the_spread_stays_large():
    # Blocks alternate between 1 ms and 3 ms per call: IQR / median never falls below 10 %.
    # Finite: a timer that ignored the budget would run out of costs and fail instead of hanging.
    costs = itertools.chain([0.001] * 21, itertools.islice(itertools.cycle([0.001] * 21 + [0.003] * 21), 21 * 400))
    timer, _ = _timer(costs)
    m = timer.adaptive_autorange(threshold=0.1, min_blocks=5, min_time=0.1, budget=1.0)
    spent = sum(s * m.number for s in m.samples)
    assert m.relative_iqr >= 0.1
    assert 1.0 <= spent < 1.0 + 0.063  # stops with the first block past the budget (a block is <= 63 ms)


def test_measurement_statistics():
    m = Measurement([1.0, 2.0, 3.0, 4.0, 100.0], number=7)
    assert m.median == 3.0 and m.iqr == 2.0 and m.relative_iqr == pytest.approx(2 / 3)


def test_pooled_rounds_keep_every_sample():
    pooled = Measurement.pooled([Measurement([1.0, 2.0], number=3), Measurement([3.0, 4.0, 5.0], number=3)])
    assert pooled.samples == [1.0, 2.0, 3.0, 4.0, 5.0] and pooled.median == 3.0 and pooled.number == 3


@pytest.mark.parametrize("repeat", [None, 1, 2, 3, 7, 15])
@pytest.mark.parametrize("rounds", [1, 2, 3, 4])
def test_rounds_share_repeat_and_budget_exactly(repeat, rounds):
    from harness.suites import Timing

    timing = Timing(repeat=repeat, rounds=rounds, budget=1.2, min_blocks=5)
    shares = [timing.share(r) for r in range(1, timing.passes + 1)]
    assert sum(budget for _, budget, _ in shares) == pytest.approx(1.2)
    assert 5 <= sum(min_blocks for _, _, min_blocks in shares) < 5 + timing.passes
    if repeat is None:
        assert timing.passes == rounds and all(blocks is None for blocks, _, _ in shares)
    else:  # never a round with no block, and the blocks add up to --repeat
        assert timing.passes == min(rounds, repeat)
        assert all(blocks >= 1 for blocks, _, _ in shares) and sum(blocks for blocks, _, _ in shares) == repeat


def test_wall_clock_synchronises_at_both_ends_of_a_block():
    calls = []
    clock = WallClock(lambda: calls.append("sync"))
    clock.start()
    assert calls == ["sync"]
    assert clock.stop() >= 0.0 and calls == ["sync", "sync"]


def _virtual_backend(clock: FakeClock, first: float, later: float):
    """A NumPy backend on a fake clock: its first forward costs ``first`` virtual seconds, the rest ``later``."""
    from harness_plugins.numpy_backend import NumpyBackend

    class Virtual(NumpyBackend):
        name = "virtual"
        calls = 0

        def clock(self):
            return clock

        def forward(self):
            Virtual.calls += 1
            clock.now += first if Virtual.calls == 1 else later
            super().forward()

    return Virtual()


def _measure(tmp_path, backend, **suite_settings):
    from harness import suites
    from harness.run import grid, point
    from harness_plugins.tasks import TemporalOrderTask
    from tests.support.suites import write_suite

    suite = suites.load(write_suite(tmp_path / "s", metrics='["time"]', **suite_settings))
    return point.measure(backend, grid.PointJob(backend.name, "rnn_tanh", 12, suite), TemporalOrderTask())


def test_the_suites_budget_bounds_the_adaptive_repeats_of_a_point(tmp_path):
    """No --repeat and a threshold that is never met: the budget (0.5 virtual s) ends the repeats.
    Calls cost 8 ms, so a block is 3 calls (24 ms) and 21 blocks first pass the budget."""
    backend = _virtual_backend(FakeClock(), first=0.008, later=0.008)
    result = _measure(tmp_path, backend, timing={"repeat": None, "threshold": "0.0", "budget": "0.5",
                                                 "min_blocks": "3", "rounds": "1"})
    m = result.time.forward_backward
    assert m.number == 3 and len(m.samples) == 21


def test_compile_time_is_the_first_call_minus_the_median_of_the_next(tmp_path):
    """A backend whose first forward costs 0.5 virtual seconds and every later one 0.01 s."""
    from harness import suites
    from harness.run import grid, point
    from harness_plugins.tasks import TemporalOrderTask
    from tests.support.suites import write_suite

    suite = suites.load(write_suite(tmp_path / "s"))
    backend = _virtual_backend(FakeClock(), first=0.5, later=0.01)
    seconds = point.compile_time(backend, grid.PointJob("virtual", "rnn_tanh", 12, suite, "compile"),
                                 TemporalOrderTask())
    assert seconds == pytest.approx(0.49)
