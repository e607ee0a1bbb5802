"""The interactive page of a run (``interactive.html`` beside its report): plotly figures to explore.

Hover reads a value, a click on the legend hides or shows a series, the buttons switch the value axis
between log and linear. The page works offline: plotly's script is written beside it from the
installed plotly package (``plotly.min.js``), as asv's site carries its own scripts.

- a benchmark run: the gradient profiles g_t against the lag, and the forward + backward time and
  the peak memory against T with their spread (error bars: +- half the interquartile range of the
  samples, as asv prints a spread);
- a training run: per point, the eval loss / baseline, the training loss, the gradient norm before
  clipping, and the share of the last 50 iterations that clipped, against the iteration; and the
  gradient profiles of the last snapshot.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.record.results import OK, RunResults
from harness.report.console import grid_axes
from harness.report.figures import series
from harness.suites import Mode

PAGE = "interactive.html"
SCRIPT = "plotly.min.js"
CLIP_WINDOW = 50  # iterations the clipped share is averaged over


def _log_linear(title: str) -> list[dict]:
    """Buttons that switch every value axis of a figure between log and linear."""
    def axes(kind: str) -> dict:
        return {f"yaxis{i if i > 1 else ''}.type": kind for i in range(1, 5)}

    return [{"type": "buttons", "direction": "right", "x": 1.0, "xanchor": "right", "y": 1.12,
             "buttons": [{"label": "log", "method": "relayout", "args": [axes("log")]},
                         {"label": "linear", "method": "relayout", "args": [axes("linear")]}]}]


def _name(point, axes) -> str:
    seed = f" seed {point.seed}" if point.seed is not None else ""
    return f"{series(point, axes)} {point.cell} T={point.seq_len}{seed}"


def _profile(point):
    """A point's gradient profile: a benchmark point's, or a training point's last snapshot."""
    if point.gradient is not None:
        return point.gradient
    snapshots = point.training.snapshots if point.training is not None else ()
    return snapshots[-1].gradient if snapshots else None


def profile_figure(run: RunResults):
    """g_t against the lag n - t, one line per point (a training point: its last snapshot), log scale:
    hover gives the lag and g."""
    import plotly.graph_objects as go

    fig, axes = go.Figure(), grid_axes(run)
    for p in run.points:
        gradient = _profile(p)
        if p.status != OK or gradient is None or not gradient.g:
            continue
        g = np.asarray(gradient.g, dtype=float)
        lags = np.arange(g.size)[::-1]
        fig.add_trace(go.Scatter(x=lags, y=np.where(g > 0, g, np.nan), mode="lines", name=_name(p, axes),
                                 hovertemplate="lag %{x}<br>g %{y:.4g}<extra>%{fullData.name}</extra>"))
    fig.update_layout(title="Gradient profiles g_t = mean_b ||dL/dh_t|| (loss on the last step)",
                      xaxis_title="lag n - t (steps back from the loss)", yaxis_title="g_t", yaxis_type="log",
                      updatemenus=_log_linear("profiles"), height=520)
    return fig


def speed_figure(run: RunResults):
    """Forward + backward time (median, error bars +- half the interquartile range) and peak memory
    against T, per backend and cell."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("forward + backward (ms; median, IQR)", "peak memory (MiB)"))
    axes, groups = grid_axes(run), {}
    for p in run.points:
        if p.status == OK:
            groups.setdefault(f"{series(p, axes)} {p.cell}", []).append(p)
    for name, points in groups.items():
        points = sorted(points, key=lambda p: p.seq_len)
        timed = [p for p in points if p.time is not None]
        if timed:
            fb = [p.time.forward_backward for p in timed]
            fig.add_trace(go.Scatter(
                x=[p.seq_len for p in timed], y=[1e3 * m.median for m in fb], name=name, legendgroup=name,
                error_y={"type": "data", "array": [1e3 * m.iqr / 2 for m in fb]}, mode="lines+markers",
                hovertemplate="T %{x}<br>%{y:.4g} ms<extra>%{fullData.name}</extra>"), row=1, col=1)
        measured = [p for p in points if p.memory is not None]
        if measured:
            fig.add_trace(go.Scatter(
                x=[p.seq_len for p in measured], y=[p.memory.peak_bytes / 2**20 for p in measured], name=name,
                legendgroup=name, showlegend=not timed, mode="lines+markers",
                hovertemplate="T %{x}<br>%{y:.4g} MiB<extra>%{fullData.name}</extra>"), row=1, col=2)
    fig.update_xaxes(type="log", title_text="sequence length T")
    fig.update_yaxes(type="log")
    fig.update_layout(updatemenus=_log_linear("speed"), height=480)
    return fig


def training_figure(run: RunResults):
    """Per training point: eval loss / baseline, training loss, gradient norm and clipped share."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = ("eval loss / memoryless baseline", "training loss", "gradient norm before clipping",
              f"share of the last {CLIP_WINDOW} iterations clipped")
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, subplot_titles=titles, vertical_spacing=0.06)
    axes = grid_axes(run)
    for p in run.points:
        t = p.training
        if t is None or not t.eval_loss:
            continue
        name = _name(p, axes)
        steps = np.arange(1, len(t.train_loss) + 1)
        clipped = _trailing_share(t.clipped)
        for row, (x, y) in enumerate(((t.eval_iterations, np.asarray(t.eval_loss) / t.baseline),
                                      (steps, t.train_loss), (steps, t.grad_norm), (steps, clipped)), 1):
            fig.add_trace(go.Scatter(x=x, y=y, name=name, legendgroup=name, showlegend=row == 1, mode="lines",
                                     hovertemplate="iteration %{x}<br>%{y:.4g}<extra>%{fullData.name}</extra>"),
                          row=row, col=1)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_yaxes(type="log", row=3, col=1)
    fig.update_xaxes(title_text="training iteration", row=4, col=1)
    fig.update_layout(updatemenus=_log_linear("training"), height=1100)
    return fig


def _trailing_share(flags) -> np.ndarray:
    """At each iteration, the share of the last CLIP_WINDOW iterations (fewer at the start) flagged."""
    sums = np.concatenate([[0.0], np.cumsum(np.asarray(flags, dtype=float))])
    ends = np.arange(1, len(sums))
    starts = np.maximum(ends - CLIP_WINDOW, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def write(run: RunResults, out_dir: str | Path, title: str, back_link: str = "index.html",
          script_dir: str | Path | None = None) -> Path:
    """``interactive.html`` in ``out_dir``: every figure of the run's kind; ``plotly.min.js`` in
    ``script_dir`` (default ``out_dir``; harness publish keeps one for every page)."""
    import os

    from plotly.offline import get_plotlyjs

    from harness.report.html import render_page

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    script = Path(script_dir or out_dir) / SCRIPT
    if not script.is_file():
        script.write_text(get_plotlyjs(), encoding="utf-8")
    figures = [training_figure(run), profile_figure(run)] if run.mode == Mode.TRAIN else \
        [profile_figure(run), speed_figure(run)]
    # plotly's own HTML for each figure: the data as JSON inside its script, text escaped by plotly
    divs = [fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{i}") for i, fig in enumerate(figures)]
    return render_page("interactive.html.j2", out_dir / PAGE, title=title, back_link=back_link,
                       script=Path(os.path.relpath(script, out_dir)).as_posix(), figures=divs)
