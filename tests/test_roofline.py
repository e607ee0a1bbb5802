"""Roofline: the analytic GEMM FLOPs, the roof (an FMA microkernel) and the GEMM engines under it, achieved
GFLOP/s and the fraction of the roof."""
from __future__ import annotations

import pytest

from harness.cells import cell_class
from harness.measure.roofline import layer_flops
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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_roof_kernel_does_every_fma_it_counts(dtype):
    """Each chain runs a <- a * m + c from a = c, so after n iterations the kernel's sum of the chains'
    first lanes is chains * (m^n c + c (1 - m^n) / (1 - m)) in closed form: a kernel that skipped
    iterations or chains would time less work than it counts."""
    from harness.measure import roof

    m, c, n = roof.M, roof.C, 1000
    exact = m**n * c + c * (1 - m**n) / (1 - m)
    for bits in roof.vector_widths():
        k = roof.kernel(dtype, bits)
        assert k.run(n) == pytest.approx(k.chains * exact, rel={"float32": 1e-4, "float64": 1e-12}[dtype]), bits


def test_no_gemm_engine_reaches_above_the_roof(machine_cache):
    """NumPy's BLAS, MKL, torch.mm and oneDNN, as the run's provenance holds them (the session cache):
    each is a line under the roof, and the roof is the peak that "% of peak" divides by."""
    from harness.record.provenance import cpu_peak

    peak = cpu_peak(1)
    assert peak["gemm_gflops"] and any(name.startswith("numpy (") for name in peak["gemm_gflops"])
    for engine, rates in peak["gemm_gflops"].items():
        for dtype, rate in rates.items():
            assert 0 < rate < peak["peak_gflops"][dtype], (engine, dtype, rate, peak["peak_gflops"])


def test_torch_cpus_lstm_runs_below_the_roof(tmp_path, machine_cache):
    """oneDNN's fused LSTM at T = 50 (H = 128, B = 32, float32): measured above 100% of the old GEMM
    peak (issue 31); against the roof it cannot be."""
    pytest.importorskip("torch")
    from harness import suites
    from harness.run.runner import run_suite

    suite = suites.load(write_suite(tmp_path / "s", cells='["lstm"]', seq_lens="[50]", hidden="128", batch="32",
                                    dtype='"float32"', metrics='["time"]', timing={"repeat": "10"}))
    run = run_suite(suite, ["torch-cpu"], results_dir=tmp_path / "results").results
    (point,) = run.points
    assert point.status == "ok", point.reason
    assert 0 < run.peak_fraction(point) < 1, (point.gflops(), run.provenance["peak_gflops"])


def test_gemm_engines_outside_this_process_are_left_out_when_their_child_fails(monkeypatch):
    from harness.measure import roofline

    pytest.importorskip("torch")
    engines = roofline.gemm_engines(threads=1, dtypes=("float32",))
    assert {"torch.mm"} <= set(engines) and all(0.1 < e["float32"] < 1e5 for e in engines.values())
    monkeypatch.setattr(roofline.sys, "executable", "/bin/false")  # the child exits with 1
    assert [name.split(" ")[0] for name in roofline.gemm_engines(threads=1, dtypes=("float32",))] == ["numpy"]


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


def test_achieved_gflops_and_the_fraction_of_the_backends_or_the_machines_peak(tmp_path):
    from harness import suites
    from harness.record.results import BackendStatus

    flops = layer_flops(cell_class("lstm"), 10, 2, 1, 4)
    both = Measurement([0.001] * 3, 1)
    point = PointResult("numpy", "lstm", 10, "float32", OK, time=Times(both, both), flops=flops, hidden=4, batch=2)
    assert point.gflops() == pytest.approx(flops.forward_backward / 0.001 / 1e9)
    run = RunResults(suites.load(write_suite(tmp_path / "s")), "2026-11-26T00:00:00+00:00",
                     {**PROVENANCE, "peak_gflops": {"float32": 2 * point.gflops()}, "peak_version": "roof 1"},
                     points=[point])
    run.backends["numpy"] = BackendStatus(True)
    assert run.peak_fraction(point) == pytest.approx(0.5)  # the machine's CPU peak
    run.backends["numpy"] = BackendStatus(True, info={"peak_gflops": {"float32": 4 * point.gflops()}})
    assert run.peak_fraction(point) == pytest.approx(0.25)  # a device peak the backend measured wins
    run.backends["numpy"] = BackendStatus(True)
    del run.provenance["peak_version"]
    assert run.peak_fraction(point) is None  # a file from before the roof: its peak was a GEMM library's
