"""The plots of a run: what they draw (every step, underflow marked) and the page around them."""
from __future__ import annotations

import dataclasses

import numpy as np

from harness import suites
from harness.record.results import OK, GradientProfile, PointResult, RunResults
from harness.report import plots
from tests.support.suites import write_suite

PROVENANCE = {"threads": 1, "cpu": "cpu", "gpu": None, "git": {"commit": None}}


def _run(tmp_path, task: str, dtype: str, profiles: dict[int, np.ndarray]) -> RunResults:
    suite = dataclasses.replace(suites.load(write_suite(tmp_path / "s")), task=task, dtype=dtype, cells=("gru",))
    points = []
    for T, g in profiles.items():
        gradient = GradientProfile(decay_rate=0.1, log10_ratio=1.0, horizon=3, exploded=False, first_nonfinite_lag=None,
                            vanished=False, g=tuple(g.tolist()), gc=None)
        points.append(PointResult("numpy", "gru", T, dtype, OK, steps=len(g), gradient=gradient))
    return RunResults(suite=suite, started_at="now", provenance=PROVENANCE, points=points)


def test_copy_profiles_cover_every_step_the_layer_ran(tmp_path, monkeypatch):
    """The copy task runs T + 20 steps, and the loss enters in the last 10: the axis must reach them."""
    run = _run(tmp_path, "copy", "float64", {30: np.linspace(1e-3, 1.0, 50)})
    curves, underflow = plots.profile_frames(run)
    assert curves["t"].min() == 1 and curves["t"].max() == 50 and underflow.empty
    limits = {}

    def capture(grid, out_dir, stem, title, title_y=1.02):
        limits[stem] = {T: ax.get_xlim() for T, ax in grid.axes_dict.items()}

    monkeypatch.setattr(plots, "save_figure", capture)
    plots.draw(run, tmp_path / "out")
    assert limits["gradient_gru"] == {30: (1.0, 50.0)}


def test_underflowed_steps_are_left_out_and_marked(tmp_path):
    tiny = float(np.finfo(np.float32).tiny)
    g = np.array([1.4e-45, 1.4e-45, tiny / 2, 1e-30, 1e-10, 1.0])  # float32's subnormal floor, then real values
    run = _run(tmp_path, "temporal_order", "float32", {6: g})
    curves, underflow = plots.profile_frames(run)
    assert list(curves["t"]) == [4, 5, 6]
    assert underflow.to_dict("records") == [{"backend": "numpy", "cell": "gru", "T": 6, "steps": 6, "t": 3}]


def test_report_page_lists_every_figure_with_its_caption(tmp_path):
    run = _run(tmp_path, "temporal_order", "float64", {12: np.geomspace(1e-4, 1.0, 12), 16: np.geomspace(1e-5, 1, 16)})
    page = plots.report(run, tmp_path / "out").read_text()
    for stem in ("gradient_gru", "decay_rate"):
        assert (tmp_path / "out" / f"{stem}.png").stat().st_size > 0 and f'src="{stem}.png"' in page
    assert "every step the layer ran" in page


def test_a_run_without_successful_points_still_gets_a_page(tmp_path):
    run = _run(tmp_path, "adding", "float64", {})
    assert "no successful points to plot" in plots.report(run, tmp_path / "out").read_text()


def test_the_clipped_share_is_a_trailing_window():
    from harness.report import interactive

    shares = interactive._trailing_share([1, 0, 1, 1] + [0] * 60)
    assert list(shares[:4]) == [1.0, 0.5, 2 / 3, 0.75] and len(shares) == 64
    assert shares[52] == 1 / 50 and shares[53] == 0.0  # the window has left the first ones behind


def test_the_interactive_page_carries_every_profile_and_plotly_itself(tmp_path):
    """Offline: plotly's script is written beside the page and nothing is fetched from a network."""
    import json
    import re

    from harness.report import interactive

    profiles = {12: np.geomspace(1e-4, 1.0, 12), 16: np.geomspace(1e-5, 1, 16)}
    run = _run(tmp_path, "temporal_order", "float64", profiles)
    page = plots.report(run, tmp_path / "out").read_text()
    assert 'href="interactive.html"' in page
    html = (tmp_path / "out" / interactive.PAGE).read_text()
    assert (tmp_path / "out" / interactive.SCRIPT).stat().st_size > 1_000_000
    assert '<script src="plotly.min.js">' in html and "cdn" not in html.lower()
    figure = interactive.profile_figure(run)
    assert [t.name for t in figure.data] == ["numpy gru T=12", "numpy gru T=16"]
    lags, values = list(figure.data[1].x), list(figure.data[1].y)
    assert lags[0] == 15 and lags[-1] == 0 and values == list(profiles[16])  # lag n - t; g as measured
    assert len(re.findall(r'id="figure-\d"', html)) == 2  # the profiles and the speed figure
    assert json.loads(figure.to_json())["layout"]["yaxis"]["type"] == "log"
