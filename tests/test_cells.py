"""Cells by name (harness.cells): looked up in the plugin registry, their layouts and the default
initialiser (the other inits: test_inits.py; the cell contract: test_cell.py)."""
from __future__ import annotations

import numpy as np
import pytest

from harness import HarnessError
from harness.cells import activation_bytes, cell_class, cell_names, cell_spec, param_shapes
from harness.inits import init_params

BUILT_IN = ("rnn_tanh", "lstm", "gru", "gru_cho", "rnn_relu", "indrnn", "mingru", "lru")


@pytest.mark.parametrize("cell, gates", [("rnn_tanh", 1), ("lstm", 4), ("gru", 3), ("gru_cho", 3), ("rnn_relu", 1)])
def test_torch_layout(cell, gates):
    assert param_shapes(cell, 5, 7) == {"weight_ih": (gates * 7, 5), "weight_hh": (gates * 7, 7),
                                        "bias_ih": (gates * 7,), "bias_hh": (gates * 7,)}


def test_every_built_in_cell_comes_from_the_registry():
    assert cell_names()[: len(BUILT_IN)] == BUILT_IN
    assert cell_class("mingru").__module__ == "harness_plugins.cells.mingru"
    assert param_shapes("indrnn", 3, 5) == {"weight_ih": (5, 3), "weight_hh": (5,), "bias": (5,)}


def test_default_is_torchs_symmetric_uniform():
    """Every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)): both ends reached, none passed, mean 0."""
    bound = 1 / 8  # H = 64
    params = init_params("lstm", 3, 64, np.random.default_rng(0))
    for name, value in params.items():
        assert value.min() >= -bound and value.max() <= bound, name
        assert value.min() < -0.9 * bound and value.max() > 0.9 * bound, name
    weights = params["weight_hh"]  # 256 x 64 draws: the mean of U(-b, b) has sd b / sqrt(3 * 16384)
    assert abs(weights.mean()) <= 4 * bound / np.sqrt(3 * weights.size)
    assert weights.std() == pytest.approx(bound / np.sqrt(3), rel=0.02)


def test_the_plugin_api_2_view_says_which_cells_carry_a_cell_state():
    assert [name for name in BUILT_IN if cell_spec(name).has_cell_state] == ["lstm"]
    assert cell_spec("gru").gates == 3 and cell_spec("rnn_tanh").stored_per_step == 1


def test_activation_bytes_come_from_the_cells_stored_per_step():
    assert activation_bytes("lstm", 10, 2, 4, "float32") == 10 * 2 * 6 * 4 * 4
    assert activation_bytes("lru", 10, 2, 4, "float64") == 10 * 2 * 2 * 4 * 8


def test_dtype_cast_and_bad_choices():
    assert all(v.dtype == np.float32 for v in init_params("rnn_tanh", 2, 3, np.random.default_rng(0),
                                                            dtype="float32").values())
    with pytest.raises(HarnessError, match="unknown cell 'rnn_gelu'; known cells: rnn_tanh, lstm, gru, gru_cho, "
                                           "rnn_relu, indrnn, mingru, lru") as info:
        param_shapes("rnn_gelu", 2, 3)
    assert "\n" not in str(info.value)
