"""Suite files: loading, defaults, validation with file and line, lookup by name, overrides."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness import HarnessError, suites
from tests.support.suites import write_suite


def test_the_shipped_suites_load_with_their_tasks():
    tasks = {name: suites.load(path).task for name, path in suites.available_suites().items()}
    assert tasks["long_range"] == "temporal_order" and tasks["copy"] == "copy" and tasks["adding"] == "adding"


def test_defaults_and_given_values(tmp_path):
    s = suites.load(write_suite(tmp_path / "tiny", cells='["lstm", "gru"]', seq_lens="[12, 30]"))
    assert (s.name, s.task, s.cells, s.seq_lens, s.batch, s.hidden) == ("tiny", "temporal_order", ("lstm", "gru"),
                                                                        (12, 30), 2, 4)
    assert s.metrics == suites.METRIC_FAMILIES and s.init == "default" and s.threads == 1
    assert s.timing == suites.Timing(repeat=2, timeout=120.0) and len(s.sha256) == 64


def test_overrides_replace_only_what_is_given(tmp_path):
    s = suites.load(write_suite(tmp_path / "tiny"))
    o = s.with_overrides(cells=("gru",), seq_lens=None, budget=0.5, repeat=None, threads=2)
    assert o.cells == ("gru",) and o.seq_lens == s.seq_lens and o.threads == 2
    assert o.timing.budget == 0.5 and o.timing.repeat == 2 and o.timing.timeout == s.timing.timeout
    assert s.cells == ("rnn_tanh",)  # frozen: the original is untouched


def test_lookup_by_name_path_and_search_path(tmp_path, monkeypatch):
    folder = write_suite(tmp_path / "elsewhere" / "mine")
    monkeypatch.setenv(suites.SUITES_PATH_ENV, str(tmp_path / "elsewhere"))
    assert suites.resolve("mine") == folder
    assert suites.resolve(str(folder)) == folder and suites.resolve(str(folder / "suite.toml")) == folder
    with pytest.raises(HarnessError, match=r"unknown suite 'yours'; available suites: .*mine"):
        suites.resolve("yours")


@pytest.mark.parametrize("overrides, message", [
    ({"seq_lens": "[]"}, r"suite.toml:3: seq_lens must not be empty"),
    ({"seq_lens": "[0]"}, r"suite.toml:3: seq_lens must be positive, got 0"),
    ({"seq_lens": "[1.5]"}, r"suite.toml:3: seq_lens must hold int values, got 1.5"),
    ({"hidden": "0"}, r"suite.toml:5: hidden must be positive, got 0"),
    ({"dtype": '"float16"'}, r"suite.toml:6: unknown dtype 'float16'; valid dtypes: float32, float64"),
    ({"init": '"xavier"'}, r"unknown init 'xavier'; valid inits: default, orthogonal, identity"),
    ({"metrics": '["speed"]'}, r"metrics: unknown metric 'speed'; valid metrics: time, memory, gradient"),
    ({"timing": {"budgett": "1"}}, r"unknown key 'timing.budgett'; valid keys: budget"),
    ({"batch": "true"}, r"suite.toml:4: batch must be int or list, got True"),
])
def test_invalid_values_name_file_line_and_choices(tmp_path, overrides, message):
    folder = write_suite(tmp_path / "bad", **overrides)
    with pytest.raises(HarnessError, match=message):
        suites.load(folder)


def test_the_train_table_has_defaults_and_its_own_values(tmp_path):
    assert suites.load(write_suite(tmp_path / "plain")).train == suites.TrainSettings()
    folder = write_suite(tmp_path / "t")
    (folder / "suite.toml").write_text((folder / "suite.toml").read_text() +
                                       '\n[train]\nseq_lens = [20, 40]\noptimizer = "sgd"\nlr = 0.01\nseeds = [0, 1]\n')
    train = suites.load(folder).train
    assert (train.seq_lens, train.optimizer, train.lr, train.seeds) == ((20, 40), "sgd", 0.01, (0, 1))


@pytest.mark.parametrize("line, message", [
    ('optimizer = "adagrad"', r"suite.toml:14: unknown optimizer 'adagrad'; valid optimizers: adam, rmsprop, sgd"),
    ("seq_lens = [0]", r"suite.toml:14: train.seq_lens must be positive, got 0"),
    ("lr = -1.0", r"suite.toml:14: train.lr must be positive and finite, got -1.0"),
    ("clip = -0.5", r"suite.toml:14: train.clip must not be negative"),
    ("eps = 0.0", r"suite.toml:14: train.eps = 0 divides by zero where a gradient element is 0 \(adam\); "
                  r"give eps > 0$"),
    ('clip_kind = "elementwise"', r"unknown clip_kind 'elementwise'; valid clip_kinds: norm, value"),
    ("iterationz = 3", r"suite.toml:14: unknown key 'train.iterationz'; valid keys: seq_lens"),
])
def test_invalid_train_values_name_the_line_in_the_train_table(tmp_path, line, message):
    """The [train] table repeats top-level key names (seq_lens, seeds): the line must be its own."""
    folder = write_suite(tmp_path / "bad")
    (folder / "suite.toml").write_text((folder / "suite.toml").read_text() + f"\n[train]\n{line}\n")
    assert (folder / "suite.toml").read_text().splitlines()[13] == line
    with pytest.raises(HarnessError, match=message):
        suites.load(folder)


def test_hidden_and_batch_lists_are_axes_of_the_grid(tmp_path):
    suite = suites.load(write_suite(tmp_path / "s", hidden="[4, 8]", batch="[2, 3]"))
    assert (suite.hidden, suite.batch) == (4, 2) and suite.hidden_sizes == (4, 8) and suite.batch_sizes == (2, 3)
    assert suite.sizes() == [(4, 2), (4, 3), (8, 2), (8, 3)]
    assert suite.sizes("train") == [(4, 2), (8, 2)]  # training draws its own [train] batch
    one = suites.load(write_suite(tmp_path / "one", hidden="[16]"))
    assert one.hidden == 16 and one.hidden_sizes == () and one.sizes() == [(16, 2)]


def test_a_size_list_with_a_bad_value_names_it(tmp_path):
    with pytest.raises(HarnessError, match=r"suite.toml:\d+: hidden must be positive, got 0"):
        suites.load(write_suite(tmp_path / "s", hidden="[4, 0]"))


def test_the_cells_suite_compares_every_built_in_cell():
    from harness.plugins import get_registry

    s = suites.load(suites.resolve("cells"))
    built_in = {c for c, cls in get_registry().cells.items() if cls.__module__.startswith("harness_plugins.")}
    assert built_in <= set(s.cells) and "lru_block" in built_in
    assert s.task == "adding"
    assert s.train.seeds == (0, 1, 2) and s.train.seq_lens == (100, 200)


def test_harness_suites_says_which_backends_run_each_cell():
    from tests.support.cli import harness

    out = harness("suites", check=True).stdout
    assert "cells and the backends that run them" in out
    rows = {line.split()[0]: line for line in out.splitlines()[out.splitlines().index(next(
        line for line in out.splitlines() if line.startswith("cells and the backends"))):] if line.strip()}
    assert "torch-cpu-scan" in rows["mingru"] and "torch-cpu-scan" not in rows["lstm"]
    assert "numba" in rows["lstm"] and "numba" not in rows["mingru"]


@pytest.mark.slow  # a pip install of the whole project (no dependencies)
def test_a_non_editable_install_finds_the_built_in_suites_from_any_directory(tmp_path):
    """The suites are package data (harness_suites): `harness suites` and a suite named by its name
    work from a folder that is not the checkout, with the project installed as a wheel (issue 30)."""
    from tests.support.cli import TIMEOUT
    from tests.support.install import env_with, pip_install

    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip_install(Path(__file__).resolve().parent.parent, site)
    assert (site / "harness_suites" / "long_range" / "suite.toml").is_file()
    env = env_with(site)
    code = ("import harness, harness_suites; from harness import suites; "
            "print(harness.__file__); print(suites.resolve('suites/long_range'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=elsewhere, capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    module, found = out.stdout.split()
    assert module.startswith(str(site)) and found == str(site / "harness_suites" / "long_range")
    listed = subprocess.run([sys.executable, "-m", "harness", "suites"], env=env, cwd=elsewhere, capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert listed.returncode == 0 and "long_range" in listed.stdout, listed.stderr
