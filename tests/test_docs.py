"""The documentation's cross-references point at sections that exist, and the code it names exists."""
from __future__ import annotations

import dataclasses
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*ROOT.glob("harness/**/*.py"), *ROOT.glob("harness_plugins/*.py"), *ROOT.glob("docs/*.md"),
           ROOT / "README.md"]


def test_citations_of_references_md_name_existing_sections():
    headings = {line[3:].strip() for line in (ROOT / "docs/references.md").read_text().splitlines()
                if line.startswith("## ")}
    cited = set()
    for path in SOURCES:
        text = path.read_text()
        assert "REFERENCES.md" not in text, f"{path} cites a file that is not in the project"
        cited |= {(path.name, m) for m in re.findall(r'references\.md\)?, "([^"]+)"', text)}
    assert cited, "no citation found: the pattern is out of date"
    missing = [(name, section) for name, section in cited if section not in headings]
    assert not missing, f"sections cited but not in docs/references.md: {missing}"


# -- docs/architecture.md names code that exists, and states the layers pyproject.toml enforces --------------
ARCHITECTURE = ROOT / "docs" / "architecture.md"
#: The first part of a dotted name that makes it a code name to check: a full name (harness.*,
#: harness_plugins.*, asv.* of the pinned asv), a module or package directly under harness/ (``cli.cmd_run``
#: reads as ``harness.cli.cmd_run``), or a name ``harness`` exports (``Backend.upstream``).
FULL_ROOTS = ("harness", "harness_plugins", "asv")
FILE_SUFFIXES = (".py", ".md", ".toml", ".json", ".html", ".j2", ".txt", ".cfg", ".yml", ".yaml", ".js", ".css",
                 ".so")
_SPAN = re.compile(r"`([^`\n]+)`")
_DOTTED = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(.*\))?")  # a dotted name, maybe called: f(x, ...)


def _short_roots() -> set[str]:
    import harness

    modules = {p.stem for p in (ROOT / "harness").glob("*.py")} - {"__init__"}
    packages = {p.name for p in (ROOT / "harness").iterdir() if (p / "__init__.py").is_file()}
    return modules | packages | set(harness.__all__)


def code_names(markdown: str) -> list[str]:
    """The code names of a page: every inline code span (fenced blocks, such as the folder map, are
    left out) that is a dotted Python name, or such a name called (``f(a, b)``: its arguments are not
    read), whose first part is one of the roots above. A span that ends like a file name
    (``suite.toml``) is a file, not a name."""
    roots = set(FULL_ROOTS) | _short_roots()
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    names = []
    for span in _SPAN.findall(prose):
        span = span.strip()
        match = _DOTTED.fullmatch(span)
        if match and not span.endswith(FILE_SUFFIXES) and match.group(1).split(".")[0] in roots:
            names.append(match.group(1))
    return names


def _attribute(owner, name: str):
    """``owner.name``; on a class, a dataclass field or an annotated attribute without a default counts too."""
    if hasattr(owner, name):
        return getattr(owner, name)
    if isinstance(owner, type):
        fields = {f.name for f in dataclasses.fields(owner)} if dataclasses.is_dataclass(owner) else set()
        annotated = {a for klass in owner.__mro__ for a in getattr(klass, "__annotations__", {})}
        if name in fields | annotated:
            return None  # an instance attribute: nothing to look into further
    raise AttributeError(f"{owner!r} has no attribute {name!r}")


def resolve(name: str):
    """Import the longest module prefix of ``name`` (``harness.`` prepended to a short name), then
    look up the rest as attributes."""
    parts = name.split(".")
    if parts[0] not in FULL_ROOTS:
        parts = ["harness", *parts]
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module_name)
            break
        except ModuleNotFoundError as exc:
            if not (module_name + ".").startswith(f"{exc.name}."):  # it exists, but imports something missing
                raise
    for attribute in parts[i:]:
        if obj is None:
            raise AttributeError(f"{'.'.join(parts)}: looks inside an instance attribute")
        obj = _attribute(obj, attribute)
    return obj


def test_code_names_rule():
    text = ("`harness.cli.main` `cli.cmd_run(args)` `Backend.upstream(grad_h)` `suite.toml` `asv.conf.json` "
            "`info()[\"blas\"]` `repr(point.seq_len)` `Task.steps(seq_len)` `T` `pm.check_pending()`\n"
            "```\n`harness.not_checked`\n```\n")
    assert code_names(text) == ["harness.cli.main", "cli.cmd_run", "Backend.upstream"]
    assert resolve("cli.cmd_run") is resolve("harness.cli.cmd_run")
    assert resolve("harness.record.results.RunResults.points") is None  # a dataclass field without a default
    for missing in ("harness.cli.cmd_nothing", "harness.nothing.at_all", "harness.record.results.RunResults.nothing",
                    "harness.record.results.RunResults.points.count"):
        with pytest.raises((AttributeError, ModuleNotFoundError)):
            resolve(missing)


def test_every_code_name_in_architecture_md_exists():
    names = code_names(ARCHITECTURE.read_text())
    assert len(names) >= 30, f"only {len(names)} code names found: the rule is out of date"
    missing = []
    for name in names:
        try:
            resolve(name)
        except (AttributeError, ModuleNotFoundError) as exc:
            missing.append(f"{name} ({exc})")
    assert not missing, "docs/architecture.md names code that does not exist:\n" + "\n".join(missing)


def _contract_layers() -> list[set[str]]:
    """The non-optional modules of each layer of pyproject.toml's layers contract, highest first."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["id"] == "layers"]
    return [{m.strip() for m in re.split(r"[:|]", layer) if not m.strip().startswith("(")} for layer in layers]


def test_the_layers_table_states_the_import_contract():
    """docs/architecture.md's "Layers" table has one row per layer of the contract, in its order, with
    the same modules: the layers are written down once (pyproject.toml) and described once."""
    section = ARCHITECTURE.read_text().split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[2] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| layer ")]
    assert [set(re.findall(r"`([^`]+)`", row)) for row in rows] == _contract_layers()


def test_import_harness_loads_no_storing_code():
    """``from harness import Backend``, what every plugin does, stops at the plugin-facing API; the
    re-exported ``harness.load_results`` is imported on first use (the contract's one exception)."""
    script = ("import sys, harness; loaded = sorted(m for m in sys.modules if m.startswith(('harness.record', "
              "'harness.report', 'harness.run'))); print(loaded); "
              "assert harness.load_results.__module__ == 'harness.record.dataframe'")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_every_environment_variable_the_harness_reads_is_in_the_guide_and_in_help():
    """Each ``*_ENV = "HARNESS_..."`` constant of the package (the variables it reads) appears in
    docs/user-guide.md's table and in ``harness --help``."""
    import re

    from harness.cli import build_parser

    modules = [*(ROOT / "harness").rglob("*.py"), *(ROOT / "harness_plugins").rglob("*.py")]
    source = "\n".join(p.read_text() for p in modules)
    names = set(re.findall(r'^[A-Z_]+_ENV = "(HARNESS_[A-Z_]+)"', source, re.M))
    assert {"HARNESS_MACHINE", "HARNESS_DISABLE_PLUGINS", "HARNESS_NUMBA_BLAS"} <= names
    guide = (ROOT / "docs" / "user-guide.md").read_text()
    table = guide[guide.index("## Environment variables"):guide.index("## Failures and exit codes")]
    help_text = build_parser().format_help()
    assert [n for n in sorted(names) if f"`{n}`" not in table] == []
    assert [n for n in sorted(names) if n not in help_text] == []


# -- docs/cells.md describes every built-in cell as the code declares it ----------------------------------------
def _shape(text: str, inputs: int, hidden: int) -> tuple[int, ...]:
    """A shape as the page writes it, "(4H, I)" or "(H,)", at sizes I and H."""
    sizes = {"H": hidden, "I": inputs}
    found = []
    for part in filter(None, (p.strip() for p in text.strip("() ").split(","))):
        factor, name = re.fullmatch(r"(\d*)([HI])", part).groups()
        found.append(int(factor or 1) * sizes[name])
    return tuple(found)


def test_cells_md_gives_every_built_in_cell_its_parameters_and_shapes():
    from harness.cells import cell_class, cell_names
    from harness.plugins import get_registry

    sections = re.split(r"^## ", (ROOT / "docs" / "cells.md").read_text(), flags=re.M)
    by_name = {s.split("\n", 1)[0].strip(): s for s in sections[1:]}
    built_in = [n for n in cell_names() if get_registry().cell_plugins[n].distribution == "rnn-grad-harness"]
    assert {"lstm", "mingru", "lru", "lru_block"} <= set(built_in)
    for name in built_in:
        assert name in by_name, f"docs/cells.md has no section for cell {name!r}"
        rows = re.findall(r"^\| (\w+) \| (\([^)]*\)) \|", by_name[name], flags=re.M)
        cls = cell_class(name)
        assert [r[0] for r in rows] == [p.name for p in cls.params], name
        for param, shape in rows:
            assert _shape(shape, 3, 5) == cls.param_shapes(3, 5)[param], (name, param, shape)
        for init in cls.init_names():
            assert f"`{init}" in by_name[name] or init == "default", (name, init)
