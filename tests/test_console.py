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
    text = render(summary(run, columns="all"))
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


def test_the_default_run_summary_is_a_pivot_that_fits_100_columns(tmp_path):
    """rows cell x T, a column per backend that ran; a backend that ran nothing is one line, not a row
    per point; a failure's reason one line: nothing wider than 100 columns, whatever the grid (issue 30)."""
    from tests.support.runs import synthetic_point

    suite = suites.load(write_suite(tmp_path / "tiny"))
    backends = ("numpy", "numba", "torch-cpu", "torch-cpu-scan", "third-party-kernel")
    points = [synthetic_point(b, T, 0.001 * (i + 1)) for i, b in enumerate(backends) for T in (50, 100, 200, 500)]
    points[0] = PointResult("numpy", "lstm", 50, "float32", FAILED, reason="RuntimeError: " + "very long " * 40,
                            hidden=4, batch=2, init="default")
    points += [PointResult("torch-cuda", "lstm", T, "float32", SKIPPED, reason="no CUDA GPU: no NVIDIA driver",
                           hidden=4, batch=2, init="default") for T in (50, 100, 200, 500)]
    run = RunResults(suite=suite, started_at="now", provenance={}, points=points)
    text = render(summary(run), width=100)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 100, "\n".join(line for line in lines if len(line) > 100)
    header = next(line.split() for line in lines if line.split()[:2] == ["cell", "T"])
    assert header == ["cell", "T", *backends, "decay/step", "predicted"]
    rows = [line.split() for line in lines if line.split()[:1] == ["lstm"]]
    assert [row[1] for row in rows] == ["50", "100", "200", "500"]  # one row per T, not one per point
    assert rows[0][2] == "failed" and rows[1][2:4] == ["1", "2"]  # ms per backend
    assert "torch-cuda: skipped for lstm: no CUDA GPU: no NVIDIA driver" in lines
    assert any(line.startswith("numpy lstm T=50: RuntimeError: very long") for line in lines)
    assert len(lines) < 15 and len(render(summary(run, columns="all")).splitlines()) > 24  # --columns all: per point
