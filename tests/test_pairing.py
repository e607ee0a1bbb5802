"""Comparisons are paired by construction (harness/streams.py): for one seed every init and every cell
sees the same data, readout and declared draws, and `harness run` and `harness train` start from the
same network."""
from __future__ import annotations

import numpy as np
import pytest

from harness import suites
from harness.cells import cell as cell_instance
from harness.plugins import get_registry
from harness.run.grid import PointJob, JobMode, build, network
from harness.run.train import READOUT, Trainer
from harness_plugins.tasks import AddingTask
from tests.support.suites import write_suite

T, SEED = 20, 3


def _suite(tmp_path, init="default", cells='["rnn_tanh"]'):
    return suites.load(write_suite(tmp_path / "s", task='"adding"', cells=cells, seq_lens=f"[{T}]")).at(4, 2, init)


def _every_cell_and_init():
    registry = get_registry()
    return [(name, init) for name, cls in registry.cells.items() for init in cls.init_names()]


@pytest.mark.parametrize("cell, init", _every_cell_and_init())
def test_every_init_leaves_the_declared_draws_to_the_default(cell, init):
    """An init draws its own numbers from its own generator: the declared draws' generator ends in the
    same state whatever the init (an init reading it would shift every later draw)."""
    layer = cell_instance(cell)
    ends = []
    for name in ("default", init):
        declared, own = np.random.default_rng(SEED), np.random.default_rng(SEED + 1)
        layer.init_params(3, 4, declared, name, steps=T, init_rng=own)
        ends.append(declared.bit_generator.state)
    assert ends[0] == ends[1]


@pytest.mark.parametrize("init", ["orthogonal", "identity", "chrono", "forget_bias=1"])
def test_one_seed_gives_every_init_of_a_cell_the_same_readout_data_and_untouched_weights(tmp_path, init):
    task, default = AddingTask(), _suite(tmp_path, cells='["lstm"]')
    a, b = network(task, "lstm", T, default, SEED), network(task, "lstm", T, default.at(4, 2, init), SEED)
    np.testing.assert_array_equal(a.readout_weight, b.readout_weight)
    np.testing.assert_array_equal(a.readout_bias, b.readout_bias)
    np.testing.assert_array_equal(a.params["weight_ih"], b.params["weight_ih"])  # no init here touches W_ih
    touched = {"orthogonal": "weight_hh", "identity": "weight_hh", "chrono": "bias_ih", "forget_bias=1": "bias_ih"}
    untouched = "bias_hh" if touched[init] == "weight_hh" else "weight_hh"
    np.testing.assert_array_equal(a.params[untouched], b.params[untouched])
    assert not np.array_equal(a.params[touched[init]], b.params[touched[init]])
    np.testing.assert_array_equal(build(task, "lstm", T, default, SEED).timed.x,
                                  build(task, "lstm", T, default.at(4, 2, init), SEED).timed.x)


def test_one_seed_gives_every_cell_the_same_readout_and_data(tmp_path):
    task, suite = AddingTask(), _suite(tmp_path, cells='["rnn_tanh", "gru", "mingru"]')
    nets = [network(task, cell, T, suite, SEED) for cell in ("rnn_tanh", "gru", "mingru")]
    for net in nets[1:]:
        np.testing.assert_array_equal(net.readout_weight, nets[0].readout_weight)
    xs = [build(task, cell, T, suite, SEED).timed.x for cell in ("rnn_tanh", "gru", "mingru")]
    for x in xs[1:]:
        np.testing.assert_array_equal(x, xs[0])


def test_another_seed_draws_another_network(tmp_path):
    task, suite = AddingTask(), _suite(tmp_path)
    a, b = network(task, "rnn_tanh", T, suite, SEED), network(task, "rnn_tanh", T, suite, SEED + 1)
    assert not np.array_equal(a.params["weight_hh"], b.params["weight_hh"])
    assert not np.array_equal(a.readout_weight, b.readout_weight)


@pytest.mark.parametrize("init", ["default", "chrono"])
def test_run_and_train_start_from_the_same_network(tmp_path, init):
    """The parameters `harness run` measures for a seed (its problem's, in the suite's dtype) are the
    ones `harness train` starts from, and both use the seed's one readout."""
    task = AddingTask()
    suite = _suite(tmp_path, init=init, cells='["lstm"]')
    run = build(task, "lstm", T, suite, SEED)
    backend = get_registry().backend_class("numpy")()
    trainer = Trainer(backend, PointJob("numpy", "lstm", T, suite, JobMode.TRAIN, SEED), task)
    assert set(run.timed.params) == set(trainer.params) - set(READOUT)
    for name, value in run.timed.params.items():
        np.testing.assert_array_equal(trainer.params[name].astype(suite.dtype), value)
    net = network(task, "lstm", T, suite, SEED)
    np.testing.assert_array_equal(trainer.params[READOUT[0]], net.readout_weight)
    np.testing.assert_array_equal(trainer.params[READOUT[1]], net.readout_bias)
