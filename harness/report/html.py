"""HTML pages from Jinja2 templates with autoescaping: results files are shared between people, so
every name in them (suite, cell, backend, label) is text, never markup."""
from __future__ import annotations

import functools
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "pages"


@functools.lru_cache(maxsize=1)
def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]),
                       undefined=StrictUndefined, keep_trailing_newline=True)


def render_page(template: str, path: str | Path, **context) -> Path:
    """Render ``template`` (in harness/templates/pages) with ``context`` into ``path``."""
    path = Path(path)
    path.write_text(_environment().get_template(template).render(**context))
    return path
