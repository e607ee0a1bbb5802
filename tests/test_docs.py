"""The documentation's cross-references point at sections that exist."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*ROOT.glob("harness/**/*.py"), *ROOT.glob("plugins/*.py"), *ROOT.glob("docs/*.md"), ROOT / "README.md"]


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
