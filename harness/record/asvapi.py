"""Every use of asv's Python API (asv 0.6.*), in one module: the only one of harness that imports ``asv``.

The harness writes and reads asv's database and builds asv's site through asv's own code, which
includes asv internals (see docs/references.md, "asv"). Keeping them here means one file to check when
asv changes: tests/test_asvdb.py checks every asv name this module uses against the installed asv, and
an import-linter contract (pyproject.toml, "asv-behind-one-module") forbids ``asv`` everywhere else.

asv is imported inside each function, never at the top: importing it takes a fifth of a second, which
commands that do not touch the database (and ``import harness.record.asvdb``) should not pay.
"""
from __future__ import annotations

import copy
import datetime as dt
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asv.config import Config
    from asv.results import Results

#: The asv release series the names below were checked against (tests/test_asvdb.py).
ASV_SERIES = "0.6."


# -- the project's configuration -----------------------------------------------------------------------------

def load_config(path: str | os.PathLike) -> Config:
    """asv's Config from an ``asv.conf.json``, read as ``asv`` reads it (comments allowed, defaults filled in)."""
    from asv.config import Config

    return Config.load(str(path))


def config_from_dict(settings: dict[str, Any]) -> Config:
    """asv's Config from settings in memory (no ``asv.conf.json``), with asv's defaults for the rest."""
    from asv.config import Config

    return Config.from_json(settings)


# -- writing the database --------------------------------------------------------------------------------------

def new_results(params: dict[str, str], requirements: dict[str, str], commit_hash: str, date: int, python: str,
                env_name: str, env_vars: dict[str, str]) -> Results:
    """An empty asv Results for one machine, commit and environment: asv's own file format, written by asv."""
    from asv.results import Results

    return Results(params, requirements, commit_hash, date, python, env_name, env_vars)


def load_existing(results: Results, directory: str | os.PathLike) -> None:
    """Read into ``results`` what its file under ``directory`` already holds, so that adding merges into it."""
    results.load_data(str(directory))


def add_benchmark_result(results: Results, benchmark: dict, values: list, samples: list, numbers: list,
                         started_at: dt.datetime, selected_idx: set[int]) -> None:
    """One benchmark's values, samples and calls per sample (one entry per parameter combination) added with
    asv's merge: the combinations outside ``selected_idx`` keep their stored value, samples and statistics."""
    from asv.runner import BenchmarkResult

    result = BenchmarkResult(result=values, samples=samples, number=numbers, errcode=0, stderr="", profile=None)
    results.add_result(benchmark, result, record_samples=True, started_at=started_at, selected_idx=selected_idx)


def save_results(results: Results, directory: str | os.PathLike) -> None:
    """Write ``results`` under ``directory``, at :func:`results_filename`, as asv writes it."""
    results.save(str(directory))


def results_filename(machine: str, commit_hash: str, env_name: str) -> str:
    """Where asv keeps a machine's results of a commit and environment, relative to the results directory."""
    from asv.results import get_filename

    return get_filename(machine, commit_hash, env_name)


def save_benchmarks(conf: Config, benchmarks: list[dict], directory: str | os.PathLike) -> None:
    """Write ``benchmarks.json`` (asv's version and layout) into ``directory`` instead of the results
    directory, so that the caller can move it into place atomically; ``conf`` is not changed."""
    from asv.benchmarks import Benchmarks

    scratch_conf = copy.copy(conf)
    scratch_conf.results_dir = str(directory)
    Benchmarks(scratch_conf, list(benchmarks)).save()


# -- reading the database --------------------------------------------------------------------------------------

def read_results(path: str | os.PathLike) -> Results:
    """One asv results file, read (and its older formats updated) by asv."""
    from asv.results import Results

    return Results.load(str(path))


def commit_of(results: Results) -> str:
    """The full commit hash a results file was recorded at."""
    return results.commit_hash


def env_vars_of(results: Results) -> dict[str, str]:
    """The env_vars a results file was recorded with (where the harness keeps how the run was timed)."""
    return results.env_vars


@dataclass(frozen=True)
class StoredBenchmark:
    """One benchmark of a results file: its values (None failed, NaN skipped), one per combination of
    ``params`` in Cartesian order, with asv's statistics and samples where stored (else None)."""

    name: str
    params: list[list[str]]  # repr()-encoded values per parameter
    values: list[float | None]
    stats: list[dict | None] | None
    samples: list[list[float] | None] | None
    version: str | None


def stored_benchmarks(results: Results) -> Iterator[StoredBenchmark]:
    """Every benchmark a results file holds, read through asv's accessors (which know its column layout)."""
    for name in results.get_all_result_keys():
        params = results.get_result_params(name)
        yield StoredBenchmark(name, params, results.get_result_value(name, params),
                              results.get_result_stats(name, params), results.get_result_samples(name, params),
                              results.benchmark_version.get(name))


# -- asv compare's decision ------------------------------------------------------------------------------------

def is_result_better(a: float, b: float, a_ss: tuple | None, b_ss: tuple | None, factor: float) -> bool:
    """asv compare's decision that ``a`` is better (smaller) than ``b`` beyond ``factor``; with the
    (statistics, samples) pairs, only where the samples differ significantly too (an asv internal)."""
    from asv.commands.compare import _is_result_better

    return _is_result_better(a, b, a_ss, b_ss, factor)


# -- asv's site --------------------------------------------------------------------------------------------------

class PublishError(Exception):
    """asv publish failed; the caller turns it into one line."""


class DatabaseRefused(PublishError):
    """asv refused the database (its UserError: a benchmarks.json that is not asv's): asv's first line."""


class GitFailed(PublishError):
    """git, which asv publish runs to date the commits, failed (asv's ProcessError)."""

    def __init__(self, retcode: int):
        super().__init__(f"git exited {retcode}")
        self.retcode = retcode


def publish(conf: Config, html_dir: str | os.PathLike) -> None:
    """asv publish of ``conf``'s database into ``html_dir`` (``conf`` is not changed), in process and silent:
    asv warns about every folder of the results directory without a machine.json (runs/, labels/, html/),
    which the harness has by design."""
    from asv.commands.publish import Publish
    from asv.console import log
    from asv.util import ProcessError, UserError

    conf = copy.copy(conf)
    conf.html_dir = str(html_dir)
    try:
        with log.set_level(logging.CRITICAL):
            Publish.run(conf, pull=False)
    except UserError as exc:
        raise DatabaseRefused(str(exc).splitlines()[0]) from None
    except ProcessError as exc:
        raise GitFailed(exc.retcode) from None


def human_value(value: float, unit: str, err: float | None = None) -> str:
    """A value as asv prints it: ``1.23±0.01ms`` for seconds, ``12.5M`` for bytes, else with its unit."""
    from asv.util import human_value as asv_human_value

    return asv_human_value(value, unit, err=err)


def spread(stats: dict | None) -> float | None:
    """Half the interquartile range of a stored point's samples: the ``±`` asv compare prints
    (asv_runner.statistics.get_err); None where no statistics are stored."""
    if not stats or stats.get("q_25") is None or stats.get("q_75") is None:
        return None
    return (stats["q_75"] - stats["q_25"]) / 2
