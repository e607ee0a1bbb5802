"""``harness new-backend NAME`` and ``harness new-cell NAME``: write a ready, installable plugin package.

Both render the templates of one folder of ``harness/templates`` (``backend``, ``cell``): every
``*.tmpl`` file, ``MODULE`` in a path replaced by the package's module, ``{{key}}`` in the text by
its value. The generated backend delegates to the NumPy reference, so it passes ``harness check
NAME`` as generated; its author then replaces the marked methods with their own kernel. The
generated cell is a leaky tanh RNN that passes ``harness check NAME`` once installed; its author
then rewrites its parameters and step.
"""
from __future__ import annotations

import re
from pathlib import Path

from harness import HarnessError
from harness.reference import HAND_WRITTEN

TEMPLATES = Path(__file__).parent / "templates"
NAME = re.compile(r"^[a-z][a-z0-9-]*$")  # a backend
CELL_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # a cell: also a Python identifier's tail


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[-_]", name) if part)


def _taken(kind: str, name: str, installed: dict, origin: str) -> None:
    if name in installed:
        raise HarnessError(f"a {kind} named {name!r} is already installed ({origin}); choose another name")


def render(kind: str, root: Path, values: dict[str, str]) -> Path:
    """Write the templates of ``templates/<kind>`` under ``root`` (which must not exist yet)."""
    if root.exists():
        raise HarnessError(f"{root} already exists; choose another --dir or name")
    source = TEMPLATES / kind
    for template in sorted(source.rglob("*.tmpl")):
        relative = template.relative_to(source).with_suffix("")
        target = root / str(relative).replace("MODULE", values["module"])
        target.parent.mkdir(parents=True, exist_ok=True)
        text = template.read_text()
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        target.write_text(text)
    return root


def new_backend(name: str, directory: str | Path = ".") -> Path:
    """Create ``<directory>/harness-<name>/`` holding a backend plugin and return its path."""
    from harness.plugins import get_registry

    if not NAME.match(name):
        raise HarnessError(f"invalid backend name {name!r}: use lower-case letters, digits and '-', "
                           f"starting with a letter (e.g. 'my-kernel')")
    registry = get_registry()
    record = next((r for r in registry.plugins if name in r.backends), None)
    _taken("backend", name, registry.backends, record.origin if record else "see harness plugins")
    plugins = {r.name: r.origin for r in registry.plugins}  # the scaffold's entry point is named `name` too
    _taken("plugin (entry point)", name, plugins, plugins.get(name, ""))
    module = "harness_" + name.replace("-", "_")
    return render("backend", Path(directory) / f"harness-{name}", {
        "name": name,
        "module": module,
        "class_name": _camel(name) + "Backend",
        "cells": repr(HAND_WRITTEN),  # the cells the NumPy reference it delegates to runs
    })


def new_cell(name: str, directory: str | Path = ".") -> Path:
    """Create ``<directory>/harness-<name>/`` holding a cell plugin (a leaky tanh RNN named
    ``name``) and return its path. A name that an installed cell has is refused."""
    from harness.plugins import get_registry

    if not CELL_NAME.match(name):
        raise HarnessError(f"invalid cell name {name!r}: use lower-case letters, digits and '_', "
                           f"starting with a letter (e.g. 'my_cell')")
    registry = get_registry()
    _taken("cell", name, registry.cells, registry.cell_origin(name))
    distribution = "harness-" + name.replace("_", "-")
    return render("cell", Path(directory) / distribution, {
        "name": name,
        "distribution": distribution,
        "module": "harness_" + name,
        "class_name": _camel(name) + "Cell",
    })
