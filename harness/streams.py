"""Independent random streams, one per purpose, so that every comparison is paired by construction.

A grid point's randomness comes from ``numpy.random.default_rng([seed, T, purpose])``: one stream for
the cell's declared parameter draws, one for an init's own draws (a Haar-random rotation, chrono's
log-uniform biases, IRNN's small input weights), one for the readout, one for the batch `harness run`
measures, and the training and held-out streams of `harness train`. Because no purpose reads another's
stream, for one seed and T

- every init and every cell sees the same data and the same readout W_y, b_y;
- every init of a cell starts from the same default draws, and changes only what the init is about;
- `harness run` and `harness train` build the same network (:func:`harness.run.grid.network`).

The streams of one seed differ between sequence lengths (the key holds T), as the data must.
"""
from __future__ import annotations

import enum

import numpy as np


class Purpose(enum.IntEnum):
    """What a stream is for; its value is the last word of the stream's key (fixed: results depend on it)."""

    TRAINING = 1  # harness train's training batches
    HELD_OUT = 2  # harness train's held-out set
    DATA = 3  # the batch harness run measures (profiles, timings, spectra)
    PARAMS = 4  # the cell's declared parameter draws (every ParamSpec, in order)
    INIT = 5  # a named init's own draws, after the declared ones
    READOUT = 6  # the readout W_y, b_y


def stream(seed: int, seq_len: int, purpose: Purpose) -> np.random.Generator:
    """The generator of ``purpose`` for grid point (``seed``, ``seq_len``)."""
    return np.random.default_rng([seed, seq_len, int(purpose)])
