"""The ``numpy`` backend: the core's NumPy reference implementation, in float32 and float64."""
from __future__ import annotations

import numpy as np

from harness import hookimpl
from harness.reference import ReferenceBackend

HARNESS_PLUGIN_API = 3


class NumpyBackend(ReferenceBackend):
    name = "numpy"
    description = "NumPy reference: hoisted input GEMM, per-step GEMM, weight-gradient GEMMs after the loop"

    def info(self) -> dict:
        return {**super().info(), "numpy": np.__version__}


@hookimpl
def harness_backends():
    return [NumpyBackend]
