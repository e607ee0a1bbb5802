"""What every page of plots is made of: a figure with its caption, the name of a line, the caption of a
run's setting, and writing a figure to disk. The benchmark plots (plots.py) and the training plots
(training_plots.py) both draw with these, so neither imports the other for them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.record.results import PointResult, RunResults
from harness.suites import axis_values


@dataclass
class Figure:
    stem: str  # file name without extension
    title: str
    caption: str


def series(point: PointResult, axes: tuple[str, ...]) -> str:
    """A line's name: the backend, with H, B and the init where the run varies them (a line each)."""
    return " ".join([point.backend, *(f"{a}={v}" for a, v in zip(axes, axis_values(point, axes)))])


def save_figure(grid, out_dir: Path, stem: str, title: str, title_y: float = 1.02) -> None:
    """Title a figure (or a seaborn grid), write it as PNG and SVG, and close it."""
    import matplotlib.pyplot as plt

    figure = getattr(grid, "figure", grid)
    figure.suptitle(title, y=title_y)
    for ext in ("png", "svg"):
        figure.savefig(out_dir / f"{stem}.{ext}", dpi=110 if ext == "png" else None, bbox_inches="tight")
    plt.close(figure)


def setting_caption(run: RunResults) -> str:
    """The run's setting, the last sentence of every caption: suite, task, sizes, dtype, inits, seeds,
    threads, machine and commit."""
    s, prov = run.suite, run.provenance
    commit = (prov["git"]["commit"] or "no git")[:10]
    batch, hidden = list(s.batch_sizes) or s.batch, list(s.hidden_sizes) or s.hidden
    return (f"suite {s.name} (task {s.task}), batch {batch}, hidden {hidden}, {s.dtype}, "
            f"init {list(s.inits) or s.init}, seeds {list(s.seeds)}, {prov['threads']} thread(s), on {prov['cpu']}"
            f"{' + ' + prov['gpu'] if prov.get('gpu') else ''}, commit {commit}")
