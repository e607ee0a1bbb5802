"""Gradient-behaviour metrics of a profile g_t = mean over the batch of ||dL/dh_t||_2, t = 1..T.

Formulas and their sources: docs/metrics.md. The loss sits on the last step only, so the lag of
step t is T - t and g_T is the gradient the loss injects. Which state's gradient g_t measures is the
cell's: its output state (h), or, for a cell whose readout input is not a state (LRU), every state
tensor at once (:func:`state_norms`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from harness.cell import Cell

HORIZON_FRACTION = 1e-6  # horizon: g has fallen to this fraction of g_T
GROWTH_FACTOR = 1e6  # growth horizon: g has grown to this multiple of g_T
MIN_FIT_POINTS = 5  # a decay rate is a slope fitted to at least this many entries, else NaN


@dataclass(frozen=True)
class DecayMetrics:
    """What a profile says about vanishing and explosion (definitions: :func:`gradient_metrics`)."""

    decay_rate: float
    log10_ratio: float
    horizon: int | None
    exploded: bool  # grew until it overflowed: finite where the loss enters, non-finite further back
    first_nonfinite_lag: int | None
    vanished: bool
    nonfinite_from_start: bool = False  # non-finite where the loss enters (g_n): no explosion, a broken input
    growth_horizon: int | None = None  # the smallest lag where g >= GROWTH_FACTOR g_T (or overflowed); None: never
    last_nonzero_lag: int | None = None  # the largest lag whose g is finite and above the underflow floor
    zero_fraction: float = 0.0  # the share of lags whose g is exactly 0 or underflowed (at or below the floor)
    fit_points: int = 0  # the entries decay_rate is fitted to (NaN below MIN_FIT_POINTS)

    @property
    def reach(self) -> int | None:
        """How far back the gradient stays within [1e-6, 1e6] x g_T: the horizon, cut short by growth
        (the last lag before the growth horizon). None when g_T itself is 0 or not finite."""
        if self.horizon is None:
            return None
        return self.horizon if self.growth_horizon is None else min(self.horizon, self.growth_horizon - 1)


def norms(per_step_grad: np.ndarray) -> np.ndarray:
    """||dL/dh_{t,b}||_2 (T, B) from per-step gradients of shape (T, B, H), in float64."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.linalg.norm(per_step_grad.astype(np.float64), axis=-1)


def profile(per_step_grad: np.ndarray) -> np.ndarray:
    """g_t = mean_b ||dL/dh_t||_2 from per-step gradients of shape (T, B, H), in float64."""
    with np.errstate(over="ignore", invalid="ignore"):
        return norms(per_step_grad).mean(axis=-1)


def profiled_states(cell: Cell | type[Cell]) -> tuple[str, ...]:
    """The state tensors whose joint per-step gradient is g_t: the cell's output state where the
    readout sees it (h), else every state tensor (LRU's re and im: the complex mode's norm)."""
    cls = cell if isinstance(cell, type) else type(cell)
    if cls.output is not None and cls.readout_input is Cell.readout_input:
        return (cls.output,)
    return tuple(s.name for s in cls.state)


def state_norms(cell: Cell | type[Cell],
                per_state: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-sequence norms (T, B) of the total per-step gradients of the cell's states, by name (T, B,
    size): over :func:`profiled_states` (jointly: sqrt of the summed squares), and over a state named c
    beside them (LSTM's dL/dc_t), else None. Their batch means are g_t and g^c_t."""
    names = profiled_states(cell)
    joint = per_state[names[0]] if len(names) == 1 else np.concatenate([per_state[n] for n in names], axis=-1)
    other = per_state.get("c") if "c" not in names else None
    return norms(joint), (norms(other) if other is not None else None)


def underflow_floor(dtype: str | np.dtype) -> float:
    """The smallest normal number of ``dtype``: a gradient at or below it has underflowed."""
    return float(np.finfo(dtype).tiny)


def gradient_metrics(g: np.ndarray, floor: float = 0.0) -> DecayMetrics:
    """Decay rate, log10(g_T / g_1), horizons, degeneracy and explosion flags of a profile.

    ``floor`` is the smallest normal number of the dtype the gradients were computed in: entries
    at or below it have underflowed (float32 gradients bottom out near 1e-45) and would flatten the
    fitted slope, so the fit leaves them out and they count as vanished.

    - ``decay_rate``: minus the least-squares slope of log10 g_t against the lag T - t, over the
      finite entries above ``floor`` (``fit_points`` of them; NaN when fewer than MIN_FIT_POINTS):
      decades lost per step (log10(2) for g halving each step; negative when gradients grow).
    - ``log10_ratio``: log10(g_T / g_1); positive when gradients vanish towards the start.
    - ``horizon``: the largest lag whose g is at least 1e-6 g_T (T when none falls below).
    - ``growth_horizon``: the smallest lag whose g is at least 1e6 g_T or not finite: how far back a
      growing profile stays usable (None when it never grows that far). ``reach`` is the horizon cut
      at the last lag before the growth horizon, so a growing profile is never read as an ideal one.
    - ``last_nonzero_lag`` and ``zero_fraction``: where the profile is exactly 0 (or underflowed)
      from some lag on, the last lag that carries gradient and the share of lags that carry none.
    - ``exploded``: some g_t is inf or NaN while g_n (where the loss enters) is finite: the gradient
      grew until it overflowed; ``first_nonfinite_lag`` is the smallest non-finite lag.
    - ``nonfinite_from_start``: g_n itself is not finite: the loss or the backend injected NaN/inf,
      which is not an explosion.
    """
    g = np.asarray(g, dtype=np.float64)
    T = g.size
    lags = T - 1 - np.arange(T)  # lag of g[i] (step t = i + 1) is T - t
    finite = np.isfinite(g)
    usable = finite & (g > floor)
    decay_rate = float(decay_rates(g[:, None], floor)[0])
    g_T, g_1 = g[-1], g[0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log10_ratio = float(np.log10(g_T) - np.log10(g_1)) if g_T > 0 and np.isfinite(g_T) else float("nan")
    horizon = growth_horizon = None
    if np.isfinite(g_T) and g_T > 0:
        above = np.nonzero(g >= HORIZON_FRACTION * g_T)[0]  # NaN compares False
        horizon = int(lags[above].max())
        horizon = T if horizon == T - 1 else horizon
        with np.errstate(over="ignore", invalid="ignore"):
            grown = ~finite | (g >= GROWTH_FACTOR * g_T)
        growth_horizon = int(lags[grown].min()) if grown.any() else None
    return DecayMetrics(
        decay_rate=decay_rate,
        log10_ratio=log10_ratio,
        horizon=horizon,
        exploded=bool(not finite.all() and finite[-1]),
        nonfinite_from_start=bool(not finite[-1]),
        first_nonfinite_lag=int(lags[~finite].min()) if not finite.all() else None,
        vanished=bool(np.any(finite & (g <= floor))),
        growth_horizon=growth_horizon,
        last_nonzero_lag=int(lags[usable].max()) if usable.any() else None,
        zero_fraction=float(np.mean(finite & (g <= floor))),
        fit_points=int(usable.sum()),
    )


def decay_rates(curves: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """The decay rate of each column of ``curves`` (T, n): minus the least-squares slope of log10 of
    the column against the lag, over its finite entries above ``floor``; NaN for a column with fewer
    than MIN_FIT_POINTS of them."""
    curves = np.asarray(curves, dtype=np.float64)
    lags = (curves.shape[0] - 1 - np.arange(curves.shape[0]))[:, None].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        usable = np.isfinite(curves) & (curves > floor)
        w = usable.astype(np.float64)
        n = w.sum(axis=0)
        y = np.where(usable, np.log10(np.where(usable, curves, 1.0)), 0.0)
        x_mean = (w * lags).sum(axis=0) / n
        y_mean = (w * y).sum(axis=0) / n
        dx = (lags - x_mean) * w
        slope = (dx * (y - y_mean)).sum(axis=0) / (dx * dx).sum(axis=0)
    return np.where(n >= MIN_FIT_POINTS, -slope, np.nan)


@dataclass(frozen=True)
class Spread:
    """How the batch mean of norms g_t relates to its sequences: the geometric-mean profile
    exp(mean_b ln ||dL/dh_{t,b}||), its decay rate, and the quartiles of the per-sequence decay rates.
    Since the mean of logs is at most the log of the mean (Jensen), g can decay more slowly than the
    typical sequence; the geometric profile's rate is the one the top Lyapunov exponent predicts."""

    g_geometric: tuple[float, ...]
    geometric_decay_rate: float
    sequence_decay_rates: tuple[float, float, float] | None  # 25th, 50th, 75th percentile; None: none fitted


def spread(norms: np.ndarray, floor: float = 0.0) -> Spread:
    """The :class:`Spread` of per-sequence norms (T, n): ||dL/dh_{t,b}|| for every sequence of the
    batch (and of every seed)."""
    norms = np.asarray(norms, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        geometric = np.exp(np.log(norms).mean(axis=1))
    per_sequence = decay_rates(norms, floor)
    fitted = per_sequence[np.isfinite(per_sequence)]
    quartiles = tuple(float(q) for q in np.percentile(fitted, [25, 50, 75])) if fitted.size else None
    return Spread(tuple(geometric.tolist()), float(decay_rates(geometric[:, None], floor)[0]), quartiles)
