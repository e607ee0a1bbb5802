"""Exact physics of the gradient metrics.

rnn_tanh with zero input weights and biases and h_0 = 0 keeps h_t = 0, so every tanh' is 1 and each
backward step multiplies by W_hh^T: with W_hh = s Q (Q orthogonal), ||dL/dh_t|| = s^(T-t) ||dL/dh_T||.
"""
from __future__ import annotations

import numpy as np
import pytest

from harness import Problem
from harness.inits import random_orthogonal
from harness.measure import gradients as metrics
from harness_plugins.numpy_backend import NumpyBackend


def _profile(scale: float, T: int, dtype: str = "float64", H: int = 16, B: int = 4):
    rng = np.random.default_rng(0)
    params = {"weight_ih": np.zeros((H, 3)), "weight_hh": scale * random_orthogonal(H, rng),
              "bias_ih": np.zeros(H), "bias_hh": np.zeros(H)}
    grad_h = np.zeros((T, B, H))
    grad_h[-1] = rng.standard_normal((B, H))  # the loss on the last step only
    problem = Problem("rnn_tanh", {k: v.astype(dtype) for k, v in params.items()},
                      rng.standard_normal((T, B, 3)).astype(dtype), grad_h.astype(dtype))
    backend = NumpyBackend()
    backend.prepare(problem)
    backend.forward()
    backend.backward(per_step=True)
    return metrics.profile(backend.gradients().h)


def test_half_orthogonal_decays_by_half_per_step():
    T = 40
    g = _profile(0.5, T)
    lags = T - 1 - np.arange(T)
    assert np.allclose(g, 0.5**lags * g[-1], rtol=1e-12, atol=0)
    m = metrics.gradient_metrics(g)
    assert m.decay_rate == pytest.approx(np.log10(2), abs=1e-6)
    assert m.log10_ratio == pytest.approx((T - 1) * np.log10(2), abs=1e-6)
    assert m.horizon == 19  # 0.5^19 >= 1e-6 > 0.5^20
    assert not m.exploded


def test_orthogonal_keeps_the_profile_flat():
    T = 200
    g = _profile(1.0, T)
    assert np.allclose(g, g[-1], rtol=1e-10)
    m = metrics.gradient_metrics(g)
    assert abs(m.decay_rate) <= 1e-10 and m.horizon == T and not m.exploded


def test_one_and_a_half_orthogonal_grows_then_overflows_as_explosion():
    T = 300  # 1.5^219 passes float32's maximum
    g = _profile(1.5, T, dtype="float32")
    lags = T - 1 - np.arange(T)
    finite = np.isfinite(g)
    assert np.allclose(g[finite], 1.5 ** lags[finite] * g[-1], rtol=1e-4)
    m = metrics.gradient_metrics(g)
    assert m.exploded and 200 <= m.first_nonfinite_lag <= 225
    assert m.decay_rate == pytest.approx(-np.log10(1.5), abs=1e-5)  # growth: a negative decay rate


def test_horizon_and_vanishing_flag_on_a_synthetic_profile():
    g = np.array([0.0, 1e-9, 1e-3, 1.0])  # lags 3, 2, 1, 0
    m = metrics.gradient_metrics(g)
    assert m.horizon == 1 and m.vanished and not m.exploded


def test_underflowed_entries_do_not_flatten_the_decay_rate():
    """float32 gradients can stick at the smallest subnormal (~1.4e-45) once they have vanished,
    as the GRU's z * h path does; the fit must leave that floor out."""
    T = 2000
    lags = T - 1 - np.arange(T)
    g = np.maximum(0.5 ** lags.astype(float), 1.4e-45)
    floor = metrics.underflow_floor("float32")
    m = metrics.gradient_metrics(g, floor=floor)
    assert m.decay_rate == pytest.approx(np.log10(2), abs=1e-9) and m.vanished
    assert metrics.gradient_metrics(g).decay_rate < 0.1 * np.log10(2)  # what fitting the floor gives


def test_a_growing_profile_has_a_growth_horizon_and_a_reach_short_of_the_sequence():
    """g = 1.5^lag passes 1e6 g_T at lag 35 (1.5^34 = 9.7e5, 1.5^35 = 1.5e6): horizon T, reach 34."""
    T = 200
    g = 1.5 ** (T - 1 - np.arange(T)).astype(float)
    m = metrics.gradient_metrics(g)
    assert m.horizon == T and m.growth_horizon == 35 and m.reach == 34
    flat = metrics.gradient_metrics(np.ones(T))
    assert flat.growth_horizon is None and flat.reach == T


def test_an_overflowed_lag_ends_the_growth_horizon():
    g = np.array([np.inf, 10.0, 5.0, 1.0])  # lags 3, 2, 1, 0
    m = metrics.gradient_metrics(g)
    assert m.exploded and m.growth_horizon == 3 and m.reach == 2


def test_a_profile_exactly_zero_beyond_a_few_lags_gets_no_rate():
    """tanh' underflowing to 0: three nonzero lags are no slope. The rate is NaN, and the profile says
    where the gradient stops and how much of it is zero."""
    T = 50
    g = np.zeros(T)
    g[-3:] = [1e-4, 1e-2, 1.0]  # lags 2, 1, 0
    m = metrics.gradient_metrics(g)
    assert np.isnan(m.decay_rate) and m.fit_points == 3
    assert m.last_nonzero_lag == 2 and m.zero_fraction == pytest.approx(47 / 50)
    g[-5:-3] = [1e-8, 1e-6]  # five points: a rate again
    assert metrics.gradient_metrics(g).decay_rate == pytest.approx(2.0)


def test_decay_rates_are_least_squares_slopes_per_column():
    rng = np.random.default_rng(0)
    curves = np.exp(rng.standard_normal((30, 4)))
    lags = 29 - np.arange(30)
    expected = [-np.polyfit(lags, np.log10(curves[:, j]), 1)[0] for j in range(4)]
    np.testing.assert_allclose(metrics.decay_rates(curves), expected, rtol=1e-12)


def test_the_batch_mean_decays_more_slowly_than_the_geometric_mean_of_its_sequences():
    """Sequences with their own exact rates r_b: each per-sequence rate is r_b, the geometric profile's
    rate is their mean, and the batch mean of norms (led by the slowest sequence) decays more slowly:
    Jensen's gap, measured."""
    T, rates = 100, np.array([0.01, 0.05, 0.1, 0.2])
    lags = (T - 1 - np.arange(T)).astype(float)
    norms = 10.0 ** (-np.outer(lags, rates))
    spread = metrics.spread(norms)
    assert spread.geometric_decay_rate == pytest.approx(rates.mean(), rel=1e-12)
    np.testing.assert_allclose(spread.sequence_decay_rates, np.percentile(rates, [25, 50, 75]), rtol=1e-12)
    batch_mean = metrics.gradient_metrics(norms.mean(axis=1)).decay_rate
    assert batch_mean < spread.geometric_decay_rate
