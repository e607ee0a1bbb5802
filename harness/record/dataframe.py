"""The one DataFrame of a run: a flat row per grid point, for pandas users and the report's plots."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from harness.jsonsafe import finite_or_none
from harness.record.files import read
from harness.record.results import SKIPPED, PointResult, RunResults


#: The gradient record's numbers (NaN where there is none) and its counts, flags and curves (None).
_GRADIENT_NUMBERS = ("decay_rate", "predicted_decay_rate", "closed_form_decay_rate", "sigma_max", "log10_ratio",
                     "zero_fraction", "geometric_decay_rate", "degenerate_fraction")
_GRADIENT_OTHERS = ("horizon", "growth_horizon", "reach", "fit_points", "last_nonzero_lag", "exploded", "vanished",
                    "g", "gc")


def _field(record: Any, name: str, missing: Any = math.nan) -> Any:
    """``record.name``, or ``missing`` where there is no record or it holds no value (None)."""
    value = getattr(record, name) if record is not None else None
    return missing if value is None else value


def point_row(point: PointResult) -> dict[str, Any]:
    """One flat row of a point: status, times, memory, gradient metrics, training outcome; curves as tuples."""
    nan = math.nan
    t, mem, grad, loss, train = point.time, point.memory, point.gradient, point.loss, point.training
    return {
        "backend": point.backend, "cell": point.cell, "seq_len": point.seq_len, "hidden": point.hidden,
        "batch": point.batch, "init": point.init, "steps": point.steps,
        "dtype": point.dtype, "status": point.status, "reason": point.reason,
        "forward_median_s": t.forward.median if t else nan,
        "forward_iqr_s": t.forward.iqr if t else nan,
        "forward_backward_median_s": t.forward_backward.median if t else nan,
        "forward_backward_iqr_s": t.forward_backward.iqr if t else nan,
        "exact_median_s": t.exact.median if t and t.exact else nan,
        "gflops_forward_backward": point.gflops() or nan,
        "peak_bytes": mem.peak_bytes if mem else nan,
        "activation_bytes": mem.activation_bytes if mem else nan,
        **{name: _field(grad, name) for name in _GRADIENT_NUMBERS},
        "lyapunov_1": grad.lyapunov[0] if grad and grad.lyapunov else nan,
        "sequence_decay_rate_median": grad.sequence_decay_rates[1] if grad and grad.sequence_decay_rates else nan,
        **{name: _field(grad, name, None) for name in _GRADIENT_OTHERS},
        "loss_init": loss.init if loss else nan,
        "loss_baseline": loss.baseline if loss else nan,
        "seed": point.seed,
        "final_ratio": train.final_ratio if train and train.eval_loss else nan,
        "clip": point.clip,
        "clipped_fraction": train.clipped_fraction if train else nan,
        "solved_at": train.solved_at if train else None,
        "stayed_solved": train.stayed_solved if train else None,
        "unsolved_at": train.unsolved_at if train else None,
        "diverged_at": train.diverged_at if train else None,
        "iteration_s": train.times.iteration_s if train and train.times else nan,
        "core_s": train.times.core_s if train and train.times else nan,
        "train_fwd_bwd_s": train.times.fwd_bwd_s if train and train.times else nan,
    }


#: The per-step curves of a row: kept in the DataFrame, left out of the flat records scripts read.
CURVES = ("g", "gc")


def records(run: RunResults) -> list[dict[str, Any]]:
    """One flat record per point (:func:`point_row` without the curves), NaN and infinities as None:
    what ``--format json`` and ``csv`` print for scripts."""
    return [{k: finite_or_none(v) for k, v in point_row(p).items() if k not in CURVES} for p in run.points]


def frame(run: RunResults):
    """One row per grid point (see :func:`point_row`); the suite and provenance in ``attrs``."""
    import pandas as pd

    table = pd.DataFrame([point_row(p) for p in run.points], columns=list(point_row(_EMPTY_POINT)))
    table.attrs["suite"] = run.suite.name
    table.attrs["provenance"] = run.provenance
    return table


_EMPTY_POINT = PointResult("", "rnn_tanh", 0, "", SKIPPED)  # only its keys are used


def load(path: str | os.PathLike):
    """A results file as a pandas DataFrame, one row per grid point (see :func:`frame`)."""
    return frame(read(path))


def outcome_frame(run: RunResults):
    """A training run's outcomes over seeds (record/outcomes.py), one row per setting: its axes, the
    seeds, how many solved and stayed solved, the Kaplan-Meier median iterations to solve (inf: not
    reached within the budget) with its 95% bootstrap interval (NaN for one seed), and the final eval
    loss / baseline per seed."""
    import pandas as pd

    from harness.record import outcomes

    rows = [{**dict(zip(outcomes.SETTING_AXES, o.setting)), "seeds": o.seeds, "runs": o.runs, "solved": o.solved,
             "stayed_solved": o.stayed_solved, "budget": o.budget, "median_iterations_to_solve": o.median,
             "median_low": o.interval[0] if o.interval else math.nan,
             "median_high": o.interval[1] if o.interval else math.nan,
             "final_ratios": o.final_ratios} for o in outcomes.outcomes(run.points)]
    table = pd.DataFrame(rows, columns=[*outcomes.SETTING_AXES, "seeds", "runs", "solved", "stayed_solved", "budget",
                                        "median_iterations_to_solve", "median_low", "median_high", "final_ratios"])
    table.attrs["suite"] = run.suite.name
    return table


def load_outcomes(path: str | os.PathLike):
    """A training results file's outcomes over seeds as a pandas DataFrame (see :func:`outcome_frame`)."""
    return outcome_frame(read(path))


#: What :func:`export` writes.
EXPORT_FORMATS = ("csv", "parquet")


def export(run: RunResults, path: str | os.PathLike, fmt: str) -> None:
    """Write :func:`records` as a CSV or Parquet file, atomically (a temporary file in the same folder,
    renamed over ``path``): the flat table for a spreadsheet or a pandas / polars script."""
    import tempfile

    import pandas as pd

    from harness.errors import HarnessError

    table = pd.DataFrame(records(run))
    path = Path(path)
    fd, scratch = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        if fmt == "csv":
            table.to_csv(scratch, index=False)
        else:
            try:
                table.to_parquet(scratch, index=False)
            except ImportError:
                raise HarnessError("--parquet needs pyarrow or fastparquet, and neither is installed; install one "
                                   "with: pip install pyarrow") from None
        os.replace(scratch, path)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
