"""The executor interface and the local executor's record of a point that did not finish."""
from __future__ import annotations

from harness import suites
from harness.run.executor import Executor, LocalExecutor, failed
from harness.run.grid import PointJob
from tests.support.suites import write_suite


def test_the_local_executor_is_an_executor_and_the_interface_includes_backend_info():
    assert isinstance(LocalExecutor(), Executor)

    class RunOnly:  # what an executor without backend_info would look like
        def run(self, backend, jobs, on_result, threads, timeout):
            pass

    assert not isinstance(RunOnly(), Executor)


def test_a_failed_point_carries_the_job_and_the_reason(tmp_path):
    suite = suites.load(write_suite(tmp_path / "s", dtype='"float32"'))
    point = failed(PointJob("numpy", "gru", 12, suite), "worker process died (signal SIGKILL)")
    assert (point.backend, point.cell, point.seq_len, point.dtype, point.status) == ("numpy", "gru", 12, "float32",
                                                                                     "failed")
    assert point.note == "worker process died (signal SIGKILL)" and point.time is None
