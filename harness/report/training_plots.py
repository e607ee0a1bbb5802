"""Plots of a training run (harness train): learning curves, iterations to solve (Kaplan-Meier), and how the gradient
profile changes while the network learns. Drawn with seaborn, written next to the run plots' page."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.record import outcomes
from harness.record.results import INTERRUPTED, OK, RunResults
from harness.report.console import grid_axes
from harness.report.figures import Figure, save_figure, series, setting_caption


def curves_frame(run: RunResults):
    """One row per (backend, cell, T, seed, eval iteration): eval loss, its ratio to the baseline, accuracy."""
    import pandas as pd

    rows, axes = [], grid_axes(run)
    for p in run.points:
        t = p.training
        if t is None or p.status not in (OK, INTERRUPTED):
            continue
        for i, (iteration, loss) in enumerate(zip(t.eval_iterations, t.eval_loss)):
            rows.append({"backend": series(p, axes), "cell": p.cell, "T": p.seq_len,
                         "seed": p.seed, "iteration": iteration,
                         "eval_loss": loss, "ratio": loss / t.baseline,
                         "accuracy": t.eval_accuracy[i] if t.eval_accuracy else np.nan})
    return pd.DataFrame(rows, columns=["backend", "cell", "T", "seed", "iteration", "eval_loss", "ratio", "accuracy"])


def snapshots_frame(run: RunResults):
    """One row per (backend, cell, T, seed, snapshot iteration): decay rate, horizon, top spectra."""
    import pandas as pd

    rows, axes = [], grid_axes(run)
    for p in run.points:
        if p.training is None:
            continue
        for s in p.training.snapshots:
            rows.append({"backend": series(p, axes), "cell": p.cell, "T": p.seq_len,
                         "seed": p.seed, "iteration": s.iteration,
                         "decay_rate": s.gradient.decay_rate, "horizon": s.gradient.horizon,
                         "sigma_max": s.gradient.sigma_max,
                         "spectral_radius": max(sp.spectral_radius for sp in s.gradient.spectra)})
    return pd.DataFrame(rows, columns=["backend", "cell", "T", "seed", "iteration", "decay_rate", "horizon",
                                       "sigma_max", "spectral_radius"])


def survival_frame(run: RunResults):
    """The Kaplan-Meier curves of iterations to solve (record/outcomes.py): per setting, the share of its
    seeds not yet solved, as steps from (0, 1) to the budget."""
    import pandas as pd

    rows, axes = [], grid_axes(run)
    for o in outcomes.outcomes(run.points):
        point = o.first
        label, left = series(point, axes), 1.0
        rows.append({"backend": label, "cell": point.cell, "T": point.seq_len, "iteration": 0, "unsolved": 1.0})
        for t, after in o.survival:
            rows += [{"backend": label, "cell": point.cell, "T": point.seq_len, "iteration": t, "unsolved": left},
                     {"backend": label, "cell": point.cell, "T": point.seq_len, "iteration": t, "unsolved": after}]
            left = after
        rows.append({"backend": label, "cell": point.cell, "T": point.seq_len, "iteration": o.budget, "unsolved": left})
    return pd.DataFrame(rows, columns=["backend", "cell", "T", "iteration", "unsolved"])


def _per_length(sns, frame, y: str, **options):
    """A line per cell (style per backend) of ``y`` against the training iteration, one panel per T."""
    return sns.relplot(data=frame, x="iteration", y=y, hue="cell", style="backend", col="T",
                       col_wrap=min(3, frame["T"].nunique()), kind="line", height=3, aspect=1.3, **options)


def draw_training(run: RunResults, out_dir: str | Path) -> list[Figure]:
    """Every figure of a training run, with captions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="notebook")
    setting = setting_caption(run)
    settings = run.suite.train
    figures: list[Figure] = []
    curves = curves_frame(run)
    if not curves.empty:
        grid = _per_length(sns, curves, "ratio", facet_kws={"sharey": False})
        grid.set(yscale="log")
        for ax in grid.axes.flat:
            ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1)
        grid.set_axis_labels("training iteration", "eval loss / memoryless baseline")
        save_figure(grid, out_dir, "learning_curves", "Learning curves")
        figures.append(Figure("learning_curves", "Learning curves",
                              f"Eval loss on a fixed held-out set of {settings.eval_size} sequences, divided by the "
                              f"task's memoryless baseline (dashed line at 1: no better than ignoring the input), "
                              f"against the training iteration; log scale; one panel per T, colour per cell, line "
                              f"style per backend (backends trained identically overlap); the band spans the seeds "
                              f"{list(settings.seeds)}. {settings.optimizer} lr {settings.lr}, batch {settings.batch}, "
                              f"clip {settings.clip}. {setting}."))
    snapshots = snapshots_frame(run)
    if not snapshots.empty:
        grid = _per_length(sns, snapshots, "decay_rate", markers=True)
        grid.set_axis_labels("training iteration", "decay rate (decades per step)")
        save_figure(grid, out_dir, "decay_while_learning", "Gradient decay rate while learning")
        figures.append(Figure("decay_while_learning", "Gradient decay rate while learning",
                              f"Decay rate of g_t (last-step loss on the held-out set) at iteration 0 and every "
                              f"{settings.profile_every} iterations: how fast the gradient vanishes going back in "
                              f"time as the network learns. {setting}."))
    survival = survival_frame(run)
    if not survival.empty:
        grid = _per_length(sns, survival, "unsolved", estimator=None, sort=False)  # the frame holds the steps' corners
        grid.set(ylim=(-0.02, 1.02))
        grid.set_axis_labels("training iteration", "share of seeds not yet solved")
        save_figure(grid, out_dir, "survival", "Iterations to solve (Kaplan-Meier)")
        figures.append(Figure("survival", "Iterations to solve (Kaplan-Meier)",
                              f"The share of the seeds {list(settings.seeds)} that have not met the task's solved "
                              f"criterion after each training iteration (evaluated every {settings.eval_every}); a "
                              f"run that never solved (or diverged) is right-censored at its budget, so a curve that "
                              f"ends above 0 ends at the budget. {setting}."))
    figures.extend(_heatmaps(run, out_dir, setting, plt))
    return figures


def _heatmaps(run: RunResults, out_dir: Path, setting: str, plt) -> list[Figure]:
    """Per cell: log10 g_t over (training iteration, step t), one panel per T, first backend and seed."""
    figures = []
    points = [p for p in run.points if p.training is not None and p.training.snapshots]
    if not points:
        return figures
    backend = sorted({p.backend for p in points})[0]
    for cell in sorted({p.cell for p in points}):
        chosen = {}
        for p in sorted((p for p in points if p.cell == cell and p.backend == backend), key=lambda p: p.seed or 0):
            chosen.setdefault(p.seq_len, p)
        fig, axes = plt.subplots(1, len(chosen), figsize=(4.2 * len(chosen), 3.2), squeeze=False)
        for ax, (T, p) in zip(axes[0], sorted(chosen.items())):
            snaps = p.training.snapshots
            with np.errstate(divide="ignore", invalid="ignore"):
                image = np.log10(np.array([s.gradient.g for s in snaps], dtype=float))
            image[~np.isfinite(image)] = np.nan
            mesh = ax.imshow(image, aspect="auto", origin="lower", cmap="viridis",
                             extent=(0.5, image.shape[1] + 0.5, -0.5, len(snaps) - 0.5))
            ax.set_yticks(range(len(snaps)), [str(s.iteration) for s in snaps])
            ax.set_title(f"T = {T}")
            ax.set_xlabel("step t")
            ax.set_ylabel("training iteration")
            fig.colorbar(mesh, ax=ax, label="log10 g_t")
        stem = f"profile_heatmap_{cell}"
        save_figure(fig, out_dir, stem, f"Gradient profile while learning, {cell} ({backend}, seed {p.seed})")
        figures.append(Figure(stem, f"Gradient profile while learning: {cell}",
                              f"log10 of g_t = mean_b ||dL/dh_t|| (loss on the last step of the held-out set) over "
                              f"the step t (x) and the training iteration of each snapshot (y), for backend "
                              f"{backend} and the first seed; blank where g_t underflowed or overflowed. A colour "
                              f"gradient along t is vanishing; watch it change as the network learns. {setting}."))
    return figures
