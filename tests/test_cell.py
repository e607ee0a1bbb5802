"""The cell contract (harness.cell): declarations, inits, the registry of offered cells, and the
one-line errors that name a broken cell (a step that raises or returns the wrong thing, NaN
parameters, a name offered twice)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from harness import inits as classic_inits
from harness.cell import (
    Cell,
    CellInit,
    ParamSpec,
    StateSpec,
    check_cell_class,
    check_params,
    registered_cells,
    validate_cell,
    zeros,
)
from harness.errors import HarnessError
from harness.measure.roofline import layer_flops
from harness_plugins.cells import CELLS
from tests.support.legacy_inits import GATES, legacy_init_params

I, H = 3, 4
BY_NAME = {c.name: c for c in CELLS}


# -- the built-in cells' declarations -----------------------------------------------------------------
def test_the_built_in_cells_come_through_the_harness_cells_hook():
    from importlib.metadata import entry_points

    from harness.plugins import get_registry

    assert "cells" in {ep.name for ep in entry_points(group="harness")}
    registry = get_registry()
    record = next(p for p in registry.plugins if p.name == "cells")
    assert record.status == "loaded", record.error
    found = registered_cells(registry.manager.hook.harness_cells())
    assert list(found) == ["rnn_tanh", "lstm", "gru", "gru_cho", "rnn_relu", "indrnn", "mingru", "lru", "lru_block"]


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.name)
def test_every_built_in_cell_passes_its_own_contract_checks(cls):
    pytest.importorskip("torch")
    assert check_cell_class(cls) is cls
    validate_cell(cls)  # every init, one step and readout, in float64
    validate_cell(cls, input_size=2, hidden_size=5, dtype="float32")
    assert cls.description and cls.reference


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.name)
def test_hidden_size_is_read_back_from_the_parameters(cls):
    cell = cls()
    for inputs, hidden in ((3, 4), (4, 4), (5, 2), (1, 7)):
        params = cell.init_params(inputs, hidden, np.random.default_rng(0))
        assert cell.hidden_size(params, inputs) == hidden
        assert {k: v.shape for k, v in params.items()} == cls.param_shapes(inputs, hidden)
        assert all(v.dtype == np.float64 and np.isfinite(v).all() for v in params.values())


CLASSIC_INITS = [
    ("rnn_tanh", "default"), ("rnn_tanh", "orthogonal"), ("rnn_tanh", "orthogonal=0.5"), ("rnn_tanh", "identity=2"),
    ("rnn_tanh", "linear"), ("rnn_tanh", "linear=0.9"),
    ("lstm", "default"), ("lstm", "orthogonal"), ("lstm", "identity"), ("lstm", "forget_bias"),
    ("lstm", "forget_bias=-2"), ("lstm", "chrono"), ("lstm", "chrono=10"),
    ("gru", "default"), ("gru", "orthogonal=1.5"), ("gru", "chrono"), ("gru", "chrono=7"),
    ("gru_cho", "default"), ("gru_cho", "identity"), ("gru_cho", "chrono"), ("gru_cho", "chrono=7"),
]


@pytest.mark.parametrize("cell, spec", CLASSIC_INITS, ids=lambda v: str(v))
def test_classic_cells_draw_exactly_what_harness_inits_drew(cell, spec):
    """Same seed, same init: the same parameters, bit for bit, as harness.inits drew them before cells
    were plugins (frozen in tests/support/legacy_inits.py); harness.inits now delegates to the cell."""
    parsed = classic_inits.parse(spec)
    expected = legacy_init_params(cell, I, H, np.random.default_rng(3), spec, steps=50)
    got = BY_NAME[cell]().init_params(I, H, np.random.default_rng(3), parsed.kind, parsed.value, steps=50)
    through_inits = classic_inits.init_params(cell, I, H, np.random.default_rng(3), spec, steps=50)
    assert list(got) == list(expected) == list(through_inits)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=f"{cell} {spec} {name}")
        np.testing.assert_array_equal(through_inits[name], expected[name], err_msg=f"{cell} {spec} {name}")


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru", "gru_cho"])
def test_classic_cells_keep_the_layouts_of_the_old_cell_table(cell):
    from harness.cells import cell_spec

    cls, gates = BY_NAME[cell], GATES[cell]
    spec = cell_spec(cell)  # what a backend plugin written for plugin API 2 still asks
    assert cls.gate_names == gates == spec.gate_names and cls.stored_per_step == spec.stored_per_step
    assert [s.name for s in cls.state] == (["h", "c"] if cell == "lstm" else ["h"])
    assert spec.has_cell_state == (cell == "lstm") and spec.gates == len(gates)
    assert cls().flops_per_step(8, I, H) == layer_flops(cls, 1, 8, I, H).forward == 2 * 8 * len(gates) * H * (I + H)
    params = cls().init_params(I, H, np.random.default_rng(0))
    blocks = cls().recurrent_blocks(params)
    assert list(blocks) == list(gates)
    np.testing.assert_array_equal(np.concatenate(list(blocks.values())), params["weight_hh"])


def test_new_cells_flops_recurrence_and_inits():
    batch = 8
    assert BY_NAME["rnn_relu"]().flops_per_step(batch, I, H) == 2 * batch * H * (I + H)
    assert BY_NAME["indrnn"]().flops_per_step(batch, I, H) == 2 * batch * H * I
    assert BY_NAME["mingru"]().flops_per_step(batch, I, H) == 2 * batch * 2 * H * I
    assert BY_NAME["lru"]().flops_per_step(batch, I, H) == 2 * batch * (3 * H * I + 2 * H * H)
    for name in ("indrnn", "mingru", "lru"):
        params = BY_NAME[name]().init_params(I, H, np.random.default_rng(0))
        assert BY_NAME[name]().recurrent_matrix(params) is None and BY_NAME[name]().recurrent_blocks(params) == {}
    assert BY_NAME["mingru"]().diagonal_recurrence(BY_NAME["mingru"]().init_params(I, H, np.random.default_rng(0))) \
        is None

    rng = np.random.default_rng
    irnn = BY_NAME["rnn_relu"]().init_params(I, H, rng(0), "irnn")
    assert np.array_equal(irnn["weight_hh"], np.eye(H)) and not irnn["bias_ih"].any() and not irnn["bias_hh"].any()
    assert 0 < np.abs(irnn["weight_ih"]).max() < 0.01  # N(0, 0.001^2)
    assert np.abs(BY_NAME["rnn_relu"]().init_params(I, H, rng(0), "irnn", 0.5)["weight_ih"]).max() > 0.05

    indrnn = BY_NAME["indrnn"]()
    u = indrnn.init_params(I, 1000, rng(0))["weight_hh"]
    assert 0 <= u.min() and u.max() < 1 and not indrnn.init_params(I, H, rng(0))["bias"].any()
    u = indrnn.init_params(I, 1000, rng(0), "memory", steps=100)["weight_hh"]
    assert u.max() <= 2 ** (1 / 100) and u.max() > 1.0
    u = indrnn.init_params(I, 1000, rng(0), "long_memory", 10.0)["weight_hh"]
    assert 2 ** (-1 / 10) <= u.min() and u.max() <= 2 ** (1 / 10)

    lru = BY_NAME["lru"]()
    for init, value, low, high in (("default", None, 0.9, 0.999), ("disk", None, 0.0, 1.0),
                                   ("r_min", 0.5, 0.5, 0.999), ("radius", 0.8, 0.8, 0.8)):
        params = lru.init_params(I, 500, rng(1), init, value)
        modulus = np.abs(lru.diagonal_recurrence(params))
        assert low - 1e-12 <= modulus.min() and modulus.max() <= high + 1e-12, init
        np.testing.assert_allclose(np.exp(params["gamma_log"]), np.sqrt(1 - modulus**2), rtol=1e-12)
    phases = np.exp(lru.init_params(I, 500, rng(1), "max_phase", np.pi / 10)["theta_log"])
    assert phases.max() <= np.pi / 10


@pytest.mark.parametrize("cell, init, value, message", [
    ("lru", "radius", 1.5, "radius must be in"),
    ("lru", "r_min", 0.9999, "r_min must be in"),
    ("lru", "disk", 2.0, "takes no value"),
    ("mingru", "default", 1.0, "takes no value"),
    ("mingru", "chrono", None, "unknown init 'chrono'; its inits: default"),
    ("indrnn", "memory", None, "needs T_max"),
    ("rnn_relu", "irnn", -1.0, "std must be finite and not negative"),
    ("lstm", "chrono", 2.0, "needs T_max above 2"),
])
def test_bad_init_values_are_one_line_errors(cell, init, value, message):
    with pytest.raises(HarnessError, match=message) as info:
        BY_NAME[cell]().init_params(I, H, np.random.default_rng(0), init, value)
    assert "\n" not in str(info.value)


def test_importing_cells_does_not_import_torch():
    code = "import sys, harness.cell, harness.derived, harness_plugins.cells; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- contract violations: one line, naming the cell ----------------------------------------------------
class Good(Cell):
    name = "good"
    params = (ParamSpec("W", lambda i, h: (h, i)), ParamSpec("U", lambda i, h: (h, h)),
              ParamSpec("b", lambda i, h: (h,), zeros))

    def step(self, p, state, x):
        return {"h": (x @ p["W"].T + state["h"] @ p["U"].T + p["b"]).tanh()}


def _subclass(name="bad", **attrs):
    return type("Bad", (Good,), {"name": name, "__module__": "my_plugin.cells", **attrs})


def _run(cls):
    torch = pytest.importorskip("torch")  # noqa: F841
    from harness import derived

    params = cls().init_params(I, H, np.random.default_rng(0))
    return derived.forward(cls, params, np.ones((3, 2, I)))


@pytest.mark.parametrize("step, message", [
    (lambda self, p, s, x: 1 / 0, "step raised ZeroDivisionError: division by zero"),
    (lambda self, p, s, x: (_ for _ in ()).throw(RuntimeError("two\nlines")), "step raised RuntimeError: two lines"),
    (lambda self, p, s, x: s["h"], "step returned Tensor, expected a dict of its states"),
    (lambda self, p, s, x: {"hidden": s["h"]}, r"step returned the states \['hidden'\], expected \['h'\]"),
    (lambda self, p, s, x: {"h": s["h"][:, :2]}, r"state h of shape \(2, 2\), expected \(2, 4\)"),
    (lambda self, p, s, x: {"h": s["h"].float()}, "state h in torch.float32, expected torch.float64"),
    (lambda self, p, s, x: {"h": [0.0]}, "state h as list, expected a tensor"),
])
def test_a_broken_step_is_a_one_line_error_naming_the_cell(step, message):
    with pytest.raises(HarnessError, match=message) as info:
        _run(_subclass(step=step))
    text = str(info.value)
    assert text.startswith("cell 'bad' (my_plugin.cells): ") and "\n" not in text


def test_a_wrong_readout_input_is_named():
    bad = _subclass(output=None, readout_input=lambda self, p, s, x: s["h"][:, :1])
    with pytest.raises(HarnessError, match=r"cell 'bad' \(my_plugin.cells\): readout_input returned shape \(2, 1\)"):
        _run(bad)


def test_nan_parameters_are_named():
    pytest.importorskip("torch")
    from harness import derived

    params = Good().init_params(I, H, np.random.default_rng(0))
    params["U"][1, 2] = np.nan
    with pytest.raises(HarnessError, match=r"cell 'good' \(tests.test_cell\): parameter U holds NaN or inf"):
        derived.forward(Good, params, np.ones((3, 2, I)))
    params["U"][1, 2] = np.inf
    with pytest.raises(HarnessError, match="parameter U holds NaN or inf"):
        derived.backward(Good, params, np.ones((3, 2, I)), np.ones((3, 2, H)))
    nan_init = _subclass(inits={"broken": CellInit(lambda p, rng, i, h, v, s: p.__setitem__("b", p["b"] * np.nan))})
    with pytest.raises(HarnessError, match=r"cell 'bad' \(my_plugin.cells\): parameter b holds NaN or inf"):
        validate_cell(nan_init)


def test_missing_or_unknown_parameters_are_named():
    params = Good().init_params(I, H, np.random.default_rng(0))
    with pytest.raises(HarnessError, match=r"cell 'good' .*missing \['b'\]"):
        check_params(Good, {k: v for k, v in params.items() if k != "b"}, I, H)
    with pytest.raises(HarnessError, match=r"unknown \['V'\]"):
        check_params(Good, {**params, "V": params["U"]}, I, H)
    with pytest.raises(HarnessError, match=r"parameter U has shape \(4, 5\), expected \(4, 4\)"):
        check_params(Good, {**params, "U": np.zeros((4, 5))}, I, H)


@pytest.mark.parametrize("attrs, message", [
    ({"name": "a/b"}, "its name must be letters"),
    ({"name": None}, "its name must be letters"),
    ({"params": [ParamSpec("W", lambda i, h: (h, i))]}, "params must be a tuple of ParamSpec"),
    ({"params": (ParamSpec("W", lambda i, h: (h, i)),) * 2}, "parameter name.* 'W' declared twice"),
    ({"state": ()}, "state must be a non-empty tuple of StateSpec"),
    ({"state": (StateSpec("h"), StateSpec("h"))}, "state name.* 'h' declared twice"),
    ({"output": "y"}, "output 'y' is not one of its states"),
    ({"step": Cell.step}, r"defines no step\(self, p, state, x\)"),
    ({"step": lambda self, p, s: s}, r"step must take \(self, p, state, x\), got 3 arguments"),
    ({"inits": {"x": lambda *a: None}}, "inits must be a dict of name -> CellInit"),
    ({"inits": {"a=b": CellInit(lambda *a: None)}}, "are not safe names"),
    ({"stored_per_step": 0}, "stored_per_step must be a positive int"),
])
def test_a_malformed_cell_class_is_named(attrs, message):
    with pytest.raises(HarnessError, match=message) as info:
        check_cell_class(_subclass(**{"name": "bad", **attrs}))
    assert "\n" not in str(info.value) and "(my_plugin.cells)" in str(info.value)


def test_something_that_is_not_a_cell_is_rejected():
    with pytest.raises(HarnessError, match="is offered as a cell but is not a harness.cell.Cell subclass"):
        check_cell_class(int)
    with pytest.raises(HarnessError, match="not a harness.cell.Cell subclass"):
        registered_cells([[Good, "lstm"]])


def test_a_name_offered_twice_names_both_offers():
    clash = type("MyLstm", (Good,), {"name": "lstm", "__module__": "my_plugin.cells"})
    with pytest.raises(HarnessError) as info:
        registered_cells([list(CELLS), [Good], [clash]], plugin_names=["cells", "tests", "mine"])
    text = str(info.value)
    assert text.startswith("cell 'lstm' is offered twice: by harness_plugins.cells.lstm.Lstm (plugin 'cells') "
                           "and by my_plugin.cells.MyLstm (plugin 'mine')")
    assert "\n" not in text
    # without plugin names, the classes still say where they come from
    with pytest.raises(HarnessError, match="by harness_plugins.cells.lstm.Lstm and by my_plugin.cells.MyLstm"):
        registered_cells([list(CELLS), [clash]])
    # the same class offered twice is one cell; None from a plugin offers nothing
    assert list(registered_cells([[Good], [Good], None])) == ["good"]


def test_a_step_that_fails_later_is_named_with_its_step():
    def step(self, p, s, x):
        if float(x.detach().sum()) > 10:
            raise ValueError("too big")
        return {"h": s["h"] + x.sum()}
    pytest.importorskip("torch")
    from harness import derived

    cls = _subclass(step=step)
    params = cls().init_params(I, H, np.random.default_rng(0))
    x = np.ones((4, 2, I))
    x[2] = 5.0
    message = r"cell 'bad' \(my_plugin.cells\): step raised at step 3: ValueError: too big"
    with pytest.raises(HarnessError, match=message):
        derived.backward(cls, params, x, np.ones((4, 2, H)))
