"""How fast the machine was while a point was timed: a fixed reference workload, timed around it.

On a shared machine the speed drifts: on the development VM, phases of seconds to minutes in which
NumPy and numba timings ran 30-60% slower came and went (docs/performance.md). Each timing round
therefore times this probe before, between and after its two timings, and each timing is also
recorded in units of the probes on either side of it; `harness compare` judges those
(docs/user-guide.md, "Catching regressions"), so that a slower phase of the machine is not read as a
slower backend.

The workload mixes the three kinds of work the backends do, in about equal shares of its ~1 ms: a
128 x 128 float32 GEMM, elementwise float32 work on 64K values (256 KiB, cache-resident) and many
small NumPy calls (interpreter and dispatch overhead). Tested against 200 s of drift on the
development VM: a 30% slower numpy or numba LSTM timing was told from the machine's drift in 98-99%
of simulated comparisons with per-round normalisation (42-47% on raw seconds), and two comparisons
of unchanged code showed a significant change in 0.3-4% (10-12% raw). Its definition is versioned:
changing it starts new asv series for everything measured in its units.
"""
from __future__ import annotations

import functools

import numpy as np

from harness.measure.timing import Measurement, Timer

#: bump when the workload below changes: probes of two versions measure different things
PROBE_VERSION = 1
_BLOCKS = 3


class _Workload:
    """The probe's fixed work on fixed data (the same values in every process)."""

    def __init__(self):
        self.a = np.linspace(-1.0, 1.0, 128 * 128, dtype=np.float32).reshape(128, 128)
        self.c = np.empty_like(self.a)
        self.x = np.linspace(-3.0, 3.0, 1 << 16, dtype=np.float32)
        self.y = np.empty_like(self.x)
        self.s = np.linspace(-1.0, 1.0, 512, dtype=np.float32)
        self.t = np.empty_like(self.s)

    def __call__(self) -> None:
        for _ in range(8):
            np.matmul(self.a, self.a, out=self.c)
        for _ in range(7):
            np.tanh(self.x, out=self.y)
            np.multiply(self.y, self.x, out=self.y)
            np.add(self.y, self.x, out=self.y)
        for _ in range(250):
            np.multiply(self.s, self.s, out=self.t)
            np.add(self.t, self.s, out=self.t)


@functools.cache
def _timer() -> tuple[Timer, int]:
    """The workload's timer and its calls per block, calibrated once per process (the work is fixed)."""
    timer = Timer(_Workload())
    return timer, timer.block_size()


def probe() -> Measurement:
    """One probe: three blocks of the workload (about 60 ms in all)."""
    timer, number = _timer()
    return timer.blocks(number, _BLOCKS)
