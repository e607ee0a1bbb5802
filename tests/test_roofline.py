"""Roofline: the analytic GEMM FLOPs, achieved GFLOP/s and the fraction of the measured peak."""
from __future__ import annotations

import pytest

from harness.cells import cell_class
from harness.measure.roofline import cpu_gemm_peak, layer_flops
from harness.measure.timing import Measurement
from harness.record.results import OK, PointResult, RunResults, Times
from tests.support.runs import PROVENANCE
from tests.support.suites import write_suite


@pytest.mark.parametrize("cell, gates", [("rnn_tanh", 1), ("lstm", 4), ("gru", 3)])
def test_layer_flops_count_the_input_and_recurrent_gemms(cell, gates):
    flops = layer_flops(cell_class(cell), steps=10, batch=32, inputs=2, hidden=128)
    assert flops.forward == 10 * 2 * 32 * gates * 128 * (2 + 128)  # x W_ih^T and h W_hh^T per step
    assert flops.backward == 2 * flops.forward  # dL/dx, dW_ih, dL/dh_{t-1}, dW_hh
    assert flops.forward_backward == 3 * flops.forward


def test_layer_flops_of_a_diagonal_cell_are_the_cells_own():
    """mingru multiplies x by two (H, I) matrices per step and has no recurrent GEMM."""
    flops = layer_flops(cell_class("mingru"), steps=10, batch=32, inputs=2, hidden=128)
    assert flops.forward == 10 * 2 * 32 * 2 * 128 * 2 and flops.backward == 2 * flops.forward


def test_the_cpu_peak_probe_reports_each_dtype():
    peak = cpu_gemm_peak(threads=1, dtypes=("float32",))
    assert set(peak) == {"float32"} and 0.1 < peak["float32"] < 1e5  # GFLOP/s of one core


def test_the_cpu_peak_is_the_best_of_numpys_blas_and_mkl(monkeypatch):
    from harness.measure import roofline

    monkeypatch.setattr(roofline, "mkl_gemm_peak", lambda threads, dtypes: {"float32": 1e6})
    peak = cpu_gemm_peak(threads=1, dtypes=("float32", "float64"))
    assert peak["float32"] == 1e6 and 0.1 < peak["float64"] < 1e5  # float64 from NumPy's BLAS alone
    monkeypatch.setattr(roofline, "mkl_gemm_peak", lambda threads, dtypes: {"float32": 1e-6})
    assert cpu_gemm_peak(threads=1, dtypes=("float32",))["float32"] > 0.1  # a slower MKL leaves NumPy's


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mkls_gemm_computes_the_product(dtype):
    """The probe's Fortran call (by-reference arguments, column-major) really computes a @ b: a wrong
    argument would time some other, perhaps empty, piece of work."""
    import numpy as np

    from harness.measure.roofline import mkl_gemm

    gemm = mkl_gemm(dtype)
    if gemm is None:
        pytest.skip("no MKL here (torch's libtorch_cpu holds it on x86)")
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((37, 37)).astype(dtype) for _ in range(2))
    c = np.full_like(a, np.nan)
    gemm(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol={"float32": 1e-5, "float64": 1e-12}[dtype], atol=1e-5)


def test_mkls_peak_is_measured_in_a_child_and_left_out_when_it_fails(monkeypatch):
    from harness.measure import roofline

    if roofline.mkl_gemm("float32") is None:
        pytest.skip("no MKL here (torch's libtorch_cpu holds it on x86)")
    peak = roofline.mkl_gemm_peak(threads=1, dtypes=("float32",))
    assert set(peak) == {"float32"} and 0.1 < peak["float32"] < 1e5
    monkeypatch.setattr(roofline.sys, "executable", "/bin/false")  # the child exits with 1
    assert roofline.mkl_gemm_peak(threads=1, dtypes=("float32",)) == {}
    monkeypatch.setattr(roofline, "torch_mkl_paths", lambda: [])
    assert roofline.mkl_gemm_peak(threads=1, dtypes=("float32",)) == {}


def test_achieved_gflops_and_the_fraction_of_the_backends_or_the_machines_peak(tmp_path):
    from harness import suites
    from harness.record.results import BackendStatus

    flops = layer_flops(cell_class("lstm"), 10, 2, 1, 4)
    both = Measurement([0.001] * 3, 1)
    point = PointResult("numpy", "lstm", 10, "float32", OK, time=Times(both, both), flops=flops, hidden=4, batch=2)
    assert point.gflops() == pytest.approx(flops.forward_backward / 0.001 / 1e9)
    run = RunResults(suites.load(write_suite(tmp_path / "s")), "2026-11-26T00:00:00+00:00",
                     {**PROVENANCE, "peak_gflops": {"float32": 2 * point.gflops()}}, points=[point])
    run.backends["numpy"] = BackendStatus(True)
    assert run.peak_fraction(point) == pytest.approx(0.5)  # the machine's CPU peak
    run.backends["numpy"] = BackendStatus(True, info={"peak_gflops": {"float32": 4 * point.gflops()}})
    assert run.peak_fraction(point) == pytest.approx(0.25)  # a device peak the backend measured wins
