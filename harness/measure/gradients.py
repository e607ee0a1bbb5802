"""Gradient-behaviour metrics of a profile g_t = mean over the batch of ||dL/dh_t||_2, t = 1..T.

Formulas and their sources: docs/metrics.md. The loss sits on the last step only, so the lag of
step t is T - t and g_T is the gradient the loss injects. Which state's gradient g_t measures is the
cell's: its output state (h), or, for a cell whose readout input is not a state (LRU), every state
tensor at once (:func:`state_profiles`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from harness.cell import Cell

HORIZON_FRACTION = 1e-6


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


def profile(per_step_grad: np.ndarray) -> np.ndarray:
    """g_t = mean_b ||dL/dh_t||_2 from per-step gradients of shape (T, B, H), in float64."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.linalg.norm(per_step_grad.astype(np.float64), axis=-1).mean(axis=-1)


def profiled_states(cell: Cell | type[Cell]) -> tuple[str, ...]:
    """The state tensors whose joint per-step gradient is g_t: the cell's output state where the
    readout sees it (h), else every state tensor (LRU's re and im: the complex mode's norm)."""
    cls = cell if isinstance(cell, type) else type(cell)
    if cls.output is not None and cls.readout_input is Cell.readout_input:
        return (cls.output,)
    return tuple(s.name for s in cls.state)


def state_profiles(cell: Cell | type[Cell],
                   per_state: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """(g_t, g^c_t) from the total per-step gradients of the cell's states, by name (T, B, size):
    g_t over :func:`profiled_states` (jointly: sqrt of the summed squares), g^c_t over a state named c
    beside them (LSTM's dL/dc_t), else None."""
    names = profiled_states(cell)
    joint = per_state[names[0]] if len(names) == 1 else np.concatenate([per_state[n] for n in names], axis=-1)
    other = per_state.get("c") if "c" not in names else None
    return profile(joint), (profile(other) if other is not None else None)


def underflow_floor(dtype: str | np.dtype) -> float:
    """The smallest normal number of ``dtype``: a gradient at or below it has underflowed."""
    return float(np.finfo(dtype).tiny)


def gradient_metrics(g: np.ndarray, floor: float = 0.0) -> DecayMetrics:
    """Decay rate, log10(g_T / g_1), horizon and explosion flags of a profile.

    ``floor`` is the smallest normal number of the dtype the gradients were computed in: entries
    at or below it have underflowed (float32 gradients bottom out near 1e-45) and would flatten the
    fitted slope, so the fit leaves them out and they count as vanished.

    - ``decay_rate``: minus the least-squares slope of log10 g_t against the lag T - t, over the
      finite entries above ``floor``: decades lost per step (log10(2) for g halving each step;
      negative when gradients grow).
    - ``log10_ratio``: log10(g_T / g_1); positive when gradients vanish towards the start.
    - ``horizon``: the largest lag whose g is at least 1e-6 g_T (T when none falls below).
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
    decay_rate = float(-np.polyfit(lags[usable], np.log10(g[usable]), 1)[0]) if usable.sum() >= 2 else float("nan")
    g_T, g_1 = g[-1], g[0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log10_ratio = float(np.log10(g_T) - np.log10(g_1)) if g_T > 0 and np.isfinite(g_T) else float("nan")
    horizon = None
    if np.isfinite(g_T) and g_T > 0:
        above = np.nonzero(g >= HORIZON_FRACTION * g_T)[0]  # NaN compares False
        horizon = int(lags[above].max())
        horizon = T if horizon == T - 1 else horizon
    return DecayMetrics(
        decay_rate=decay_rate,
        log10_ratio=log10_ratio,
        horizon=horizon,
        exploded=bool(not finite.all() and finite[-1]),
        nonfinite_from_start=bool(not finite[-1]),
        first_nonfinite_lag=int(lags[~finite].min()) if not finite.all() else None,
        vanished=bool(np.any(finite & (g <= floor))),
    )
