"""Training outcomes over seeds (harness/record/outcomes.py): Kaplan-Meier with right-censoring, the
bootstrap interval, stayed-solved, and paired differences, against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.record import outcomes
from harness.record.results import OK, PointResult, Training


def _point(seed: int, solved_at: int | None, final: float = 0.5, init: str = "default", iterations: int = 100,
           unsolved_at: int | None = None, cell: str = "gru") -> PointResult:
    training = Training(iterations=iterations, planned_iterations=100, baseline=1.0, train_loss=(), grad_norm=(),
                        clipped=(), eval_iterations=(0, iterations), eval_loss=(1.0, final), eval_accuracy=None,
                        snapshots=(), solved_at=solved_at, unsolved_at=unsolved_at)
    return PointResult("numpy", cell, 50, "float32", OK, hidden=8, batch=4, init=init, seed=seed, clip=1.0,
                       training=training, steps=50)


def test_kaplan_meier_with_censoring_by_hand():
    """Solves at 10 and 30, censored at 20 and 100: S(10) = 3/4, then at 30 two remain at risk:
    S(30) = 3/4 * 1/2 = 3/8 (a censored run leaves the risk set, it does not count as solved)."""
    steps = outcomes.survival([10, 20, 30, 100], [True, False, True, False])
    assert steps == ((10.0, 0.75), (30.0, 0.375))
    assert outcomes.median_time([10, 20, 30, 100], [True, False, True, False]) == 30.0


def test_the_median_is_not_reached_when_fewer_than_half_solve():
    assert math.isinf(outcomes.median_time([40, 100, 100], [True, False, False]))
    assert outcomes.median_time([40, 60, 100], [True, True, False]) == 60.0  # S(60) = 1/3


def test_an_outcome_counts_solved_stayed_and_gives_an_interval_only_for_several_seeds():
    points = [_point(0, 20), _point(1, 40, unsolved_at=60), _point(2, None), _point(3, 30)]
    o = outcomes.outcome(points)
    assert (o.solved, o.stayed_solved, o.runs, o.budget) == (3, 2, 4, 100)
    assert o.median == 30.0  # S: 3/4 after 20, 1/2 after 30
    low, high = o.interval
    assert 20.0 <= low <= o.median <= high  # a percentile interval over resamples of the four runs
    assert math.isinf(high)  # resamples with two or more unsolved runs do not reach their median
    assert outcomes.outcome([_point(0, 20)]).interval is None


def test_the_bootstrap_is_reproducible():
    points = [_point(s, 10 * (s + 1)) for s in range(5)]
    assert outcomes.outcome(points).interval == outcomes.outcome(points).interval


def test_paired_differences_compare_on_the_common_seeds_only():
    """chrono solves first on seeds 0 and 1, ties on 2 (neither solved), and seed 3 ran only one
    setting: it is left out."""
    default = [_point(0, 60, 0.2), _point(1, None, 0.9), _point(2, None, 0.8), _point(3, 10, 0.1)]
    chrono = [_point(0, 30, 0.1, init="chrono"), _point(1, 90, 0.45, init="chrono"),
              _point(2, None, 0.8, init="chrono")]
    (d,) = outcomes.paired(default + chrono, "init")
    assert (d.base, d.other, d.seeds) == ("default", "chrono", (0, 1, 2))
    assert (d.other_first, d.base_first, d.ties) == (2, 0, 1)
    assert d.log_ratio_difference == pytest.approx(np.median([math.log10(0.5), math.log10(0.5), 0.0]))
    assert outcomes.varied_axes(default + chrono) == ["init"]


def test_unfinished_points_do_not_count():
    failed = PointResult("numpy", "gru", 50, "float32", "failed", reason="boom", hidden=8, batch=4, init="default",
                         seed=9, clip=1.0)
    (o,) = outcomes.outcomes([_point(0, 20), failed])
    assert o.seeds == (0,)


def test_a_diverged_run_is_censored_at_its_budget_not_where_it_stopped():
    """Two runs diverged at iterations 10 and 20 (they stopped for good), one solved at 100 (the budget),
    one never did: 1 of 4 solved, so the median is not reached. Censoring the diverged runs where they
    stopped would have left two runs at risk at 100 and put the median there."""
    import dataclasses

    def diverged(seed: int, at: int) -> PointResult:
        p = _point(seed, None, iterations=at)
        return dataclasses.replace(p, training=dataclasses.replace(p.training, diverged_at=at))

    points = [diverged(0, 10), diverged(1, 20), _point(2, 100), _point(3, None)]
    assert math.isinf(outcomes.median_iterations(points)) and math.isinf(outcomes.outcome(points).median)
    assert outcomes.outcome(points).stayed_solved == 1
