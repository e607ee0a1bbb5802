from harness import suites
from harness.record import results
from harness.run.runner import run_suite
from harness.run import dask_executor
from tests.support.plugins import add_misbehaving
from tests.support.suites import write_suite

def test_count(plugin_dir, tmp_path):
    add_misbehaving(plugin_dir)
    suite = suites.load(write_suite(tmp_path / "tiny", seq_lens="[12, 20, 16]", metrics='["gradient"]'))
    n = []
    orig = dask_executor.DaskExecutor._submit
    def sub(self, fn, *a, backend):
        n.append(getattr(a[0], "seq_len", None)); print("submit", backend, n[-1], flush=True)
        return orig(self, fn, *a, backend=backend)
    dask_executor.DaskExecutor._submit = sub
    with dask_executor.DaskExecutor(workers=2) as ex:
        run = run_suite(suite, ["kills-dask-worker", "numpy"], results_dir=tmp_path / "r", progress=False, executor=ex)
    print(len(n), n)
    for p in results.read(run.path).points: print(p.backend, p.seq_len, p.status, p.reason)
