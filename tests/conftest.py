"""Fixtures for every test. Shared helpers live in tests/support/ and are imported from there."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.plugins import get_registry

PROJECT_RESULTS = Path(__file__).resolve().parent.parent / "results"


def pytest_ignore_collect(collection_path, config):
    """tests/benchmarks are micro-benchmarks: collected only by `pytest tests/benchmarks --benchmark-only`."""
    if collection_path.name == "benchmarks" and not config.getoption("benchmark_only", False):
        return True
    return None


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            stat = os.stat(path)
            found[path] = (stat.st_mtime_ns, stat.st_size)
    return found


@pytest.fixture(autouse=True, scope="session")
def machine_cache(tmp_path_factory):
    """One cache of machine measurements (the GEMM peak) for the whole session, in and out of
    process (the CLI's subprocesses inherit it): measured once, and never in the user's ~/.cache."""
    from harness.record.provenance import CACHE_ENV

    saved = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("harness-cache"))
    yield
    if saved is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = saved


@pytest.fixture(autouse=True)
def project_results_untouched():
    """No test may write into the project's own results/ database: every run goes to a tmp folder."""
    before = _snapshot(PROJECT_RESULTS)
    yield
    after = _snapshot(PROJECT_RESULTS)
    changed = sorted(set(before.items()) ^ set(after.items()))
    assert not changed, f"the test wrote into the project's results/: {[path for path, _ in changed][:5]}"


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder on sys.path (and PYTHONPATH, for subprocesses and spawned workers) into which tests
    write small distributions with ``harness`` entry points; the plugin registry is reloaded."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    get_registry.cache_clear()
    yield root
    get_registry.cache_clear()


@pytest.fixture(scope="session")
def published_project(tmp_path_factory, machine_cache):
    """A harness project with two history points (a run of the tiny suite at each of two commits) and
    a published site: built once per session for every test that reads one (a publish costs seconds).
    Returns (repo, first commit, second commit). Tests that add files to it remove them again."""
    from tests.support.asv_project import commit_change, git, make_repo
    from tests.support.cli import harness

    repo = make_repo(tmp_path_factory.mktemp("asvproj") / "proj")
    first = git(repo, "rev-parse", "HEAD")
    harness("run", "tiny", "--backends", "numpy", "-q", cwd=repo, check=True)
    second = commit_change(repo, "second")
    harness("run", "tiny", "--backends", "numpy", "-q", cwd=repo, check=True)
    harness("publish", cwd=repo, check=True)
    return repo, first, second
