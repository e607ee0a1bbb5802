"""Suites: a folder with a declarative ``suite.toml``, validated with file-and-line error messages."""
from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from harness import inits as init_specs
from harness.cells import DTYPES, cell_names
from harness.errors import HarnessError, check_choice, check_name, unknown_choice
from harness.strenum import StrEnum

SUITE_FILE = "suite.toml"
SUITES_PATH_ENV = "HARNESS_SUITES_PATH"
#: The families of measurements a suite may ask for; every metric recorded belongs to one.
METRIC_FAMILIES = ("time", "memory", "gradient")


#: ``harness run --regression``: the timing a comparison on a shared machine needs (docs/user-guide.md,
#: "Catching regressions"): eight rounds of four blocks, three cold + warm compile-time samples, and
#: nothing running beside the timings.
REGRESSION_TIMING = {"rounds": 8, "repeat": 32, "compile_repeat": 3, "isolate": True}


class Mode(StrEnum):
    """What a run does: ``harness run`` measures, ``harness train`` trains (suites size their grid by it)."""

    RUN = "run"
    TRAIN = "train"

@dataclass(frozen=True)
class Timing:
    budget: float = 0.5  # seconds spent at most per timed measurement (3 blocks at least)
    threshold: float = 0.1  # stop repeating when IQR / median falls below this
    min_blocks: int = 5
    repeat: int | None = None  # exact number of blocks: disables the adaptive stop
    timeout: float = 600.0  # seconds allowed for one grid point before it is recorded as failed
    rounds: int = 1  # timings taken in this many passes over the grid, each in fresh workers, pooled (as asv)
    compile_repeat: int = 1  # compile times: this many cold + warm pairs, each with a new cache (samples for compare)
    # nothing runs beside the timings: no gradient profile, memory peak or spectrum on the spare CPUs
    # (executor.spare_cpus), which then wait until every timing is taken
    isolate: bool = False
    # also time the exact path, forward + backward(per_step=True): what a gradient profile costs
    exact: bool = False

    @property
    def passes(self) -> int:
        """The rounds that take part: no more than ``repeat`` blocks, one at least in each."""
        return min(self.rounds, self.repeat) if self.repeat else self.rounds

    def share(self, round_: int) -> tuple[int | None, float, int]:
        """Round ``round_``'s share (of ``passes``): exactly its blocks of ``repeat`` (None: adaptive),
        its seconds of ``budget`` and its ``min_blocks``; the shares add up to the suite's values
        (``min_blocks``: at least)."""
        n = self.passes
        blocks = self.repeat * round_ // n - self.repeat * (round_ - 1) // n if self.repeat else None
        return blocks, self.budget / n, -(-self.min_blocks // n)


@dataclass(frozen=True)
class TrainSettings:
    """The ``[train]`` table: how ``harness train`` learns the task (docs/training.md)."""

    seq_lens: tuple[int, ...] = (50, 100)
    optimizer: str = "adam"  # adam, rmsprop or sgd (with momentum)
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only
    alpha: float = 0.99  # rmsprop's smoothing constant
    eps: float = 1e-8  # adam's and rmsprop's epsilon
    rmsprop_start: float = 0.0  # rmsprop's square average before the first step (torch 0; Arjovsky et al. 1e-3)
    iterations: int = 500
    batch: int = 32
    clip: float = 1.0  # global L2 norm over every trained parameter, readout included; 0 = off (this point's)
    clip_kind: str = "norm"  # norm: the global L2 norm (clip_grad_norm_); value: each element (clip_grad_value_)
    clips: tuple[float, ...] = ()  # the clipping axis of training when the table lists several
    eval_every: int = 50
    eval_size: int = 256  # a fixed held-out set, drawn once from the seed
    profile_every: int = 100  # gradient-profile snapshots (and at iteration 0)
    seeds: tuple[int, ...] = (0,)
    timeout: float = 3600.0  # seconds for one training point before it is recorded as failed
    # the backends harness train uses when --backends is not given (() = all): every backend trains
    # identically (the core trains; tests/test_train.py), so one is enough for the statistics
    backends: tuple[str, ...] = ()

    @property
    def clip_axis(self) -> tuple[float, ...]:
        """Every clipping threshold of the training grid (one when the table gives one)."""
        return self.clips or (self.clip,)


#: What a paper can report for one setting (harness/record/reproduction.py measures each): "solved"
#: (at least half the seeds meet the task's criterion), "not solved", "below baseline" (the median over
#: the seeds of the best eval loss is at most half the memoryless baseline), "not below baseline" (it is not).
OUTCOMES = ("solved", "not solved", "below baseline", "not below baseline")


@dataclass(frozen=True)
class Expectation:
    """What the paper reports for the preset's ``cell`` (at ``seq_len`` and ``init``; None: every one)."""

    cell: str
    outcome: str  # one of OUTCOMES
    published: str  # the paper's own words or number, with where it says so
    seq_len: int | None = None
    init: str | None = None


@dataclass(frozen=True)
class Reproduction:
    """A ``[reproduce]`` table: the suite is a published experiment (`harness reproduce NAME`)."""

    paper: str  # authors, year, title, and the figure or table compared with
    protocol: str  # the paper's protocol, as its text or code states it
    differences: str  # what this preset does otherwise, and why
    expect: tuple[Expectation, ...]
    paper_iterations: int | None = None  # the training iterations the paper ran (its budget); None: not stated


@dataclass(frozen=True)
class Suite:
    """A validated suite: the grid (cells x seq_lens, on each backend) and how to measure it.

    ``seq_lens`` are the task's length parameter T; the layer may run more steps (copy: T + 20).
    """

    name: str
    task: str
    cells: tuple[str, ...]
    seq_lens: tuple[int, ...]
    task_options: tuple[tuple[str, str], ...] = ()  # the task's variant (Task.options), e.g. (("markers", "anywhere"),)
    batch: int = 32  # this point's B (the first of batch_sizes for a whole suite)
    hidden: int = 128  # this point's H (the first of hidden_sizes)
    hidden_sizes: tuple[int, ...] = ()  # the H axis of the grid when the suite lists several
    batch_sizes: tuple[int, ...] = ()  # the B axis
    dtype: str = "float32"
    init: str = "default"  # this point's initialisation (harness/inits.py; the first of inits for a whole suite)
    inits: tuple[str, ...] = ()  # the init axis of the grid when the suite lists several
    seeds: tuple[int, ...] = (0,)
    threads: int = 1
    lyapunov: int = 4  # top Lyapunov exponents recorded beside each gradient profile (0: spectra only)
    lyapunov_steps: int = 200  # ... over this many steps nearest the loss (0: every step)
    metrics: tuple[str, ...] = METRIC_FAMILIES
    description: str = ""
    timing: Timing = field(default_factory=Timing)
    train: TrainSettings = field(default_factory=TrainSettings)
    reproduce: Reproduction | None = None  # a published experiment's preset (suites/reproduce/)
    path: str = ""
    sha256: str = ""

    def __post_init__(self):
        check_name("suite name", self.name)  # it names results files and pages

    def sizes(self, mode: Mode = Mode.RUN) -> list[tuple[int, int]]:
        """The kernel-size axes of the grid: every (H, B); training has its own batch, so H only."""
        batches = (self.batch,) if mode == Mode.TRAIN else (self.batch_sizes or (self.batch,))
        return [(h, b) for h in (self.hidden_sizes or (self.hidden,)) for b in batches]

    def axes(self, mode: Mode = Mode.RUN) -> tuple[str, ...]:
        """The axes besides backend, cell and T that the grid varies: "H", "B" (not in training,
        which has its own batch), "init", and in training "clip"."""
        varied = (("H", self.hidden_sizes), ("B", self.batch_sizes if mode == Mode.RUN else ()), ("init", self.inits),
                  ("clip", self.train.clips if mode == Mode.TRAIN else ()))
        return tuple(name for name, values in varied if len(values) > 1)

    @property
    def clip(self) -> float:
        """This training point's clipping threshold (0: off)."""
        return self.train.clip

    @property
    def init_axis(self) -> tuple[str, ...]:
        """Every initialisation of the grid (one when the suite lists one)."""
        return self.inits or (self.init,)

    def at(self, hidden: int, batch: int, init: str | None = None, clip: float | None = None) -> Suite:
        """This suite at one (H, B, init, clip) of its grid: what a point's job carries."""
        train = self.train if clip is None else replace(self.train, clip=clip)
        return replace(self, hidden=hidden, batch=batch, init=init or self.init, train=train)

    def with_overrides(self, **changes) -> Suite:
        """A copy with the given fields (and ``Timing`` fields) replaced; ``None`` keeps a value."""
        changes = {k: v for k, v in changes.items() if v is not None}
        timing = {k: changes.pop(k) for k in list(changes) if k in Timing.__dataclass_fields__}
        return replace(self, timing=replace(self.timing, **timing), **changes)

    def with_training(self, **changes) -> Suite:
        """A copy with the given ``TrainSettings`` fields replaced; ``None`` keeps a value."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, train=replace(self.train, **changes))

    def with_grid(self, mode: Mode, *, cells: tuple[str, ...] | None = None, seq_lens: tuple[int, ...] | None = None,
                  hidden: tuple[int, ...] | None = None, batch: tuple[int, ...] | None = None,
                  inits: tuple[str, ...] | None = None, threads: int | None = None,
                  clip: tuple[float, ...] | None = None, iterations: int | None = None,
                  seeds: tuple[int, ...] | None = None, regression: bool = False, **timing: Any) -> Suite:
        """This suite with a command line's grid overrides (``None``: the suite's), each checked before
        anything runs (a one-line :class:`HarnessError` naming the bad value). ``mode`` run: ``timing``
        holds ``Timing`` fields, applied over the ``regression`` preset (:data:`REGRESSION_TIMING`);
        train: ``seq_lens``, ``iterations``, ``seeds`` and ``clip`` are the training grid's."""
        from harness.cells import cell_class

        for cell in cells or ():
            cell_class(cell)  # one line naming the known cells
        for option, values in (("--seq-lens", seq_lens), ("--hidden", hidden), ("--batch", batch)):
            for value in values or ():
                if value < 1:
                    raise HarnessError(f"{option} must be positive, got {value}")
        suite = self.with_overrides(cells=cells, threads=threads)
        # cells or inits may pair an init with a cell it does not apply to: checked again here
        first, axis_ = axis(init_specs.check(inits or suite.init_axis, suite.cells))
        suite = suite.with_overrides(init=first, inits=axis_)
        for key, values in (("hidden", hidden), ("batch", batch)):
            if values:
                first, sizes = axis(tuple(values))
                suite = suite.with_overrides(**{key: first, f"{key}_sizes": sizes})
        if mode == Mode.TRAIN:
            if any(not 0 <= c < math.inf for c in clip or ()):
                raise HarnessError(f"--clip must not be negative, got {','.join(f'{c:g}' for c in clip)}")
            first, clips = axis(tuple(clip)) if clip else (None, None)
            return suite.with_training(seq_lens=seq_lens, iterations=iterations, seeds=seeds, clip=first, clips=clips)
        suite = suite.with_overrides(**(REGRESSION_TIMING if regression else {}))
        return suite.with_overrides(seq_lens=seq_lens, **timing)  # explicit options win over the preset


_TOP_KEYS = {
    "name": str, "task": str, "task_options": dict, "cells": list, "seq_lens": list, "batch": (int, list),
    "hidden": (int, list),
    "dtype": str, "init": str, "init_gain": (int, float), "inits": list, "seeds": list, "threads": int,
    "lyapunov": int, "lyapunov_steps": int,
    "metrics": list, "description": str,
}
_TIMING_KEYS = {"budget": (int, float), "threshold": (int, float), "min_blocks": int, "repeat": int,
                "timeout": (int, float), "rounds": int, "compile_repeat": int, "isolate": bool,
                "exact": bool}
_TRAIN_KEYS = {"seq_lens": list, "optimizer": str, "lr": (int, float), "momentum": (int, float),
               "alpha": (int, float), "eps": (int, float), "rmsprop_start": (int, float), "clip_kind": str,
               "iterations": int, "batch": int, "clip": (int, float, list), "eval_every": int,
               "eval_size": int, "profile_every": int, "seeds": list, "timeout": (int, float), "backends": list}
OPTIMIZERS = ("adam", "rmsprop", "sgd")
CLIP_KINDS = ("norm", "value")  # run/optim.py's clip_gradient
_REQUIRED = ("task", "cells", "seq_lens")


def suite_dirs() -> list[Path]:
    """Where suites are looked up by name: $HARNESS_SUITES_PATH, ./suites, the built-in suites (the
    data package ``harness_suites``: the checkout's suites/ folder, or where pip installed it)."""
    dirs = [Path(p) for p in os.environ.get(SUITES_PATH_ENV, "").split(os.pathsep) if p]
    dirs.append(Path.cwd() / "suites")
    spec = importlib.util.find_spec("harness_suites")
    dirs += [Path(d) for d in (spec.submodule_search_locations or [])] if spec else []
    seen, unique = set(), []
    for d in dirs:
        if d.is_dir() and d.resolve() not in seen:
            seen.add(d.resolve())
            unique.append(d)
    return unique


def available_suites() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in suite_dirs():
        for f in sorted(d.glob(f"*/{SUITE_FILE}")):
            found.setdefault(f.parent.name, f.parent)
    return found


#: The folder, under a suites folder, of the published experiments' presets (`harness reproduce`).
REPRODUCE_DIR = "reproduce"


def reproductions() -> dict[str, Path]:
    """Every preset of `harness reproduce` by name: the suites under ``reproduce/`` of each suites folder."""
    found: dict[str, Path] = {}
    for d in suite_dirs():
        for f in sorted(d.glob(f"{REPRODUCE_DIR}/*/{SUITE_FILE}")):
            found.setdefault(f.parent.name, f.parent)
    return found


def resolve(spec: str) -> Path:
    """A suite folder from a path (``suites/long_range``) or a bare name (``long_range``)."""
    path = Path(spec)
    if (path / SUITE_FILE).is_file():
        return path
    if path.is_file() and path.name == SUITE_FILE:
        return path.parent
    suites = available_suites()
    if path.name in suites and len(path.parts) <= 2:
        return suites[path.name]
    raise unknown_choice("suite", spec, sorted(suites), "available suites")


def _line_of(text: str, key: str) -> int:
    """The line of ``key`` (``train.lr`` for a key of the [train] table); 1 when it is not found."""
    section, _, name = key.rpartition(".")
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[([^\]]+)\]", line)
        if header:
            current = header.group(1).strip()
        elif current == section and re.match(rf"\s*{re.escape(name)}\s*=", line):
            return number
    return 1


def _check_table(table: dict, schema: dict, text: str, where: str, section: str) -> None:
    for key, value in table.items():
        if key not in schema:
            line = _line_of(text, section + key)
            raise HarnessError(f"{where}:{line}: {unknown_choice('key', section + key, schema)}")
        expected = schema[key]
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
            line = _line_of(text, section + key)
            raise HarnessError(f"{where}:{line}: {section}{key} must be {names}, got {value!r}")


AXIS_FIELDS = {"H": "hidden", "B": "batch", "init": "init", "clip": "clip"}  # what each axis of Suite.axes reads


def axis_values(where: Any, axes: tuple[str, ...]) -> list[str]:
    """The value on each of ``axes`` of a point (a PointResult, or a suite :meth:`Suite.at` one point)."""
    return [str(getattr(where, AXIS_FIELDS[axis])) for axis in axes]


def axis(values: tuple) -> tuple[Any, tuple]:
    """A list given for a size or an init: (the first value, the axis); one value is no axis."""
    return values[0], (values if len(values) > 1 else ())


def load(spec: str | os.PathLike) -> Suite:
    """Load and validate a suite; every error names the file, the line and what is wrong."""
    folder = resolve(str(spec))
    file = folder / SUITE_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise HarnessError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"{file}: malformed TOML: {exc}") from None
    tables = {}
    for section, schema in (("timing", _TIMING_KEYS), ("train", _TRAIN_KEYS), ("reproduce", _REPRODUCE_KEYS)):
        tables[section] = data.pop(section, {})
        if not isinstance(tables[section], dict):
            raise HarnessError(f"{file}:{_line_of(text, section)}: {section} must be a table [{section}]")
        _check_table(tables[section], schema, text, str(file), f"{section}.")
    _check_table(data, _TOP_KEYS, text, str(file), "")
    for key in _REQUIRED:
        if key not in data:
            raise HarnessError(f"{file}: missing required key {key!r} (required: {', '.join(_REQUIRED)})")

    def check_list(key: str, kind: type, valid=None, table: dict = data, section: str = "") -> tuple:
        values = table[key]
        line = _line_of(text, section + key)
        if not values:
            raise HarnessError(f"{file}:{line}: {section}{key} must not be empty")
        for v in values:
            if not isinstance(v, kind) or isinstance(v, bool):
                raise HarnessError(f"{file}:{line}: {section}{key} must hold {kind.__name__} values, got {v!r}")
            if valid is not None and v not in valid:
                raise HarnessError(f"{file}:{line}: {section}{key}: {unknown_choice(key[:-1], v, valid)}")
            if kind is int and v < (0 if key == "seeds" else 1):
                raise HarnessError(f"{file}:{line}: {section}{key} must be "
                                   f"{'non-negative' if key == 'seeds' else 'positive'}, got {v!r}")
        return tuple(values)

    if "dtype" in data and data["dtype"] not in DTYPES:
        raise HarnessError(f"{file}:{_line_of(text, 'dtype')}: {unknown_choice('dtype', data['dtype'], DTYPES)}")
    cells = check_list("cells", str, cell_names())  # every registered cell (harness plugins lists them)
    data["init"], data["inits"] = _inits(data, cells, check_list, file, text)
    for key in ("batch", "hidden"):  # one size, or a list: an axis of the grid
        if isinstance(data.get(key), list):
            data[key], data[f"{key}_sizes"] = axis(check_list(key, int))
    for key in ("batch", "hidden", "threads"):
        if key in data and data[key] < 1:
            raise HarnessError(f"{file}:{_line_of(text, key)}: {key} must be positive, got {data[key]!r}")
    for key in ("lyapunov", "lyapunov_steps"):
        if data.get(key, 0) < 0:
            raise HarnessError(f"{file}:{_line_of(text, key)}: {key} must not be negative, got {data[key]!r}")
    options = data.get("task_options", {})
    for key, value in options.items():
        if not isinstance(value, str):
            raise HarnessError(f"{file}:{_line_of(text, 'task_options')}: task_options.{key} must be a string, "
                               f"got {value!r}")
    suite = Suite(
        name=data.get("name", folder.name),
        task=data["task"],
        task_options=tuple(options.items()),
        cells=cells,
        seq_lens=check_list("seq_lens", int),
        seeds=check_list("seeds", int) if "seeds" in data else (0,),
        metrics=check_list("metrics", str, METRIC_FAMILIES) if "metrics" in data else METRIC_FAMILIES,
        timing=_timing(tables["timing"], file, text),
        train=_training(tables["train"], check_list, file, text),
        reproduce=_reproduction(tables["reproduce"], cells, file, text) if tables["reproduce"] else None,
        path=str(folder),
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        **{k: data[k] for k in ("batch", "hidden", "hidden_sizes", "batch_sizes", "dtype", "init", "inits",
                                "threads", "lyapunov", "lyapunov_steps", "description") if k in data},
    )
    return suite


def _inits(data: dict, cells: tuple[str, ...], check_list, file, text: str) -> tuple[str, tuple[str, ...]]:
    """The init axis: ``inits = [...]``, or the older ``init`` (with ``init_gain``) for one init."""
    if "inits" in data and ("init" in data or "init_gain" in data):
        key = "init" if "init" in data else "init_gain"
        raise HarnessError(f"{file}:{_line_of(text, key)}: give either inits = [...] or init, not both")
    if "inits" in data:
        specs, key = check_list("inits", str), "inits"
    else:
        spec = data.get("init", "default")
        if "init_gain" in data:
            spec = f"{spec}={data['init_gain']}"
        specs, key = (spec,), "init" if "init" in data else "init_gain"
    try:
        return axis(init_specs.check(specs, cells))
    except HarnessError as exc:
        raise HarnessError(f"{file}:{_line_of(text, key)}: {exc}") from None


_REPRODUCE_KEYS = {"paper": str, "protocol": str, "differences": str, "paper_iterations": int, "expect": list}
_REPRODUCE_REQUIRED = ("paper", "protocol", "differences", "expect")
_EXPECT_KEYS = {"cell": str, "outcome": str, "published": str, "seq_len": int, "init": str}


def _reproduction(table: dict, cells: tuple[str, ...], file, text: str) -> Reproduction:
    """The validated ``[reproduce]`` table (with its ``[[reproduce.expect]]`` entries)."""
    line = _line_of(text, "reproduce")
    missing = [k for k in _REPRODUCE_REQUIRED if k not in table]
    if missing:
        raise HarnessError(f"{file}:{line}: [reproduce] needs {', '.join(missing)}")
    expect = []
    for entry in table["expect"]:
        if not isinstance(entry, dict):
            raise HarnessError(f"{file}:{line}: reproduce.expect must hold tables [[reproduce.expect]]")
        _check_table(entry, _EXPECT_KEYS, text, str(file), "reproduce.expect.")
        for key in ("cell", "outcome", "published"):
            if key not in entry:
                raise HarnessError(f"{file}:{line}: every [[reproduce.expect]] needs {key!r}")
        try:
            check_choice("expected cell", entry["cell"], cells, "the suite's cells")
            check_choice("expected outcome", entry["outcome"], OUTCOMES, "outcomes")
        except HarnessError as exc:
            raise HarnessError(f"{file}:{line}: {exc}") from None
        expect.append(Expectation(**entry))
    if not expect:
        raise HarnessError(f"{file}:{line}: [reproduce] needs at least one [[reproduce.expect]]")
    return Reproduction(**{**table, "expect": tuple(expect)})


def _training(table: dict, check_list, file, text: str) -> TrainSettings:
    """The validated ``[train]`` table."""
    values = dict(table)
    for key in ("seq_lens", "seeds"):
        if key in values:
            values[key] = check_list(key, int, table=table, section="train.")
    if "backends" in values:  # checked against the installed backends when the run starts
        values["backends"] = check_list("backends", str, table=table, section="train.")
    if isinstance(values.get("clip"), list):  # an axis of the training grid
        line = _line_of(text, "train.clip")
        if not values["clip"]:
            raise HarnessError(f"{file}:{line}: train.clip must not be empty")
        for clip in values["clip"]:
            if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not 0 <= clip < math.inf:
                raise HarnessError(f"{file}:{line}: train.clip must hold numbers that are not negative, got {clip!r}")
        values["clip"], values["clips"] = axis(tuple(float(c) for c in values["clip"]))
    if "optimizer" in values and values["optimizer"] not in OPTIMIZERS:
        raise HarnessError(f"{file}:{_line_of(text, 'train.optimizer')}: "
                           f"{unknown_choice('optimizer', values['optimizer'], OPTIMIZERS)}")
    for key in ("lr", "iterations", "batch", "eval_every", "eval_size", "profile_every", "timeout"):
        if key in values and not 0 < values[key] < math.inf:
            raise HarnessError(f"{file}:{_line_of(text, 'train.' + key)}: train.{key} must be positive and finite, "
                               f"got {values[key]!r}")
    if "clip_kind" in values and values["clip_kind"] not in CLIP_KINDS:
        raise HarnessError(f"{file}:{_line_of(text, 'train.clip_kind')}: "
                           f"{unknown_choice('clip_kind', values['clip_kind'], CLIP_KINDS)}")
    optimizer, eps = values.get("optimizer", "adam"), values.get("eps", TrainSettings.eps)
    if eps == 0 and (optimizer == "adam" or (optimizer == "rmsprop" and not values.get("rmsprop_start"))):
        raise HarnessError(f"{file}:{_line_of(text, 'train.eps')}: train.eps = 0 divides by zero where a gradient "
                           f"element is 0 ({optimizer}); give eps > 0" +
                           (", or rmsprop_start > 0 as Arjovsky et al." if optimizer == "rmsprop" else ""))
    for key in ("clip", "momentum", "alpha", "eps", "rmsprop_start"):
        if key in values and not 0 <= values[key] < math.inf:
            raise HarnessError(f"{file}:{_line_of(text, 'train.' + key)}: train.{key} must not be negative, "
                               f"got {values[key]!r}")
    return TrainSettings(**values)


def _timing(table: dict, file, text: str) -> Timing:
    """The validated ``[timing]`` table."""
    for key in ("budget", "timeout", "repeat", "min_blocks", "rounds", "compile_repeat"):
        if key in table and not 0 < table[key] < math.inf:  # NaN compares False
            raise HarnessError(f"{file}:{_line_of(text, 'timing.' + key)}: timing.{key} must be positive and finite, "
                               f"got {table[key]!r}")
    if "threshold" in table and not 0 <= table["threshold"] < math.inf:  # NaN compares False
        raise HarnessError(f"{file}:{_line_of(text, 'timing.threshold')}: timing.threshold must be non-negative "
                           f"and finite, got {table['threshold']!r}")
    return Timing(**table)
