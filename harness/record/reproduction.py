"""Verdicts of a reproduction preset (a suite with a ``[reproduce]`` table, `harness reproduce NAME`):
what the paper reports per setting, what the harness measured over its seeds, and whether that
reproduces it.

Per expectation and sequence length, over the matching settings' seeds (record/outcomes.py):

- measured "solved" when at least half the seeds met the task's criterion (the Kaplan-Meier median
  iterations to solve is then reached), else "not solved"; settings that match one expectation (two
  clipping thresholds, say) are pooled, and the verdict says so; "below baseline" when the median over the
  seeds of the best eval loss / memoryless baseline is at most :data:`BELOW_BASELINE`, else
  "not below baseline";
- the verdict: **reproduced** when the measurement agrees with the paper, except that a negative
  result ("not solved", "not below baseline") at fewer iterations than the paper ran is only
  **budget-limited** (the paper's own budget might have changed it); **budget-limited** too when a
  positive result is not seen at fewer iterations than the paper's; **not reproduced** when the
  measurement disagrees at the paper's budget or beyond, or shows a positive result the paper did not.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.inits import parse
from harness.record import outcomes
from harness.record.results import RunResults
from harness.suites import Expectation, Reproduction

BELOW_BASELINE = 0.5  # "beats the memoryless baseline": the best eval loss at most half of it
REPRODUCED, NOT_REPRODUCED, BUDGET_LIMITED = "reproduced", "not reproduced", "budget-limited"
_POSITIVE = ("solved", "below baseline")


@dataclass(frozen=True)
class Verdict:
    """One expectation at one T: what the paper reports, what was measured, and the verdict with why."""

    expectation: Expectation
    seq_len: int
    seeds: tuple[int, ...]
    measured: str
    detail: str  # the numbers behind ``measured``
    iterations: int  # this run's budget
    verdict: str
    why: str


def _measure(group: list[outcomes.Outcome], kind: str) -> tuple[str, str]:
    """(measured outcome of ``kind``'s family, the numbers behind it) over the settings' seeds."""
    solved = sum(o.solved for o in group)
    runs = sum(o.runs for o in group)
    best = [r for o in group for r in o.best_ratios]
    median_best = float(np.median(best))
    pooled = f" (pooled over {len(group)} settings)" if len(group) > 1 else ""
    detail = (f"{solved}/{runs} seeds solved{pooled}; best eval/baseline median {median_best:.3f} "
              f"(per seed {', '.join(f'{r:.2f}' for r in best)})")
    if kind in ("solved", "not solved"):
        return ("solved" if 2 * solved >= runs else "not solved"), detail
    return ("below baseline" if median_best <= BELOW_BASELINE else "not below baseline"), detail


def verdicts(run: RunResults, preset: Reproduction | None = None) -> list[Verdict]:
    """The verdict of every expectation of ``preset`` (default: the one the run's results file carries),
    per sequence length the run trained."""
    preset = preset or run.suite.reproduce
    if preset is None:
        return []
    found = []
    every = outcomes.outcomes(run.points)
    for expectation in preset.expect:
        init = None if expectation.init is None else parse(expectation.init).label  # forget_bias=1 is forget_bias
        matching = [o for o in every if o.cell == expectation.cell and (init is None or o.init == init)
                    and (expectation.seq_len is None or o.seq_len == expectation.seq_len)]
        for T in sorted({o.seq_len for o in matching}):
            group = [o for o in matching if o.seq_len == T]
            measured, detail = _measure(group, expectation.outcome)
            budget = max(o.budget for o in group)
            found.append(Verdict(expectation, T, tuple(s for o in group for s in o.seeds), measured, detail, budget,
                                 *_judge(expectation.outcome, measured, budget, preset.paper_iterations)))
    return found


def _judge(expected: str, measured: str, budget: int, paper: int | None) -> tuple[str, str]:
    short = paper is None or budget < paper  # a paper that does not state its budget may have run longer
    paper = "an unstated number of" if paper is None else paper
    if measured == expected:
        if expected not in _POSITIVE and short:
            return BUDGET_LIMITED, (f"{measured} in {budget} iterations, as the paper reports, but the paper ran "
                                    f"{paper}: at this budget a negative result says little")
        return REPRODUCED, f"{measured}, as the paper reports, in {budget} iterations (the paper ran {paper})"
    if expected in _POSITIVE and short:
        return BUDGET_LIMITED, (f"the paper reports {expected} within {paper} iterations; {measured} within the "
                                f"{budget} run here")
    return NOT_REPRODUCED, f"the paper reports {expected}; measured {measured} in {budget} iterations (paper: {paper})"
