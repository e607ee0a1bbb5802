"""``harness new-backend NAME``: write a ready, installable backend plugin package.

The generated backend delegates to the NumPy reference, so it passes ``harness check NAME`` as
generated; its author then replaces the three marked methods with their own kernel.
"""
from __future__ import annotations

import re
from pathlib import Path

from harness import HarnessError
from harness.reference import HAND_WRITTEN

TEMPLATES = Path(__file__).parent / "templates" / "backend"
NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def new_backend(name: str, directory: str | Path = ".") -> Path:
    """Create ``<directory>/harness-<name>/`` and return its path."""
    if not NAME.match(name):
        raise HarnessError(f"invalid backend name {name!r}: use lower-case letters, digits and '-', "
                           f"starting with a letter (e.g. 'my-kernel')")
    module = "harness_" + name.replace("-", "_")
    root = Path(directory) / f"harness-{name}"
    if root.exists():
        raise HarnessError(f"{root} already exists; choose another --dir or name")
    values = {
        "name": name,
        "module": module,
        "class_name": "".join(part.capitalize() for part in re.split(r"[-_]", name)) + "Backend",
        "cells": repr(HAND_WRITTEN),  # the cells the NumPy reference it delegates to runs
    }
    for template in sorted(TEMPLATES.rglob("*.tmpl")):
        relative = template.relative_to(TEMPLATES).with_suffix("")
        target = root / str(relative).replace("MODULE", module)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = template.read_text()
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        target.write_text(text)
    return root
