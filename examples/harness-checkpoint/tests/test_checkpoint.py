"""Conformance of the checkpoint backend, and its memory against the NumPy backend's."""
from __future__ import annotations

from harness.testing import parametrize_with_checks

from harness_checkpoint import CheckpointBackend, segment_length


@parametrize_with_checks(CheckpointBackend)
def test_conformance(check):
    check()


def test_segments_cover_the_sequence_in_sqrt_T_steps():
    assert segment_length(2000) == 45 and segment_length(1) == 1 and segment_length(16) == 4
