"""Why g_t decays: W_hh's spectra and the Lyapunov exponents of the backward dynamics, in float64.

Both are properties of the cell, its weights and the data, the same for every backend, so the core
computes them with the NumPy reference (docs/metrics.md, "Spectra and Lyapunov exponents"):

- per gate block W of ``weight_hh``: its spectral radius max |eig W| and largest singular value
  sigma_max(W) = ||W||_2 (Pascanu et al. 2013: with |activation'| <= gamma, sigma_max < 1/gamma makes
  gradients vanish);
- the top k finite-time Lyapunov exponents of the backward dynamics v_{t-1} = J_t^T v_t, where
  J_t = d s_t / d s_{t-1} along the trajectory the data drives (s = h, or (h, c) for the LSTM), by
  the QR method: Q_T is a random orthonormal d x k frame, Q_{t-1} R_t = J_t^T Q_t, and
  lambda_i = (1/T) sum_t log |R_t[i, i]|, per sequence of the batch, then averaged over the batch.
  J_t^T Q_t is the reference's own one-step backward (``reference.step_vjp``, a vector-Jacobian product
  per column), so no Jacobian is formed and every cell is covered by the code its gradients are checked with.
- the decay rate the top exponent predicts: -lambda_1 / ln 10 decades per step, the unit and sign of
  the measured ``decay_rate`` (positive when gradients vanish).

Unlike the instruments beside it, this module runs the reference model (harness/reference.py), so it
sits one layer above them, above the plugin-facing API (docs/architecture.md, "Layers").
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness import reference
from harness.cells import Params, cell_spec

TINY = 1e-300  # log |R_ii| of a direction the dynamics annihilate: about -690, not -inf


@dataclass(frozen=True)
class Spectrum:
    """One gate block of W_hh (H x H): its spectral radius and largest singular value."""

    gate: str
    spectral_radius: float
    sigma_max: float


def block_spectra(cell: str, weight_hh: np.ndarray) -> tuple[Spectrum, ...]:
    """Per gate block of W_hh (float64): spectral radius and largest singular value."""
    names = cell_spec(cell).gate_names
    blocks = np.split(np.asarray(weight_hh, dtype=np.float64), len(names))
    return tuple(Spectrum(name, float(np.max(np.abs(np.linalg.eigvals(b)))), float(np.linalg.norm(b, 2)))
                 for name, b in zip(names, blocks))


def lyapunov_exponents(cell: str, params: Params, x: np.ndarray, k: int, window: int = 0,
                       seed: int = 0) -> np.ndarray:
    """The top ``k`` finite-time Lyapunov exponents (nats per step, descending) of the backward
    dynamics along the trajectory of ``x`` (T, B, I) from a zero state, averaged over the batch;
    over the last ``window`` steps (the ones nearest the loss) when 0 < window < T."""
    params = {name: np.asarray(v, dtype=np.float64) for name, v in params.items()}
    x = np.asarray(x, dtype=np.float64)
    steps, batch, _ = x.shape
    hidden = params["weight_hh"].shape[1]
    has_c = cell_spec(cell).has_cell_state
    d = 2 * hidden if has_c else hidden
    k = min(k, d)
    acts = reference.forward(cell, params, x)
    frame, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((batch, d, k)))
    logs = np.zeros((batch, k))
    first = steps - window if 0 < window < steps else 0
    for t in range(steps - 1, first - 1, -1):
        columns = frame.transpose(0, 2, 1)  # (B, k, d): each sequence's k frame vectors
        dh, dc = reference.step_vjp(cell, params, x, acts, t, columns[..., :hidden],
                                    columns[..., hidden:] if has_c else None)
        pulled = np.concatenate([dh, dc], axis=2) if has_c else dh
        frame, r = np.linalg.qr(pulled.transpose(0, 2, 1))
        logs += np.log(np.maximum(np.abs(np.diagonal(r, axis1=1, axis2=2)), TINY))
    return np.sort(logs.mean(axis=0) / (steps - first))[::-1]


def predicted_decay_rate(exponents: np.ndarray) -> float:
    """Decades of g_t lost per step that the top exponent predicts (the measured decay rate's unit)."""
    return -float(exponents[0]) / math.log(10.0) if len(exponents) else math.nan


def explanation(cell: str, draws: list[tuple[Params, np.ndarray]], k: int, window: int = 0) -> dict:
    """What explains a gradient profile averaged over ``draws`` (the parameters and inputs of each
    seed): W_hh's spectra and, for ``k`` > 0, the top-k exponents over the last ``window`` steps (0:
    all), as the fields of :class:`~harness.record.results.Gradient` that hold them."""
    per_draw = [block_spectra(cell, params["weight_hh"]) for params, _ in draws]
    spectra = tuple(Spectrum(blocks[0].gate, float(np.mean([b.spectral_radius for b in blocks])),
                             float(np.mean([b.sigma_max for b in blocks]))) for blocks in zip(*per_draw))
    if not k:
        return {"spectra": spectra}
    exponents = np.mean([lyapunov_exponents(cell, params, x, k, window) for params, x in draws], axis=0)
    return {"spectra": spectra, "lyapunov": tuple(exponents.tolist()),
            "predicted_decay_rate": predicted_decay_rate(exponents)}
