"""Terminal output: the summary table and the plain-line progress used when there is no terminal."""
from __future__ import annotations

import io

from harness import suites
from harness.record.results import FAILED, SKIPPED, PointResult, RunResults
from harness.report.console import GridProgress, render, summary
from tests.support.suites import write_suite


def test_summary_of_skipped_and_failed_points_shows_their_reasons(tmp_path):
    suite = suites.load(write_suite(tmp_path / "tiny"))
    run = RunResults(suite=suite, started_at="now", provenance={}, points=[
        PointResult("nowhere", "rnn_tanh", 12, "float64", SKIPPED, reason=""),  # Availability(False) is legal
        PointResult("raises", "rnn_tanh", 12, "float64", FAILED, reason="RuntimeError: no\nTraceback ..."),
    ])
    text = render(summary(run))
    rows = [line.split() for line in text.splitlines()[2:] if line.strip()]
    assert rows[0][:4] == ["nowhere", "rnn_tanh", "12", "skipped"] and rows[0][-1] == "skipped"
    assert rows[1][:4] == ["raises", "rnn_tanh", "12", "failed"] and rows[1][-2:] == ["RuntimeError:", "no"]


def test_progress_without_a_terminal_prints_one_line_per_point():
    stream = io.StringIO()
    bar = GridProgress(stream=stream)
    bar.begin(2, ())
    bar.advance(PointResult("numpy", "gru", 50, "float32", "ok"))
    bar.advance(PointResult("numba", "gru", 50, "float32", FAILED, reason="boom"))
    bar.end()
    assert stream.getvalue().splitlines() == ["[1/2] numpy gru T=50: ok", "[2/2] numba gru T=50: failed (boom)"]


def test_disabled_progress_prints_nothing():
    stream = io.StringIO()
    bar = GridProgress(enabled=False, stream=stream)
    bar.begin(1, ())
    bar.advance(PointResult("numpy", "gru", 50, "float32", "ok"))
    bar.end()
    assert stream.getvalue() == ""
