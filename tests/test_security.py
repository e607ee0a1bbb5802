"""What a shared results file or the environment can smuggle in: script into the asv site, paths out
of the results directory; and what --output may point at (issue 29, items 1 to 3)."""
from __future__ import annotations

import copy
import os

import pytest

from harness.record import files
from tests.support.asv_project import git, make_repo
from tests.support.cli import harness, one_line_error
from tests.support.runs import PROVENANCE, write_results_file
from tests.support.suites import write_suite

SCRIPT = "<img src=x onerror=alert(1)>"


def _files(folder) -> dict[str, str]:
    return {str(p): p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()}


def test_script_in_the_provenance_never_reaches_the_asv_site_raw(tmp_path):
    repo = make_repo(tmp_path / "proj")
    prov = copy.deepcopy(PROVENANCE)
    prov.update(os=SCRIPT, cpu=f"cpu {SCRIPT}", gpu=SCRIPT, arch=SCRIPT)
    prov["git"] = {"commit": git(repo, "rev-parse", "HEAD"), "commit_date_ms": 1_700_000_000_000, "dirty": False}
    harness("record", str(write_results_file(tmp_path, prov)), cwd=repo, check=True)
    machine = (repo / "results" / "testbox" / "machine.json").read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in machine  # shown as text in asv's HTML tooltip
    harness("publish", cwd=repo, check=True)
    written = _files(repo / "results")
    assert any("/html/" in path for path in written)
    assert not [path for path, text in written.items() if "<img src=x" in text]


def test_harness_machine_that_is_a_path_is_refused_before_anything_is_written(tmp_path):
    target = tmp_path / "elsewhere"
    env = {**os.environ, "HARNESS_MACHINE": str(target)}
    line = one_line_error(harness("run", str(write_suite(tmp_path / "s")), "--backends", "numpy", "-q",
                                  "--results-dir", str(tmp_path / "results"), env=env))
    assert f"invalid machine name {str(target)!r}" in line and "HARNESS_MACHINE" in line
    assert not target.exists() and not (tmp_path / "results").exists()


@pytest.mark.parametrize("field, value, message", [
    ("machine", "../../x", "invalid machine name '../../x'"),
    ("python", "3.11/../../x", "invalid python version"),
    ("numpy", "../x", "invalid numpy version '../x'"),
    ("commit", "../../../../x", "provenance.git.commit must be a hexadecimal commit hash"),
])
def test_a_results_file_naming_a_path_is_refused_by_record(tmp_path, field, value, message):
    prov = copy.deepcopy(PROVENANCE)
    if field == "numpy":
        prov["libraries"] = {"numpy": value}
    elif field == "commit":
        prov["git"] = {**prov["git"], "commit": value}
    else:
        prov[field] = value
    work = tmp_path / "deep" / "er"
    work.mkdir(parents=True)
    path = write_results_file(work, prov)
    line = one_line_error(harness("record", str(path), "--results-dir", str(work / "results")))
    assert f"malformed results file {path}" in line and message in line
    assert "damaged" not in line
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and "suite" not in p.parts) == ["run.json"]


def _run(tmp_path, out, *extra: str):
    return harness("run", str(write_suite(tmp_path / "s")), "--backends", "numpy", "--no-asv", "-q",
                   "--output", str(out), *extra)


def test_output_refuses_an_existing_file_unless_forced(tmp_path):
    out = tmp_path / "run.json"
    out.write_text("precious")
    line = one_line_error(_run(tmp_path, out))
    assert f"cannot write the results file {out}: it exists; add --force" in line
    assert out.read_text() == "precious"
    result = _run(tmp_path, out, "--force")
    assert result.returncode == 0, result.stderr
    assert files.read(out).counts["ok"] == 1


def test_output_refuses_a_symbolic_link_and_leaves_its_target(tmp_path):
    target = tmp_path / "target.json"
    target.write_text("precious")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    for extra in ((), ("--force",)):
        assert "it is a symbolic link" in one_line_error(_run(tmp_path, link, *extra))
    assert link.is_symlink() and target.read_text() == "precious"


def test_output_refuses_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert "it is a FIFO" in one_line_error(_run(tmp_path, fifo, "--force"))


def test_output_refuses_a_device(tmp_path):
    assert "/dev/null: it is a device" in one_line_error(_run(tmp_path, "/dev/null", "--force"))


def test_output_refuses_a_folder(tmp_path):
    assert "is a folder" in one_line_error(_run(tmp_path, tmp_path, "--force"))
