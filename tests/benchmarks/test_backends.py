"""Micro-benchmarks: one forward+backward of every available backend, grouped by cell.

Left out of the default test run; run them with

    pytest tests/benchmarks --benchmark-only

They compare kernels quickly without the full harness (B=32, I=6, H=128, T=200, float32).
"""
from __future__ import annotations

import pytest

from harness.plugins import get_registry
from harness.testing import random_problem

pytest.importorskip("pytest_benchmark")

SHAPE, DTYPE = (200, 32, 6, 128), "float32"  # (T, B, I, H)
REGISTRY = get_registry()
BACKENDS = sorted(REGISTRY.backends)


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_forward_backward(benchmark, backend_name, cell):
    cls = REGISTRY.backends[backend_name]
    support = cls.availability() and cls.supports(cell, DTYPE)
    if not support:
        pytest.skip(support.reason)
    backend = cls(threads=1)
    backend.prepare(random_problem(cell, SHAPE, DTYPE))
    benchmark.group = cell

    def step():
        backend.forward()
        backend.backward()
        backend.synchronize()

    step()  # warm-up, JIT compilation included
    benchmark.pedantic(step, rounds=5, iterations=1)
