"""Roofline: the analytic GEMM FLOPs, achieved GFLOP/s and the fraction of the measured peak."""
from __future__ import annotations

import pytest

from harness.measure.roofline import cpu_gemm_peak, layer_flops
from harness.measure.timing import Measurement
from harness.record.results import OK, PointResult, RunResults, Times
from tests.support.runs import PROVENANCE
from tests.support.suites import write_suite


@pytest.mark.parametrize("cell, gates", [("rnn_tanh", 1), ("lstm", 4), ("gru", 3)])
def test_layer_flops_count_the_input_and_recurrent_gemms(cell, gates):
    flops = layer_flops(cell, steps=10, batch=32, inputs=2, hidden=128)
    assert flops.forward == 10 * 2 * 32 * gates * 128 * (2 + 128)  # x W_ih^T and h W_hh^T per step
    assert flops.backward == 2 * flops.forward  # dL/dx, dW_ih, dL/dh_{t-1}, dW_hh
    assert flops.forward_backward == 3 * flops.forward


def test_the_cpu_peak_probe_reports_each_dtype():
    peak = cpu_gemm_peak(threads=1, dtypes=("float32",))
    assert set(peak) == {"float32"} and 0.1 < peak["float32"] < 1e5  # GFLOP/s of one core


def test_achieved_gflops_and_the_fraction_of_the_backends_or_the_machines_peak(tmp_path):
    from harness import suites
    from harness.record.results import BackendStatus

    flops = layer_flops("lstm", 10, 2, 1, 4)
    both = Measurement([0.001] * 3, 1)
    point = PointResult("numpy", "lstm", 10, "float32", OK, time=Times(both, both), flops=flops, hidden=4, batch=2)
    assert point.gflops() == pytest.approx(flops.forward_backward / 0.001 / 1e9)
    run = RunResults(suites.load(write_suite(tmp_path / "s")), "2026-11-26T00:00:00+00:00",
                     {**PROVENANCE, "peak_gflops": {"float32": 2 * point.gflops()}}, points=[point])
    run.backends["numpy"] = BackendStatus(True)
    assert run.peak_fraction(point) == pytest.approx(0.5)  # the machine's CPU peak
    run.backends["numpy"] = BackendStatus(True, info={"peak_gflops": {"float32": 4 * point.gflops()}})
    assert run.peak_fraction(point) == pytest.approx(0.25)  # a device peak the backend measured wins
