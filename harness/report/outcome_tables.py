"""Training outcomes over seeds as text rows (harness/record/outcomes.py computes them): the tables
`harness train` prints under its per-point table and its page shows, built once for both."""
from __future__ import annotations

import math

import numpy as np

from harness.record import outcomes, reproduction
from harness.record.results import RunResults
from harness.suites import Reproduction, axis_values

#: The setting axes a table shows after the cell, by their column names (run.suite.axes' spelling).
_COLUMNS = {"seq_len": "T", "init": "init", "clip": "clip", "hidden": "H", "batch": "B"}


def seeds_text(seeds: tuple[int, ...]) -> str:
    """The seeds, or "1 seed (no interval)": one seed is never read as a measured effect."""
    listed = ",".join(str(s) for s in seeds)
    return f"{listed} (1 seed)" if len(seeds) == 1 else listed


def median_text(o: outcomes.Outcome) -> str:
    """The median iterations to solve with its 95% interval, "> budget" where not reached."""
    median = outcomes.iterations_text(o.median, o.budget)
    if o.interval is None:
        return median
    low, high = (outcomes.iterations_text(v, o.budget) for v in o.interval)
    return f"{median} [{low}, {high}]"


def outcome_rows(run: RunResults) -> tuple[list[str], list[list[str]]]:
    """Per setting: seeds, solved and stayed solved, the Kaplan-Meier median iterations to solve with
    its 95% bootstrap interval, and the final eval loss / baseline (median, and the range over seeds)."""
    axes = run.suite.axes(run.mode)
    headers = ["backend", "cell", "T", *axes, "seeds", "solved", "stayed", "median iterations to solve [95% CI]",
               "final/baseline median [min, max]"]
    rows = []
    for o in outcomes.outcomes(run.points):
        backend, cell, T = o.setting[:3]
        ratios = o.final_ratios
        rows.append([backend, cell, str(T), *axis_values(o.first, axes), seeds_text(o.seeds),
                     f"{o.solved}/{o.runs}", f"{o.stayed_solved}/{o.runs}", median_text(o),
                     f"{np.median(ratios):.3f} [{min(ratios):.3f}, {max(ratios):.3f}]"])
    return headers, rows


def paired_rows(run: RunResults) -> tuple[list[str], list[list[str]]]:
    """Per pair of settings that differ in one paired axis (cell, init, clip), on their common seeds:
    which solved first how often, and the median paired difference of log10(final / baseline)."""
    headers = ["axis", "base", "other", "where", "seeds", "first: other/base/tie",
               "paired diff. log10(final/baseline), median [95% CI]"]
    rows = []
    shown = _where_axes(run)
    for axis in outcomes.varied_axes(run.points):
        for d in outcomes.paired(run.points, axis):
            others = [a for a in outcomes.SETTING_AXES if a != axis]
            where = ", ".join(f"{_COLUMNS.get(name, name)}={value}" for name, value in zip(others, d.setting)
                              if name in shown) or "-"
            interval = "" if d.interval is None else f" [{d.interval[0]:+.3f}, {d.interval[1]:+.3f}]"
            rows.append([axis, d.base, d.other, where, seeds_text(d.seeds), f"{d.other_first}/{d.base_first}/{d.ties}",
                         f"{d.log_ratio_difference:+.3f}{interval}" if math.isfinite(d.log_ratio_difference)
                         else "-"])
    return headers, rows


def _where_axes(run: RunResults) -> set[str]:
    """The setting axes a paired row names: T always, the others where the run varies them."""
    values: dict[str, set] = {}
    for p in outcomes.finished(run.points):
        for axis, value in zip(outcomes.SETTING_AXES, outcomes.setting_of(p)):
            values.setdefault(axis, set()).add(value)
    return {"seq_len"} | {axis for axis, found in values.items() if len(found) > 1}


def verdict_rows(run: RunResults, preset: Reproduction | None = None) -> tuple[list[str], list[list[str]]]:
    """A reproduction preset's verdicts (record/reproduction.py; ``preset`` default: the run's own): per
    expectation and T, what the paper reports, what was measured over which seeds, and the verdict with
    why."""
    headers = ["cell", "init", "T", "paper reports", "published", "measured", "seeds", "verdict", "why"]
    rows = [[v.expectation.cell, v.expectation.init or "suite's", str(v.seq_len), v.expectation.outcome,
             v.expectation.published, f"{v.measured}: {v.detail}", seeds_text(v.seeds), v.verdict, v.why]
            for v in reproduction.verdicts(run, preset)]
    return headers, rows


def tables(run: RunResults) -> list[dict]:
    """The outcome tables of a training run (and a preset's verdicts), titled and captioned, for its page."""
    found = []
    if run.suite.reproduce is not None:
        preset = run.suite.reproduce
        headers, rows = verdict_rows(run)
        found.append({"title": "Verdicts", "headers": headers, "rows": rows, "caption": (
            f"Compared with {preset.paper}. The paper's protocol: {preset.protocol} Here: {preset.differences} "
            f"The paper ran {preset.paper_iterations} iterations. Reproduced: the measurement agrees with the paper "
            f"(a negative result only at the paper's budget or beyond); budget-limited: this run's budget is below the "
            f"paper's and the result may change with it; not reproduced: it disagrees at the paper's budget or "
            f"beyond.")})
    headers, rows = outcome_rows(run)
    if rows:
        found.append({"title": "Outcomes over seeds", "headers": headers, "rows": rows, "caption": (
            "Per setting over its seeds. Iterations to solve: the Kaplan-Meier median, unsolved (and diverged) runs "
            "right-censored at the budget ('> budget': fewer than half solved), with the 95% percentile bootstrap "
            "interval over the seeds; stayed: solved and met the criterion at every later evaluation.")})
    headers, rows = paired_rows(run)
    if rows:
        found.append({"title": "Paired differences", "headers": headers, "rows": rows, "caption": (
            "Settings that differ in one of cell, init, clip, on the seeds both ran (one seed: the same data, "
            "readout and declared draws in both). First: which solved at an earlier evaluation (an unsolved run "
            "loses to a solved one; two unsolved tie). The difference is other minus base; negative: other ends "
            "nearer the criterion.")})
    return found
