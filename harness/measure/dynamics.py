"""Why g_t decays: the recurrent matrix's spectra and the Lyapunov exponents of the backward
dynamics, in float64.

Both are properties of the cell, its weights and the data, the same for every backend, so the core
computes them from the reference model (docs/metrics.md, "Spectra and Lyapunov exponents"):

- per (H, H) block W of the cell's recurrent matrix (:meth:`harness.cell.Cell.recurrent_blocks`:
  the gate blocks of ``weight_hh`` for the classic cells; none for a diagonal recurrence such as
  indrnn, mingru or lru): its spectral radius max |eig W| and largest singular value
  sigma_max(W) = ||W||_2 (Pascanu et al. 2013: with |activation'| <= gamma, sigma_max < 1/gamma makes
  gradients vanish);
- the top k finite-time Lyapunov exponents of the backward dynamics v_{t-1} = J_t^T v_t, where
  J_t = d s_t / d s_{t-1} along the trajectory the data drives (s = every state tensor of the cell:
  h, (h, c) for the LSTM, (re, im) for the LRU), by the QR method: Q_T is a random orthonormal d x k
  frame, Q_{t-1} R_t = J_t^T Q_t, and lambda_i = (1/T) sum_t log |R_t[i, i]|, per sequence of the
  batch, then averaged over the batch. J_t^T Q_t is a vector-Jacobian product of one step: the
  hand-written reference's (``reference.step_vjp``) for the classic cells, the derived one's
  (``derived.step_vjp``, autograd of the cell's step) for every other cell; no Jacobian is formed.
- the decay rate the top exponent predicts: -lambda_1 / ln 10 decades per step, the unit and sign of
  the measured ``decay_rate`` (positive when gradients vanish); none where some step's Jacobian
  annihilated the top direction (|R_11| = 0, clamped to TINY): the exponent then averages the clamp,
  and ``degenerate_fraction`` says how often that happened;
- where the cell's state Jacobian is diagonal and the same at every step
  (:meth:`harness.cell.Cell.diagonal_recurrence`: lru's lambda, indrnn's u), the closed-form decay
  rate -log10 max |diagonal|.

Unlike the instruments beside it, this module runs the reference model (harness/reference.py), so it
sits one layer above them, above the plugin-facing API (docs/architecture.md, "Layers").
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from harness import derived, reference
from harness.cells import Params, cell

TINY = 1e-300  # log |R_ii| of a direction the dynamics annihilate: about -690, not -inf


@dataclass(frozen=True)
class Spectrum:
    """One gate block of W_hh (H x H): its spectral radius and largest singular value."""

    gate: str
    spectral_radius: float
    sigma_max: float


def block_spectra(cell_name: str, params: Mapping[str, np.ndarray] | np.ndarray) -> tuple[Spectrum, ...]:
    """Per (H, H) block of the cell's recurrent matrix (float64): spectral radius and largest
    singular value; () for a cell without one. ``params`` may be the classic cells' weight_hh alone."""
    if isinstance(params, np.ndarray):
        params = {"weight_hh": params}
    blocks = cell(cell_name).recurrent_blocks(params)
    return tuple(Spectrum(name, float(np.max(np.abs(np.linalg.eigvals(b)))), float(np.linalg.norm(b, 2)))
                 for name, b in blocks.items())


def lyapunov_exponents(cell_name: str, params: Params, x: np.ndarray, k: int, window: int = 0,
                       seed: int = 0, start: tuple[int, dict[str, np.ndarray]] | None = None) -> np.ndarray:
    """The top ``k`` finite-time Lyapunov exponents (nats per step, descending) of the backward
    dynamics along the trajectory of ``x`` (T, B, I) from a zero state, averaged over the batch;
    over the last ``window`` steps (the ones nearest the loss) when 0 < window < T. With ``start``
    = (first, s_first), the state after the steps before the window (grid.SeededProblem.window), the
    forward runs over the window only: the same trajectory for a fraction of the work at T >> window."""
    return _lyapunov(cell_name, params, x, k, window, seed, start)[0]


def _lyapunov(cell_name: str, params: Params, x: np.ndarray, k: int, window: int = 0, seed: int = 0,
              start: tuple[int, dict[str, np.ndarray]] | None = None) -> tuple[np.ndarray, float]:
    """:func:`lyapunov_exponents`, and the share of (step, sequence) whose |R_11| was 0 (clamped to TINY)."""
    params = {name: np.asarray(v, dtype=np.float64) for name, v in params.items()}
    x = np.asarray(x, dtype=np.float64)
    steps, batch, _ = x.shape
    first = steps - window if 0 < window < steps else 0
    state = None
    if start is not None and start[0] == first and first > 0:
        x, state, steps, first = x[first:], start[1], steps - first, 0
    if reference.hand_written(cell_name):
        pullback, d = _hand_written_pullback(cell_name, params, x, state)
    else:
        pullback, d = _derived_pullback(cell_name, params, x, state)
    k = min(k, d)
    frame, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((batch, d, k)))
    logs, annihilated = np.zeros((batch, k)), 0
    for t in range(steps - 1, first - 1, -1):
        pulled = pullback(t, frame.transpose(0, 2, 1))  # (B, k, d): each sequence's k frame vectors
        frame, r = np.linalg.qr(pulled.transpose(0, 2, 1))
        diagonal = np.abs(np.diagonal(r, axis1=1, axis2=2))
        annihilated += int(np.count_nonzero(diagonal[:, 0] <= TINY))
        logs += np.log(np.maximum(diagonal, TINY))
    return np.sort(logs.mean(axis=0) / (steps - first))[::-1], annihilated / (batch * (steps - first))


def _hand_written_pullback(cell_name: str, params: Params, x: np.ndarray, state: dict | None = None):
    """J_t^T v for the classic cells: the NumPy reference's one-step backward; s = h, or (h, c)."""
    hidden = params["weight_hh"].shape[1]
    has_c = cell_name == "lstm"
    state = state or {}
    acts = reference.forward(cell_name, params, x, state.get("h"), state.get("c"))

    def pullback(t: int, columns: np.ndarray) -> np.ndarray:
        dh, dc = reference.step_vjp(cell_name, params, x, acts, t, columns[..., :hidden],
                                    columns[..., hidden:] if has_c else None)
        return np.concatenate([dh, dc], axis=2) if has_c else dh

    return pullback, (2 if has_c else 1) * hidden


def _derived_pullback(cell_name: str, params: Params, x: np.ndarray, state: dict | None = None):
    """J_t^T v for any cell: autograd of its step (derived.step_vjp); s = its state tensors in order."""
    layer = cell(cell_name)
    out = derived.forward(layer, params, x, state)
    sizes = {name: states.shape[2] for name, states in out.states.items()}
    offsets = np.cumsum([0, *sizes.values()])

    def pullback(t: int, columns: np.ndarray) -> np.ndarray:
        v = {name: np.ascontiguousarray(columns[..., a:b].transpose(1, 0, 2))  # (k, B, size)
             for name, a, b in zip(sizes, offsets[:-1], offsets[1:])}
        pulled = derived.step_vjp(layer, params, out.previous(t), x[t], v)
        return np.concatenate([pulled[name] for name in sizes], axis=2).transpose(1, 0, 2)  # (B, k, d)

    return pullback, int(offsets[-1])


def closed_form_decay_rate(cell_name: str, params: Params) -> float | None:
    """-log10 max |d_i| for a cell whose state Jacobian is diagonal and step-independent
    (:meth:`harness.cell.Cell.diagonal_recurrence`); None for any other cell."""
    diagonal = cell(cell_name).diagonal_recurrence(params)
    if diagonal is None or not np.size(diagonal):
        return None
    with np.errstate(divide="ignore"):
        return -float(np.log10(np.max(np.abs(diagonal))))


def predicted_decay_rate(exponents: np.ndarray) -> float:
    """Decades of g_t lost per step that the top exponent predicts (the measured decay rate's unit)."""
    return -float(exponents[0]) / math.log(10.0) if len(exponents) else math.nan


def explanation(cell_name: str, draws: list[tuple[Params, np.ndarray]], k: int, window: int = 0,
                starts: list[tuple[int, dict[str, np.ndarray]]] | None = None) -> dict:
    """What explains a gradient profile averaged over ``draws`` (the parameters and inputs of each
    seed): the recurrent matrix's spectra, the closed-form decay rate where the cell has one and, for
    ``k`` > 0, the top-k exponents over the last ``window`` steps (0: all), as the fields of
    :class:`~harness.record.results.GradientProfile` that hold them."""
    per_draw = [block_spectra(cell_name, params) for params, _ in draws]
    spectra = tuple(Spectrum(blocks[0].gate, float(np.mean([b.spectral_radius for b in blocks])),
                             float(np.mean([b.sigma_max for b in blocks]))) for blocks in zip(*per_draw))
    fields: dict = {"spectra": spectra}
    closed = [closed_form_decay_rate(cell_name, params) for params, _ in draws]
    if closed and all(c is not None for c in closed):
        fields["closed_form_decay_rate"] = float(np.mean(closed))
    if not k:
        return fields
    starts = starts or [None] * len(draws)  # each draw's window start (lyapunov_exponents), where known
    found = [_lyapunov(cell_name, params, x, k, window, start=start) for (params, x), start in zip(draws, starts)]
    exponents = np.mean([e for e, _ in found], axis=0)
    degenerate = float(np.mean([d for _, d in found]))
    predicted = predicted_decay_rate(exponents) if degenerate == 0 else None  # a clamp's average is no rate
    return {**fields, "lyapunov": tuple(exponents.tolist()), "predicted_decay_rate": predicted,
            "degenerate_fraction": degenerate}
