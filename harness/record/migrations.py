"""One migration step per older results-file schema, so that every file written since schema 2 reads.

A step takes the JSON form of schema n to schema n + 1 and is named after n; :func:`migrate` applies
them in order. Schema 2 files were written over several months in which keys were added without a new
number, so its step still tells those ages apart by shape; every later step knows its schema exactly.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.record.results import SCHEMA, ResultsFormatError


def _from_2(data: dict) -> None:
    """Schema 2 to 3: ``Training.budget`` is ``planned_iterations`` (``budget`` is the timing's seconds);
    and, in files from before the size and init axes, the suite's one H, B and init spec are each
    point's, and a training snapshot's W_hh spectra move into its gradient."""
    suite = data.get("suite") if isinstance(data.get("suite"), dict) else {}
    if "init_gain" in suite:  # init and init_gain: the one init spec they meant
        gain = suite.pop("init_gain")
        if gain != 1.0 and suite.get("init") in ("orthogonal", "identity"):
            suite["init"] = f"{suite['init']}={gain:g}"
    for point in data.get("points") if isinstance(data.get("points"), list) else ():
        if not isinstance(point, dict):
            continue
        for key, default in (("hidden", suite.get("hidden")), ("batch", suite.get("batch")),
                             ("init", suite.get("init"))):
            if point.get(key) is None and default is not None:
                point[key] = default
        training = point.get("training")
        if isinstance(training, dict):
            if "budget" in training:
                training["planned_iterations"] = training.pop("budget")
            for snapshot in training.get("snapshots") or ():
                if isinstance(snapshot, dict) and "spectra" in snapshot and isinstance(snapshot.get("gradient"), dict):
                    snapshot["gradient"]["spectra"] = snapshot.pop("spectra")


#: schema n -> the step to n + 1
STEPS: dict[int, Callable[[dict], None]] = {2: _from_2}
OLDEST = min(STEPS)


def migrate(data: Any, where: str) -> Any:
    """``data`` (a results file's JSON form, changed in place) at the current schema."""
    found = data.get("schema") if isinstance(data, dict) else type(data).__name__
    if not isinstance(found, int) or isinstance(found, bool) or not OLDEST <= found <= SCHEMA:
        raise ResultsFormatError(f"{where}: results schema {found!r}, this harness reads {OLDEST} to {SCHEMA}")
    for schema in range(found, SCHEMA):
        STEPS[schema](data)
    data["schema"] = SCHEMA
    return data
