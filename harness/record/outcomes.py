"""Training outcomes over seeds: what `harness train`'s tables, pages and DataFrame say per setting.

A setting is a training point without its seed: (backend, cell, T, init, clip, H, B). Over its seeds:

- the success rate, solved / seeds, and how many runs stayed solved (met the criterion at every
  evaluation after they first did);
- iterations to solve as a survival curve S(t), the share of runs not yet solved after t iterations,
  by the Kaplan-Meier product-limit estimator: a run that never solved is right-censored at its
  budget (a diverged run too: it cannot solve later), never counted as "budget + 1". With every
  censoring at the budget, the median is reached exactly when at least half the seeds solved. The
  median is the first t with S(t) <= 1/2; when S stays above 1/2 the median is not reached
  ("> budget"), which is a result, not a number;
- the median's 95% bootstrap interval (percentile method: 2000 resamples of the seeds with
  replacement, a fixed generator, so a table regenerates exactly; the bounds are order statistics,
  so an upper bound of "> budget" stays one). One seed has no interval, and every
  table says "1 seed";
- paired differences between settings that differ in one of :data:`PAIRED_AXES`, on the seeds both ran (the streams of
  harness/streams.py make one seed the same data, readout and declared draws in both): per seed which
  setting solved first (a censored run loses to any solved one; two censored runs tie), and the
  median paired difference of log10(final eval loss / baseline) with its bootstrap interval.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from harness.record.results import OK, PointResult

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
#: The axes of a setting, in the order tables show them; the seed is what varies within one.
SETTING_AXES = ("backend", "cell", "seq_len", "init", "clip", "hidden", "batch")


def setting_of(point: PointResult) -> tuple:
    """The setting a training point belongs to (its values of :data:`SETTING_AXES`)."""
    return tuple(getattr(point, axis) for axis in SETTING_AXES)


def survival(times: Sequence[float], solved: Sequence[bool]) -> tuple[tuple[float, float], ...]:
    """The Kaplan-Meier estimate S(t): (t, S just after t) at every iteration where a run solved.

    ``times`` are the iterations at which each run solved (``solved`` True) or stopped unsolved (False:
    right-censored there). S starts at 1 before the first solve."""
    times, solved = np.asarray(times, dtype=float), np.asarray(solved, dtype=bool)
    left, steps = 1.0, []
    for t in np.unique(times[solved]):
        at_risk = int(np.sum(times >= t))
        left *= 1.0 - int(np.sum((times == t) & solved)) / at_risk
        steps.append((float(t), left))
    return tuple(steps)


def median_time(times: Sequence[float], solved: Sequence[bool]) -> float:
    """The Kaplan-Meier median: the first t with S(t) <= 1/2; inf when S stays above 1/2."""
    return next((t for t, left in survival(times, solved) if left <= 0.5), math.inf)


def _bootstrap(values: np.ndarray, statistic, seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of ``statistic`` over resamples of ``values``' rows."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), size=(BOOTSTRAP_RESAMPLES, len(values)))
    found = np.array([statistic(values[p]) for p in picks])
    tail = (1 - CONFIDENCE) / 2 * 100  # order statistics, not interpolated: a bound may be inf ("> budget")
    return float(np.percentile(found, tail, method="lower")), float(np.percentile(found, 100 - tail, method="higher"))


@dataclass(frozen=True)
class Outcome:
    """One setting over its seeds (definitions: the module)."""

    setting: tuple  # values of SETTING_AXES
    seeds: tuple[int, ...]
    solved: int
    stayed_solved: int
    budget: int  # the planned iterations
    median: float  # Kaplan-Meier median iterations to solve; inf: not reached within the budget
    interval: tuple[float, float] | None  # its 95% bootstrap interval; None for one seed
    survival: tuple[tuple[float, float], ...]  # (iteration, share not yet solved)
    final_ratios: tuple[float, ...]  # final eval loss / baseline, per seed
    best_ratios: tuple[float, ...]  # the lowest eval loss / baseline of the run, per seed
    points: tuple[PointResult, ...]  # the setting's points, one per seed, in seed order

    @property
    def first(self) -> PointResult:
        """The first seed's point: where tables read the setting's axes (series, init, ...)."""
        return self.points[0]

    @property
    def runs(self) -> int:
        return len(self.seeds)

    def axis(self, name: str):
        """The setting's value of axis ``name`` (one of SETTING_AXES)."""
        return self.setting[SETTING_AXES.index(name)]

    @property
    def cell(self) -> str:
        return self.axis("cell")

    @property
    def init(self) -> str | None:
        return self.axis("init")

    @property
    def seq_len(self) -> int:
        return self.axis("seq_len")


def _times(points: Sequence[PointResult]) -> tuple[np.ndarray, np.ndarray]:
    """Per run: the iteration it solved at, or (censored) its planned iterations, and whether it solved.
    A diverged run is censored at the budget too: it stopped for good and cannot solve later, so it must
    not leave the risk set early (which would raise the others' share)."""
    times = [p.training.solved_at if p.training.solved_at is not None else p.training.planned_iterations
             for p in points]
    return np.asarray(times, dtype=float), np.asarray([p.training.solved_at is not None for p in points])


def median_iterations(points: Sequence[PointResult]) -> float:
    """The Kaplan-Meier median iterations to solve of one setting's points (inf: not reached), without
    the bootstrap: what asv records."""
    return median_time(*_times(points))


def outcome(points: Sequence[PointResult]) -> Outcome:
    """The :class:`Outcome` of one setting's training points (one per seed, finished)."""
    points = sorted(points, key=lambda p: p.seed if p.seed is not None else -1)
    times, solved = _times(points)
    interval = None
    if len(points) > 1:
        runs = np.column_stack([times, solved])
        interval = _bootstrap(runs, lambda r: median_time(r[:, 0], r[:, 1].astype(bool)))
    return Outcome(
        setting=setting_of(points[0]), seeds=tuple(p.seed for p in points), solved=int(solved.sum()),
        stayed_solved=sum(p.training.stayed_solved for p in points),
        budget=max(p.training.planned_iterations for p in points), median=median_time(times, solved),
        interval=interval, survival=survival(times, solved),
        final_ratios=tuple(p.training.final_ratio for p in points),
        best_ratios=tuple(float(np.nanmin(p.training.eval_loss)) / p.training.baseline for p in points),
        points=tuple(points))


def finished(points: Iterable[PointResult]) -> list[PointResult]:
    """The training points that finished (status ok, with a training record): what outcomes count."""
    return [p for p in points if p.status == OK and p.training is not None and p.training.eval_loss]


def outcomes(points: Iterable[PointResult]) -> list[Outcome]:
    """Every setting's :class:`Outcome`, in the order the settings first appear."""
    groups: dict[tuple, list[PointResult]] = defaultdict(list)
    for p in finished(points):
        groups[setting_of(p)].append(p)
    return [outcome(group) for group in groups.values()]


@dataclass(frozen=True)
class PairedDifference:
    """Setting ``other`` against setting ``base`` (they differ in ``axis`` only) on their common seeds."""

    axis: str
    base: str  # the axis's value in each
    other: str
    setting: tuple  # the values of the other axes (SETTING_AXES with ``axis`` left out)
    seeds: tuple[int, ...]
    other_first: int  # seeds on which ``other`` solved first (or solved where ``base`` did not)
    base_first: int
    ties: int  # same eval iteration, or neither solved
    log_ratio_difference: float  # median over seeds of log10(other's final/baseline) - log10(base's)
    interval: tuple[float, float] | None  # its 95% bootstrap interval; None for one seed


def paired(points: Iterable[PointResult], axis: str) -> list[PairedDifference]:
    """Every setting against the one that shares its other axes and has the first value of ``axis``
    (in the order the points appear: a suite's first init, clip, cell, ...), on the common seeds."""
    done = finished(points)
    where = SETTING_AXES.index(axis)
    by_rest: dict[tuple, dict] = defaultdict(dict)  # the other axes -> value of axis -> seed -> point
    for p in done:
        setting = setting_of(p)
        rest = setting[:where] + setting[where + 1:]
        by_rest[rest].setdefault(setting[where], {})[p.seed] = p
    found = []
    for rest, values in by_rest.items():
        base_value, *others = list(values)
        for value in others:
            base, other = values[base_value], values[value]
            seeds = sorted(set(base) & set(other))
            if not seeds:
                continue
            b_times, b_solved = _times([base[s] for s in seeds])
            o_times, o_solved = _times([other[s] for s in seeds])
            b_key = np.where(b_solved, b_times, math.inf)
            o_key = np.where(o_solved, o_times, math.inf)
            with np.errstate(divide="ignore", invalid="ignore"):  # a loss of 0 is -inf decades, not an error
                diffs = np.log10([other[s].training.final_ratio for s in seeds]) - \
                    np.log10([base[s].training.final_ratio for s in seeds])
            found.append(PairedDifference(
                axis=axis, base=str(base_value), other=str(value), setting=rest, seeds=tuple(seeds),
                other_first=int(np.sum(o_key < b_key)), base_first=int(np.sum(b_key < o_key)),
                ties=int(np.sum(o_key == b_key)), log_ratio_difference=float(np.median(diffs)),
                interval=_bootstrap(diffs, np.median) if len(seeds) > 1 else None))
    return found


#: The axes along which one seed is the same experiment: the same data, readout and declared draws
#: (harness/streams.py). T, H and B change the draws themselves, so they are compared, not paired.
PAIRED_AXES = ("cell", "init", "clip")


def varied_axes(points: Iterable[PointResult]) -> list[str]:
    """The :data:`PAIRED_AXES` that take more than one value among ``points``."""
    values = defaultdict(set)
    for p in finished(points):
        for axis, value in zip(SETTING_AXES, setting_of(p)):
            values[axis].add(value)
    return [axis for axis in PAIRED_AXES if len(values[axis]) > 1]


def iterations_text(value: float, budget: int) -> str:
    """An iteration count as tables show it: "> budget" for a median or bound not reached."""
    return f"> {budget}" if math.isinf(value) else f"{value:g}"
