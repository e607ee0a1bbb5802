"""docs/findings.md against the results files committed beside it: every table is regenerated from its
data (scripts/findings_tables.py), and the test fails when the page and the data disagree."""
from __future__ import annotations

import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "findings_tables.py"


@pytest.fixture(scope="module")
def tables():
    return runpy.run_path(str(SCRIPT))


def test_every_table_of_the_findings_page_is_what_its_results_files_give(tables):
    assert tables["check"](tables["PAGE"].read_text()) == []


def test_a_number_changed_on_the_page_is_caught(tables):
    page = tables["PAGE"].read_text()
    name, body = next((m["name"], m["body"]) for m in tables["MARKER"].finditer(page))
    digit = next(i for i, ch in enumerate(body) if ch.isdigit())
    edited = body[:digit] + str((int(body[digit]) + 1) % 10) + body[digit + 1:]
    assert tables["check"](page.replace(body, edited, 1)) == [f"{name}: the page differs from the data"]


def test_every_results_file_behind_a_table_is_committed_and_small():
    """The data stays in the repository: small JSON files (under 2 MB each)."""
    data = SCRIPT.parent.parent / "docs" / "findings"
    found = [p for p in data.rglob("*") if p.name.endswith((".json", ".json.gz"))]
    assert found and all(path.stat().st_size < 2_000_000 for path in found)
