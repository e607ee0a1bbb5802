"""harness compare: ratios, marks and the factor, on synthetic runs with exact values."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness.record.results import FAILED, SKIPPED
from harness.report.compare import change, compare
from tests.support.runs import record_synthetic, synthetic_point


def _changes(results_dir: Path, before: str, after: str, factor: float = 1.1) -> dict:
    return {(c.key[0].split(".")[1], c.key[1], c.key[3]): c for c in compare(results_dir, before, after, factor)}


def test_compare_ratio_is_after_over_before_with_marks_and_factor(tmp_path):
    record_synthetic(tmp_path, "before", [synthetic_point(name, 10, 1.0) for name in "abcde"])
    record_synthetic(tmp_path, "after", [
        synthetic_point("a", 10, 2.0), synthetic_point("b", 10, 0.5), synthetic_point("c", 10, 1.05),
        synthetic_point("d", 10, 1.0, status=FAILED), synthetic_point("e", 10, 1.0, status=SKIPPED)])
    changes = _changes(tmp_path / "results", "before", "after")
    a, b, c, d, e = (changes[("time_forward_backward", name, 10)] for name in "abcde")
    assert (a.mark, a.ratio) == ("+", pytest.approx(2.0, rel=1e-12))
    assert (b.mark, b.ratio) == ("-", pytest.approx(0.5, rel=1e-12))
    assert (c.mark, c.ratio) == (" ", pytest.approx(1.05, rel=1e-12))
    assert d.mark == "!" and d.after is None  # failed: asv's null
    assert e.mark == " " and math.isnan(e.after)  # skipped: asv's NaN, not a failure
    swapped = _changes(tmp_path / "results", "after", "before")
    assert swapped[("time_forward_backward", "a", 10)].ratio == pytest.approx(0.5, rel=1e-12)
    assert swapped[("time_forward_backward", "b", 10)].mark == "+"
    assert swapped[("time_forward_backward", "d", 10)].mark == " "  # failed before, fine after: no "!"
    loose = _changes(tmp_path / "results", "before", "after", factor=2.5)
    assert {loose[("time_forward_backward", n, 10)].mark for n in "abc"} == {" "}


def test_both_zero_is_a_ratio_of_one_and_a_zero_before_has_none():
    assert change(("m", "b", "c", 1), 0.0, 0.0, 1.1).ratio == 1.0
    assert change(("m", "b", "c", 1), 0.0, 1.0, 1.1).ratio is None
