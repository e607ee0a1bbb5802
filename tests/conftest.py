from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.plugins import get_registry


def pytest_ignore_collect(collection_path, config):
    """tests/benchmarks are micro-benchmarks: collected only by `pytest tests/benchmarks --benchmark-only`."""
    if collection_path.name == "benchmarks" and not config.getoption("benchmark_only", False):
        return True
    return None


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder on sys.path (and PYTHONPATH, for subprocesses and spawned workers) into which tests
    write small distributions with ``harness`` entry points; the plugin registry is reloaded."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", str(root))
    get_registry.cache_clear()
    yield root
    get_registry.cache_clear()


def add_distribution(root: Path, dist: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    """Write modules and a ``.dist-info`` with entry points: an installed distribution, minus pip."""
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[harness]\n{lines}\n")


def write_suite(folder: Path, **overrides) -> Path:
    """A tiny suite for tests: temporal order, B=2, H=4, two timed blocks."""
    settings = {"task": '"temporal_order"', "cells": '["rnn_tanh"]', "seq_lens": "[12]", "batch": "2",
                "hidden": "4", "dtype": '"float64"', "seeds": "[0]"}
    settings.update({k: v for k, v in overrides.items() if k != "timing"})
    timing = {"repeat": "2", "timeout": "60", **overrides.get("timing", {})}
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n".join(f"{k} = {v}" for k, v in settings.items())
    text += "\n\n[timing]\n" + "\n".join(f"{k} = {v}" for k, v in timing.items()) + "\n"
    (folder / "suite.toml").write_text(text)
    return folder


UNAVAILABLE_PLUGIN = """
from harness.backend import Availability
from harness.hookspecs import hookimpl
from harness_plugins.numpy_backend import NumpyBackend

HARNESS_PLUGIN_API = 1

class Nowhere(NumpyBackend):
    name = "nowhere"

    @classmethod
    def availability(cls):
        return Availability(False, "needs a quantum computer")

class RnnOnly(NumpyBackend):
    name = "rnn-only"
    cells = ("rnn_tanh",)

@hookimpl
def harness_backends():
    return [Nowhere, RnnOnly]
"""
