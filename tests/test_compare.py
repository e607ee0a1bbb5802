"""harness compare: asv's significance decision on the stored samples, marks, factor, and the exit code."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from harness.record.results import FAILED, SKIPPED
from harness.report.compare import compare, compare_report
from harness.report.console import render
from tests.support.runs import record_synthetic, synthetic_point

TIMING = "tiny.time_forward_backward"


def _changes(results_dir: Path, before: str, after: str, factor: float = 1.1, normalize: bool = True) -> dict:
    return {(c.key[0], c.key[1][0]): c for c in compare(results_dir, before, after, factor, normalize)}


@pytest.mark.parametrize("after, spread, mark, noise", [
    (1.0, 0.01, " ", False),   # identical distributions: no mark
    (1.2, 0.01, "+", False),   # a 20% shift with tight samples: a regression
    (1.2, 0.5, " ", True),     # a 20% shift within wide samples: "~", within the noise
    (0.8, 0.01, "-", False),   # a 20% improvement with tight samples
])
def test_significance_comes_from_the_samples(tmp_path, after, spread, mark, noise):
    record_synthetic(tmp_path, "before", [synthetic_point("a", 10, 1.0, spread=spread)])
    record_synthetic(tmp_path, "after", [synthetic_point("a", 10, after, spread=spread)])
    c = _changes(tmp_path / "results", "before", "after")[(TIMING, "a")]
    assert (c.mark, c.within_noise) == (mark, noise)
    assert c.ratio == pytest.approx(after, rel=1e-12)


@pytest.mark.parametrize("time_after, probe_after, mark, judged", [
    (1.4, 1.4, " ", 1.0),  # the whole machine 1.4 x slower: no change in probe units
    (1.3, 1.0, "+", 1.3),  # the backend 1.3 x slower on a machine as fast as before: a regression
    (1.0, 0.7, "+", 1.0 / 0.7),  # as fast in seconds while the machine was 1.4 x faster: slower code
])
def test_timings_are_judged_in_units_of_the_machine_probe(tmp_path, time_after, probe_after, mark, judged):
    record_synthetic(tmp_path, "before", [synthetic_point("a", 10, 1.0, probe=1.0)])
    record_synthetic(tmp_path, "after", [synthetic_point("a", 10, time_after, probe=probe_after)])
    c = _changes(tmp_path / "results", "before", "after")[(TIMING, "a")]
    assert (c.mark, c.judged_ratio, c.machine) == (mark, pytest.approx(judged), pytest.approx(probe_after))
    assert c.ratio == pytest.approx(time_after)
    raw = _changes(tmp_path / "results", "before", "after", normalize=False)[(TIMING, "a")]
    assert raw.mark == ("+" if time_after > 1.1 else " ") and raw.machine is None  # --raw: seconds decide
    names = {key for key, _ in _changes(tmp_path / "results", "before", "after")}
    assert not any("probe" in name for name in names)  # the probe's own rows are the machine column


def test_a_side_without_probe_is_judged_in_seconds(tmp_path):
    record_synthetic(tmp_path, "before", [synthetic_point("a", 10, 1.0)])  # a file from before the probe
    record_synthetic(tmp_path, "after", [synthetic_point("a", 10, 1.3, probe=1.0)])
    c = _changes(tmp_path / "results", "before", "after")[(TIMING, "a")]
    assert (c.mark, c.machine, c.judged_ratio) == ("+", None, pytest.approx(1.3))


@pytest.mark.parametrize("before, after, mark", [
    ((0.9, 1.0, 1.5), (1.3, 1.0, 1.6), " "),  # median 1.3x, but the samples overlap: within the noise
    ((0.9, 1.0, 1.1), (2.9, 3.0, 3.1), "+"),  # three times slower in every sample
    ((), (), "+"),                            # a file without samples: the ratio alone decides (1.3x)
])
def test_compile_times_are_judged_from_their_samples(tmp_path, before, after, mark):
    from harness.record.results import OK, CompileResult

    for label, samples in (("before", before), ("after", after)):
        cold = sorted(samples)[len(samples) // 2] if samples else (1.0 if label == "before" else 1.3)
        compiled = CompileResult("a", "lstm", "float32", OK, cold_s=cold, warm_s=0.1, cold_samples=samples,
                                 warm_samples=(0.1,) * len(samples))
        record_synthetic(tmp_path, label, [synthetic_point("a", 10, 1.0)], compile=[compiled])
    changes = {c.key[0]: c for c in compare(tmp_path / "results", "before", "after")}
    assert changes["tiny.compile_time_cold"].mark == mark
    assert changes["tiny.compile_time_warm"].mark == " "


def test_marks_ratio_factor_and_failed_versus_skipped(tmp_path):
    record_synthetic(tmp_path, "before", [synthetic_point(name, 10, 1.0) for name in "abcd"])
    record_synthetic(tmp_path, "after", [
        synthetic_point("a", 10, 2.0), synthetic_point("b", 10, 0.5),
        synthetic_point("c", 10, 1.0, status=FAILED), synthetic_point("d", 10, 1.0, status=SKIPPED)])
    changes = _changes(tmp_path / "results", "before", "after")
    a, b, c, d = (changes[(TIMING, name)] for name in "abcd")
    assert (a.mark, a.ratio, a.regression) == ("+", pytest.approx(2.0, rel=1e-12), True)
    assert (b.mark, b.ratio, b.regression) == ("-", pytest.approx(0.5, rel=1e-12), False)
    assert c.mark == "!" and c.after is None and c.regression  # failed: asv's null
    assert d.mark == "?" and math.isnan(d.after) and d.regression  # measured before, not run after (issue 30)
    swapped = _changes(tmp_path / "results", "after", "before")
    assert swapped[(TIMING, "a")].ratio == pytest.approx(0.5, rel=1e-12) and swapped[(TIMING, "b")].mark == "+"
    assert swapped[(TIMING, "c")].mark == "*"  # fixed a failure
    loose = _changes(tmp_path / "results", "before", "after", factor=2.5)
    assert loose[(TIMING, "a")].mark == " " and loose[(TIMING, "b")].mark == " "


def test_report_shows_only_significant_changes_by_ratio_in_sections(tmp_path):
    record_synthetic(tmp_path, "before", [synthetic_point(name, 10, 1.0) for name in "abc"])
    record_synthetic(tmp_path, "after", [synthetic_point("a", 10, 1.5), synthetic_point("b", 10, 3.0),
                                         synthetic_point("c", 10, 1.0)])
    changes = compare(tmp_path / "results", "before", "after")
    text = render(compare_report(changes))
    lines = [line.split() for line in text.splitlines() if line.strip().startswith("+")]
    assert [row[-6] for row in lines[:2]] == ["b", "a"]  # worst first (point: backend cell T H B init)
    assert "tiny.time_forward_backward" in text and " c " not in text  # unchanged points hidden
    assert " c " in render(compare_report(changes, only_changed=False))


def test_metrics_derived_from_the_time_are_never_marked_on_their_own():
    from harness.report.compare import _Point, change

    key = ("tiny.gflops_forward_backward", ("a", "lstm", "10", "4", "2"))
    halved = change(key, _Point(100.0, None, None, "v"), _Point(50.0, None, None, "v"), 1.1)
    assert halved.mark == " " and halved.ratio == 0.5  # the time_forward_backward row carries the change


def test_a_time_falling_is_an_improvement():
    from harness.report.compare import _Point, change

    key = ("tiny.time_forward", ("a", "lstm", "10", "4", "2"))
    faster = change(key, _Point(1.0, None, None, "v"), _Point(0.5, None, None, "v"), 1.1)
    assert faster.mark == "-" and faster.ratio == 0.5


@pytest.mark.parametrize("isolated_before, isolated_after", [(True, True), (False, True), (False, False)])
def test_compare_warns_when_a_side_was_timed_with_untimed_work_beside(tmp_path, capsys, isolated_before,
                                                                      isolated_after):
    from harness.cli import main

    record_synthetic(tmp_path, "before", [synthetic_point("a", 10, 1.0)], isolate=isolated_before)
    record_synthetic(tmp_path, "after", [synthetic_point("a", 10, 1.0)], isolate=isolated_after)
    assert main(["compare", "before", "after", "--results-dir", str(tmp_path / "results")]) == 0
    err = capsys.readouterr().err
    for side, isolated in (("before", isolated_before), ("after", isolated_after)):
        assert (f"warning: {side} was timed with untimed work beside its timings" in err) == (not isolated), err


@pytest.mark.parametrize("rounds_before, rounds_after, warned", [
    (8, 8, ()),                          # regression-grade on both sides: no warning
    (1, 8, ("before",)),                 # the default single round on one side
    (1, 2, ("before", "after")),
])
def test_compare_warns_when_a_side_was_timed_in_too_few_rounds(tmp_path, capsys, rounds_before, rounds_after,
                                                                warned):
    from harness.cli import main
    from harness.report.compare import timing_rounds

    record_synthetic(tmp_path, "before", [synthetic_point("a", 10, 1.0)], rounds=rounds_before)
    record_synthetic(tmp_path, "after", [synthetic_point("a", 10, 1.0)], rounds=rounds_after)
    results_dir = tmp_path / "results"
    assert (timing_rounds(results_dir, "before"), timing_rounds(results_dir, "after")) == (rounds_before, rounds_after)
    assert main(["compare", "before", "after", "--results-dir", str(results_dir)]) == 0
    err = capsys.readouterr().err
    for side, rounds in (("before", rounds_before), ("after", rounds_after)):
        assert (f"warning: {side} was timed in {rounds} round(s)" in err) == (side in warned), err
    if warned:
        assert "harness run --regression" in err


def _with_gradient(point, **flags):
    return dataclasses.replace(point, gradient=dataclasses.replace(point.gradient, **flags))


def test_a_point_with_broken_gradients_is_never_compared_with_a_healthy_one(tmp_path):
    """NaN that no explosion explains (a backend computing something else) records the point as failed,
    so a fast broken backend is a regression ("!"), not a speed-up; an explosion keeps its timings."""
    record_synthetic(tmp_path, "before", [synthetic_point(name, 10, 1.0) for name in "abc"])
    record_synthetic(tmp_path, "after", [
        _with_gradient(synthetic_point("a", 10, 0.5), nonfinite=("dL/dweight_ih",)),  # finite profile, NaN weights
        _with_gradient(synthetic_point("b", 10, 0.5), nonfinite_from_start=True),  # NaN where the loss enters
        _with_gradient(synthetic_point("c", 10, 0.5), nonfinite=("dL/dx",), exploded=True)])  # an explosion
    changes = _changes(tmp_path / "results", "before", "after")
    for name in "ab":
        for metric in (TIMING, "tiny.peak_memory", "tiny.grad_abs_decay_rate"):
            c = changes[(metric, name)]
            assert c.mark == "!" and c.after is None and c.regression, (metric, name)
    assert changes[(TIMING, "c")].mark == "-" and changes[(TIMING, "c")].after == pytest.approx(0.5)


def test_a_backend_that_vanished_or_sides_without_common_points_fail_the_comparison(tmp_path):
    """A backend measured before and absent after (its rows were n/a, exit 0) is marked ? and fails;
    so does one that appears; two sides that share no measured point are an error, not a pass."""
    from harness.errors import HarnessError

    record_synthetic(tmp_path, "before", [synthetic_point(name, 10, 1.0) for name in "ab"])
    record_synthetic(tmp_path, "after", [synthetic_point("a", 10, 1.0), synthetic_point("c", 10, 1.0)])
    changes = _changes(tmp_path / "results", "before", "after")
    assert changes[(TIMING, "a")].mark == " "
    gone, new = changes[(TIMING, "b")], changes[(TIMING, "c")]
    assert (gone.mark, gone.regression, new.mark, new.regression) == ("?", True, "?", True)
    assert math.isnan(gone.after) and math.isnan(new.before)
    record_synthetic(tmp_path, "elsewhere", [synthetic_point("z", 99, 1.0)])
    with pytest.raises(HarnessError, match="before and elsewhere share no measured benchmark point"):
        compare(tmp_path / "results", "before", "elsewhere")


def test_compare_sorts_by_point_and_keeps_to_one_machine(tmp_path):
    from harness.errors import HarnessError
    from harness.report.console import render

    record_synthetic(tmp_path, "before", [synthetic_point(name, 10, 1.0) for name in "abc"])
    record_synthetic(tmp_path, "after", [synthetic_point("a", 10, 1.5), synthetic_point("b", 10, 3.0),
                                         synthetic_point("c", 10, 2.0)])
    timings = [c for c in compare(tmp_path / "results", "before", "after") if c.key[0] == TIMING]

    def order(sort: str) -> list[str]:  # the backend column of each row, top to bottom
        lines = render(compare_report(timings, sort=sort)).splitlines()
        return [line.split()[-6] for line in lines if line.split()[:1] == ["+"]]

    assert order("ratio") == ["b", "c", "a"] and order("point") == ["a", "b", "c"]
    assert compare(tmp_path / "results", "before", "after", machine="testbox")  # the one machine
    with pytest.raises(HarnessError, match="unknown machine 'elsewhere' for before and after; their machines: "
                                           "testbox"):
        compare(tmp_path / "results", "before", "after", machine="elsewhere")
