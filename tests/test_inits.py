"""The initialisations against their definitions (harness/inits.py), and the init axis of a suite."""
from __future__ import annotations

import re

import numpy as np
import pytest

from harness import HarnessError, suites
from harness.inits import KINDS, init_params, parse
from tests.support.suites import write_suite

H = 16


def _draw(cell: str, init: str, steps: int | None = None, seed: int = 1) -> dict[str, np.ndarray]:
    return init_params(cell, 3, H, np.random.default_rng(seed), init=init, steps=steps)


@pytest.mark.parametrize("init", ["orthogonal=0.5", "identity=0.5"])
def test_recurrent_blocks_are_gain_times_orthogonal_or_identity(init):
    params = _draw("gru", init)
    for block in np.split(params["weight_hh"], 3):
        np.testing.assert_allclose(block @ block.T, 0.25 * np.eye(H), atol=1e-12)
        if init.startswith("identity"):
            np.testing.assert_array_equal(block, 0.5 * np.eye(H))
    assert np.max(np.abs(params["weight_ih"])) <= 1 / 4  # the rest keeps the default draw


def test_linear_regime_has_zero_input_weights_and_biases_and_a_scaled_orthogonal_w_hh():
    params = _draw("rnn_tanh", "linear=0.8")
    assert not params["weight_ih"].any() and not params["bias_ih"].any() and not params["bias_hh"].any()
    np.testing.assert_allclose(params["weight_hh"] @ params["weight_hh"].T, 0.64 * np.eye(H), atol=1e-12)


def test_forget_bias_lands_in_the_forget_rows_in_torchs_gate_order():
    """LSTM gates in torch's order i, f, g, o: rows H..2H of both biases add up to B, the rest untouched."""
    plain, biased = _draw("lstm", "default"), _draw("lstm", "forget_bias=2")
    forget = slice(H, 2 * H)
    np.testing.assert_array_equal(biased["bias_ih"][forget] + biased["bias_hh"][forget], 2.0)
    for name in ("bias_ih", "bias_hh"):
        np.testing.assert_array_equal(biased[name][forget], 1.0)  # half in each
        mask = np.ones(4 * H, dtype=bool)
        mask[forget] = False
        np.testing.assert_array_equal(biased[name][mask], plain[name][mask])
    np.testing.assert_array_equal(biased["weight_hh"], plain["weight_hh"])


def test_chrono_biases_are_log_uniform_and_the_input_gate_mirrors_the_forget_gate():
    """Tallec & Ollivier 2018: b_f = log(u), u ~ U(1, T_max - 1), b_i = -b_f; GRU: z keeps the state."""
    t_max = 50
    lstm = init_params("lstm", 3, 4000, np.random.default_rng(0), init=f"chrono={t_max}")
    total = lstm["bias_ih"] + lstm["bias_hh"]
    b_f, b_i = total[4000:8000], total[:4000]
    np.testing.assert_allclose(b_i, -b_f, atol=1e-15)
    u = np.exp(b_f)
    assert u.min() >= 1 and u.max() <= t_max - 1
    # u is uniform on [1, T_max - 1]: its mean and quartiles within a few standard errors
    assert u.mean() == pytest.approx((t_max) / 2, abs=4 * (t_max - 2) / np.sqrt(12 * 4000))
    np.testing.assert_allclose(np.quantile(u, [0.25, 0.75]), [1 + 0.25 * (t_max - 2), 1 + 0.75 * (t_max - 2)],
                               atol=1.0)
    gru = _draw("gru", "chrono", steps=30)  # T_max: the point's steps
    z = (gru["bias_ih"] + gru["bias_hh"])[H : 2 * H]
    assert np.all(z >= 0) and np.all(np.exp(z) <= 29)
    cho = _draw("gru_cho", "chrono", steps=30)  # its keep gate is 1 - z: the bias flips sign
    assert np.all((cho["bias_ih"] + cho["bias_hh"])[H : 2 * H] <= 0)


def test_one_seed_draws_the_same_default_part_whatever_the_init():
    a, b = _draw("lstm", "default", seed=3), _draw("lstm", "forget_bias=1", seed=3)
    np.testing.assert_array_equal(a["weight_ih"], b["weight_ih"])


@pytest.mark.parametrize("spec, label", [("default", "default"), ("orthogonal", "orthogonal"),
                                         ("orthogonal=1", "orthogonal"), (" identity = 0.5", "identity=0.5"),
                                         ("forget_bias=-1", "forget_bias=-1"), ("chrono=100", "chrono=100")])
def test_specs_have_one_canonical_label(spec, label):
    assert parse(spec).label == label


@pytest.mark.parametrize("spec, message", [
    ("xavier", "unknown init 'xavier'; valid inits: " + ", ".join(KINDS)),
    ("default=2", "init 'default' takes no value"),
    ("orthogonal=big", "its gain must be a number, got 'big'"),
    ("chrono=2", "its T_max must be above 2"),
    ("identity=-1", "its gain must be finite and not negative"),
])
def test_bad_specs_are_one_line_errors(spec, message):
    with pytest.raises(HarnessError, match=re.escape(message)):
        parse(spec)


def test_a_suite_lists_inits_as_an_axis(tmp_path):
    suite = suites.load(write_suite(tmp_path / "s", cells='["lstm"]', inits='["default", "forget_bias=1", "chrono"]'))
    assert suite.inits == ("default", "forget_bias", "chrono") and suite.init == "default"
    assert suite.axes() == ("init",) and suite.at(4, 2, "chrono").init == "chrono"
    old = suites.load(write_suite(tmp_path / "o", init='"orthogonal"', init_gain="1.5"))
    assert (old.init, old.inits) == ("orthogonal=1.5", ())


@pytest.mark.parametrize("settings, message", [
    ({"cells": '["rnn_tanh", "lstm"]', "inits": '["forget_bias=1"]'},
     "suite.toml:8: init 'forget_bias' does not apply to cell 'rnn_tanh' (it applies to: lstm)"),
    ({"inits": '["default", "default"]'}, "init 'default' is listed twice"),
    ({"inits": '["default"]', "init": '"orthogonal"'}, "give either inits = [...] or init, not both"),
])
def test_an_init_that_does_not_apply_is_an_error_at_load(tmp_path, settings, message):
    with pytest.raises(HarnessError, match=re.escape(message)):
        suites.load(write_suite(tmp_path / "s", **settings))
