"""Compile time measured apart: per backend, cell and dtype, cold and warm cache, in fresh workers.

The end-to-end regression checks on real timings (back-to-back runs compare clean, a backend slowed
on purpose is flagged) depend on how quiet the machine is, so they are a script, not a test:
scripts/regression_check.sh."""
from __future__ import annotations

import pytest

from harness import suites
from harness.record import files
from harness.run.runner import run_suite
from tests.support.plugins import add_distribution
from tests.support.suites import write_suite

COMPILING = """
import os
from harness import hookimpl
from harness_plugins.numpy_backend import NumpyBackend
HARNESS_PLUGIN_API = 2

class VirtualClock:
    now = 0.0
    def start(self):
        self.t0 = VirtualClock.now
    def stop(self):
        return VirtualClock.now - self.t0

class Compiling(NumpyBackend):
    '''"Compiles" on its first call: 5 virtual seconds with an empty cache, 0.5 loading a filled one.'''
    name = "compiling"
    compiles = True
    calls = 0

    @classmethod
    def compile_cache_env(cls, directory):
        return {"FAKE_JIT_CACHE": directory}

    def clock(self):
        return VirtualClock()

    def forward(self):
        Compiling.calls += 1
        marker = os.path.join(os.environ["FAKE_JIT_CACHE"], "kernels")
        if Compiling.calls == 1:
            VirtualClock.now += 0.5 if os.path.exists(marker) else 5.0
            open(marker, "w").close()
        VirtualClock.now += 0.01
        super().forward()

@hookimpl
def harness_backends():
    return [Compiling]
"""


@pytest.fixture
def plugins(plugin_dir):
    add_distribution(plugin_dir, "regressions", {"regression_plugins": COMPILING},
                     {"regressions": "regression_plugins"})
    return plugin_dir


def test_compile_time_is_measured_cold_then_warm_in_fresh_workers(plugins, tmp_path):
    suite = suites.load(write_suite(tmp_path / "s", cells='["rnn_tanh", "gru"]', seq_lens="[12, 16]",
                                    timing={"compile_repeat": "2"}))
    run = run_suite(suite, ["compiling"], results_dir=tmp_path)
    compiled = {c.cell: c for c in run.results.compile}
    assert set(compiled) == {"rnn_tanh", "gru"}  # per cell and dtype, not per T
    for c in compiled.values():
        assert (c.status, c.dtype) == ("ok", "float64")
        assert c.cold_s == pytest.approx(5.0) and c.warm_s == pytest.approx(0.5)  # first call minus the rest
        # every sample had a new cache: each cold one compiled, each warm one loaded
        assert c.cold_samples == pytest.approx((5.0, 5.0)) and c.warm_samples == pytest.approx((0.5, 0.5))
    assert files.read(run.path).compile == run.results.compile
    numpy_run = run_suite(suite, ["numpy"], results_dir=tmp_path)
    assert numpy_run.results.compile == []  # a backend that does not compile has no compile time
