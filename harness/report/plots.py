"""Plots of one run, drawn with seaborn and written as PNG and SVG with an HTML page of captions.

Used by ``harness report RESULTS.json`` (one results file, no asv) and ``harness publish`` (the
latest run of each suite, written next to asv's site). :func:`report` writes the page of any run: these
figures for a benchmark run, training_plots.py's for a training run; both draw with figures.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.measure.gradients import underflow_floor
from harness.record import dataframe, results
from harness.record.results import RunResults
from harness.suites import Mode
from harness.report import interactive, outcome_tables, training_plots
from harness.report.console import grid_axes
from harness.report.figures import Figure, save_figure, series, setting_caption


def summary_frame(run: RunResults):
    """One row per successful point: T, forward+backward seconds, peak MiB, decay rate."""
    axes = grid_axes(run)
    rows = dataframe.frame(run)
    rows = rows[rows["status"] == results.OK]
    ok = [p for p in run.points if p.status == results.OK]
    fraction = [run.peak_fraction(p) for p in ok]
    names = [series(p, axes) for p in ok]
    rows = rows.assign(backend=names,
                       peak_percent=[100 * f if f is not None else np.nan for f in fraction])
    return rows.assign(T=rows["seq_len"], fwd_bwd_s=rows["forward_backward_median_s"],
                       peak_mib=rows["peak_bytes"] / 2**20)[["backend", "cell", "T", "fwd_bwd_s", "peak_mib",
                                                              "decay_rate", "gflops_forward_backward",
                                                              "peak_percent"]]


def profile_frames(run: RunResults):
    """The gradient profiles to draw, and where each one underflowed.

    Returns (curves, underflow): curves has one row per (backend, cell, T, step t) with g_t finite
    and above the dtype's smallest normal number, for t = 1 .. steps (copy: T + 20); underflow has
    one row per profile that fell to that floor, at the last step t where it had (the line stops
    there: the gradient vanished below what the dtype can hold).
    """
    import pandas as pd

    floor = underflow_floor(run.suite.dtype)
    axes = grid_axes(run)
    curves, underflow = [], []
    for point in run.points:
        if point.status != results.OK or point.gradient is None:
            continue
        base = {"backend": series(point, axes), "cell": point.cell,
                "T": point.seq_len, "steps": point.steps}
        g = np.asarray(point.gradient.g, dtype=float)
        t = np.arange(1, g.size + 1)
        keep = np.isfinite(g) & (g > floor)
        curves.append(pd.DataFrame({**base, "t": t[keep], "g": g[keep]}))
        vanished = np.isfinite(g) & (g <= floor)
        if vanished.any():
            underflow.append({**base, "t": int(t[vanished].max())})
    columns = ["backend", "cell", "T", "steps", "t"]
    curves = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=[*columns, "g"])
    return curves, pd.DataFrame(underflow, columns=columns)


def dynamics_frame(run: RunResults):
    """One row per grid point that has its gradient explained (spectra and Lyapunov exponents are the
    same for every backend; the measured decay rate is the first backend's): cell, init, T, the
    measured and the predicted decay rate, and the largest sigma_max of W_hh's gate blocks."""
    import pandas as pd

    rows, seen = [], set()
    for p in run.points:
        g = p.gradient
        if p.status != results.OK or g is None or g.predicted_decay_rate is None:
            continue
        if (where := (p.cell, p.seq_len, p.hidden, p.batch, p.init)) in seen:
            continue
        seen.add(where)
        rows.append({"cell": p.cell, "init": p.init, "T": p.seq_len, "measured": g.decay_rate,
                     "predicted": g.predicted_decay_rate, "sigma_max": g.sigma_max})
    return pd.DataFrame(rows, columns=["cell", "init", "T", "measured", "predicted", "sigma_max"])


def _scatter(frame, x: str, style: str | None, xlabel: str, guides, out_dir: Path, stem: str, title: str):
    """One scatter of the measured decay rate against ``x``, a point per cell (colour) and init
    (marker), with ``guides(ax)`` drawn on it, saved as ``stem``."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    _, ax = plt.subplots()
    sns.scatterplot(data=frame, x=x, y="measured", hue="cell", style=style, s=60, ax=ax)
    guides(ax)
    ax.set(xlabel=xlabel, ylabel="measured decay rate (decades per step)")
    ax.legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    save_figure(ax.figure, out_dir, stem, title)


def _draw_dynamics(run: RunResults, out_dir: Path, setting: str) -> list[Figure]:
    """Why the profiles decay: measured against predicted decay rate, and against sigma_max(W_hh)."""
    frame = dynamics_frame(run).dropna(subset=["measured", "predicted"])
    if frame.empty:
        return []
    style = "init" if frame["init"].nunique() > 1 else None
    ends = [min(frame["predicted"].min(), frame["measured"].min()), max(frame["predicted"].max(),
                                                                      frame["measured"].max())]

    def diagonal(ax) -> None:
        ax.plot(ends, ends, color="0.4", linestyle="--", linewidth=1, label="measured = predicted")

    def bound(ax) -> None:
        ax.axvline(1.0, color="0.3", linestyle="--", linewidth=1, label="1 / gamma = 1 (tanh)")
        ax.axhline(0.0, color="0.6", linewidth=0.8)

    _scatter(frame, "predicted", style, "predicted: -lambda_1 / ln 10 (decades per step)", diagonal, out_dir,
             "decay_predicted", "Measured against predicted decay rate")
    _scatter(frame, "sigma_max", style, "largest sigma_max of W_hh's gate blocks", bound, out_dir,
             "decay_sigma_max", "Decay rate against the largest singular value of W_hh")
    return [
        Figure("decay_predicted", "Measured against predicted decay rate",
               "One point per cell, init and T: the decay rate of g_t fitted from the profile against the one the "
               "top finite-time Lyapunov exponent of the backward dynamics predicts (over the last "
               f"{run.suite.lyapunov_steps or 'all'} steps before the loss; docs/metrics.md). On the dashed line "
               f"they agree; the exponent is an average rate, the fit covers the whole profile. {setting}."),
        Figure("decay_sigma_max", "Decay rate against sigma_max(W_hh)",
               "Pascanu et al. (2013): each backward step multiplies by diag(f'(a_t)) W_hh^T, so with |f'| <= "
               "gamma, sigma_max(W_hh) < 1 / gamma forces gradients to vanish (decay rate above 0). For the tanh "
               "RNN gamma = 1: its points left of the dashed line must lie above the zero line. LSTM and GRU gates "
               f"multiply by further factors below 1, so the bound is looser for them. {setting}."),
    ]


def draw(run: RunResults, out_dir: str | Path) -> list[Figure]:
    """Draw every figure of a run into ``out_dir``; returns what was drawn, with captions."""
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summary_frame(run)
    profile, underflow = profile_frames(run)
    sns.set_theme(style="whitegrid", context="notebook")
    figures: list[Figure] = []
    setting = setting_caption(run)

    for cell in sorted(profile["cell"].unique()):
        sub = profile[profile["cell"] == cell]
        n = sub["T"].nunique()
        grid = sns.relplot(data=sub, x="t", y="g", hue="backend", style="backend", col="T", col_wrap=min(3, n),
                           kind="line", height=3, aspect=1.3, facet_kws={"sharex": False, "sharey": False})
        grid.set(yscale="log")
        steps = sub.groupby("T")["steps"].first()
        for T, ax in grid.axes_dict.items():
            ax.set_xlim(1, steps[T])  # every step the layer ran, the loss's last steps included
            for row in underflow[(underflow["cell"] == cell) & (underflow["T"] == T)].itertuples():
                ax.axvline(row.t, color="0.3", linestyle=":", linewidth=1)
        grid.set_axis_labels("step t", "g_t = mean_b ||dL/dh_t||")
        save_figure(grid, out_dir, f"gradient_{cell}", f"Gradient-norm profile, {cell}")
        figures.append(Figure(f"gradient_{cell}", f"Gradient-norm profiles: {cell}",
                              f"g_t, the batch mean of ||dL/dh_t||_2, against the step t, with the loss on the "
                              f"last step only, averaged over the seeds' initialisations; one panel per sequence "
                              f"length T (the x axis covers every step the layer ran), one line per backend (lines "
                              f"that coincide agree). A straight falling line is exponential vanishing. A dotted "
                              f"vertical line marks the step below which g_t underflowed the {run.suite.dtype} "
                              f"range (smallest normal number): the gradient vanished completely there. {setting}."))

    panels = [
        ("decay_rate", "decay_rate", "decay rate (decades per step)", "linear",
         "Gradient decay rate against T", "Minus the least-squares slope of log10 g_t against the lag T - t: "
         "decades of gradient lost per step back in time (negative: growth)."),
        ("time", "fwd_bwd_s", "forward + backward (s)", "log",
         "Forward + backward time against T", "Median wall time of one forward and backpropagation through "
         "time of the recurrent layer (log-log), after warm-up, adaptive repeats."),
        ("gflops", "gflops_forward_backward", "achieved GFLOP/s", "log",
         "Achieved GFLOP/s against T", "Analytic GEMM FLOPs of forward + backward (docs/metrics.md) over the "
         "median time: how much of the machine the backend uses."),
        ("peak_fraction", "peak_percent", "% of peak", "linear",
         "Fraction of the peak against T", "Achieved GFLOP/s as a percentage of the peak for the dtype: the CPU's "
         "roof on the run's threads (an FMA microkernel, which no engine can exceed), or a GPU backend's GEMM "
         "peak. Dotted lines: each GEMM engine's rate on a 1024^3 product (NumPy's BLAS, MKL, torch.mm, oneDNN) "
         "under the CPU's roof, the solid line at 100%."),
        ("memory", "peak_mib", "peak memory (MiB)", "log",
         "Peak memory against T", "Peak bytes the backend allocated from prepare to the end of backward "
         "(tracemalloc, RSS or the CUDA allocator, per backend), log-log."),
    ]
    for stem, column, label, yscale, title, caption in panels:
        sub = summary.dropna(subset=[column])
        if sub.empty:
            continue
        grid = sns.relplot(data=sub, x="T", y=column, hue="backend", style="backend", col="cell", kind="line",
                           markers=True, dashes=False, height=3, aspect=1.2, facet_kws={"sharey": False})
        grid.set(xscale="log", yscale=yscale)
        grid.set_axis_labels("sequence length T", label)
        if stem == "peak_fraction":
            caption += _engine_lines(grid, run)
        save_figure(grid, out_dir, stem, title, title_y=1.03)
        figures.append(Figure(stem, title, f"{caption} {setting}."))
    return figures + _draw_dynamics(run, out_dir, setting)


def _engine_lines(grid, run: RunResults) -> str:
    """The roof (100%) and a dotted line per GEMM engine at its percentage of the CPU's roof (the
    run's dtype), on every panel; returns the engines' percentages for the caption (labels on the
    lines would overlap where engines are close)."""
    roof = results.cpu_roof(run.provenance).get(run.suite.dtype)
    engines = {engine: 100 * rates[run.suite.dtype] / roof
               for engine, rates in run.provenance.get("gemm_gflops", {}).items() if roof and run.suite.dtype in rates}
    for ax in grid.axes.flat:
        ax.set_ylim(0, 105)
        ax.axhline(100, color="0.2", linewidth=1)
        for percent in engines.values():
            ax.axhline(percent, color="0.5", linestyle=":", linewidth=1)
    listed = ", ".join(f"{engine} {percent:.0f}%" for engine, percent in sorted(engines.items(), key=lambda e: -e[1]))
    return f" The CPU's GEMM engines ({run.suite.dtype}): {listed}." if listed else ""


def write_page(figures: list[Figure], out_dir: str | Path, title: str, back_link: str | None = None,
               tables: list[dict] | None = None, history_link: str | None = None) -> Path:
    """An HTML page showing its tables (title, caption, headers, rows: training's outcomes over seeds)
    and each figure (PNG, with an SVG link) under its caption; every text is escaped
    (harness/templates/pages/report.html.j2)."""
    from harness.report.html import render_page

    return render_page("report.html.j2", Path(out_dir) / "index.html", title=title, back_link=back_link,
                       figures=figures, tables=tables or [], explore=interactive.PAGE, history_link=history_link)


def report(run: RunResults, out_dir: str | Path, title: str | None = None, back_link: str | None = None,
           script_dir: str | Path | None = None, history_link: str | None = None) -> Path:
    """Draw every figure of ``run`` (benchmark or training) into ``out_dir`` with an ``index.html``, and
    its interactive page (plotly's script in ``script_dir``, default ``out_dir``); ``history_link``: the
    asv graph of this suite (harness publish)."""
    title = title or f"harness: {run.suite.name}{' (training)' if run.mode == Mode.TRAIN else ''}"
    interactive.write(run, out_dir, f"{title}: explore", script_dir=script_dir)
    if run.mode == Mode.TRAIN:
        return write_page(training_plots.draw_training(run, out_dir), out_dir, title, back_link,
                          tables=outcome_tables.tables(run), history_link=history_link)
    return write_page(draw(run, out_dir), out_dir, title, back_link, history_link=history_link)
