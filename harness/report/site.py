"""``harness publish`` and ``harness preview``: asv's site plus the harness's own pages.

asv publish deletes its HTML directory first, so the harness pages are written after it, into
``<html_dir>/harness/``, and asv's index gets a link to them.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from harness.errors import HarnessError
from harness.record import asvapi, files, results
from harness.report import plots
from harness.report.html import render_page
from harness.suites import Mode

HARNESS_PAGES = "harness"
LINK_MARK = "<!-- harness-pages -->"
VENDOR = Path(__file__).resolve().parents[1] / "vendor" / "asv"
# asv's CDN address -> the vendored copy (see harness/vendor/asv/README.md)
CDN_FILES = {
    "https://code.jquery.com/jquery-3.3.1.min.js": "jquery-3.3.1.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js": "jquery.flot.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js": "jquery.flot.time.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js": "jquery.flot.selection.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js": "jquery.flot.categories.js",
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js": "jquery.flot.orderBars.js",
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js": "stupidtable.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js": "md5.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js": "js/bootstrap.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css": "css/bootstrap.min.css",
}
_TAG = re.compile(r'(<(?:script|link)\b[^>]*?(?:src|href)=")(https://[^"]+)("[^>]*>)')


def all_runs(results_dir: str | Path) -> list[tuple[Path, results.RunResults]]:
    """Every readable run with points under ``results_dir/runs``, oldest first (by start time).
    Files this harness cannot read (another schema, not JSON) and runs without points are passed over."""
    found = []
    for path in sorted(Path(results_dir, "runs").glob("*.json")):
        try:
            run = files.read(path)
        except (OSError, ValueError):
            continue
        if run.points:
            found.append((path, run))
    return sorted(found, key=lambda item: item[1].started_at)


def page_name(run: results.RunResults) -> str:
    """The folder of a suite's page: ``SUITE`` (harness run) or ``SUITE-train`` (harness train)."""
    return run.suite.name + ("-train" if run.mode == Mode.TRAIN else "")


def _asv_publish(conf, html_dir: Path) -> None:
    """asv publish in-process into ``html_dir``, silent: it warns about every folder under the results
    directory without a machine.json (runs/, labels/, html/), by design here, and its errors become
    one line each."""
    try:
        asvapi.publish(conf, html_dir)
    except asvapi.DatabaseRefused as exc:  # a damaged database: benchmarks.json that is not asv's
        raise HarnessError(f"asv cannot publish {conf.results_dir}: {exc}") from None
    except asvapi.GitFailed as exc:  # git: the project's repository (asv.conf.json's "repo") is not here
        raise HarnessError(f"asv publish needs the project's git repository ({conf.repo!r} from here) to date "
                           f"the commits: run harness publish in the project's checkout (git exited "
                           f"{exc.retcode})") from None


def _use_vendored_dependencies(html_dir: Path) -> None:
    """Point asv's index at local copies of its CDN scripts, so the site works offline. The
    subresource-integrity attributes go with the CDN address: they pin the CDN's minified bytes."""
    shutil.copytree(VENDOR, html_dir / "vendor", dirs_exist_ok=True)
    index = html_dir / "index.html"

    def local(match: re.Match) -> str:
        head, url, tail = match.groups()
        if url not in CDN_FILES:
            return match.group(0)
        tail = re.sub(r'\s(?:integrity|crossorigin|referrerpolicy)="[^"]*"', "", tail)
        return f"{head}vendor/{CDN_FILES[url]}{tail}"

    text = _TAG.sub(local, index.read_text())
    missing = [url for url in CDN_FILES if url in text]
    if missing:  # a new asv changed its dependencies: say so rather than ship a broken page
        raise HarnessError(f"asv's index.html still loads {missing[0]}; update harness/vendor/asv")
    index.write_text(text)


def _link_from_asv_index(html_dir: Path, pages: list[str]) -> None:
    """A box on asv's pages: a link to the harness pages, and, while a graph of suite S is shown
    (asv's ``#S.metric`` address), a link to S's page (``S-train`` for a training metric): the profiles
    behind the graph. ``pages``: the page folders written (safe names: suite names are checked)."""
    index = html_dir / "index.html"
    text = index.read_text()
    if LINK_MARK in text:
        return
    script = ("<script>(function () {"
              f"var pages = {json.dumps(sorted(pages))};"
              "function update() {"
              "  var link = document.getElementById('harness-graph-link'), name = location.hash.slice(1);"
              "  var suite = name.split('.')[0], metric = (name.split('.')[1] || '').split('?')[0];"
              "  var page = metric.indexOf('train_') === 0 ? suite + '-train' : suite;"
              "  if (pages.indexOf(page) < 0) { link.style.display = 'none'; return; }"
              f"  link.href = '{HARNESS_PAGES}/' + page + '/index.html';"
              "  link.textContent = 'The plots behind this graph: ' + page; link.style.display = 'block';"
              "}"
              "window.addEventListener('hashchange', update); window.addEventListener('load', update);"
              "})();</script>")
    link = (f"{LINK_MARK}<div style='position:fixed;bottom:0;right:0;z-index:9999;padding:6px 12px;"
            f"background:#fff;border:1px solid #ccc'><a id='harness-graph-link' style='display:none' href='#'></a>"
            f"<a id='harness-pages-link' href='{HARNESS_PAGES}/index.html'>"
            f"Gradient curves, speed and memory plots</a></div>{script}")
    index.write_text(text.replace("</body>", link + "</body>", 1))


def publish(conf) -> Path:
    """Build asv's site, then the harness pages, into a new folder that replaces ``html_dir`` only
    when complete (a failure leaves the old site as it was); under the database lock, so that a
    concurrent run cannot change the database half-way. Returns the harness index page."""
    from harness.record.asvdb import database_lock

    results_dir, html_dir = Path(conf.results_dir), Path(conf.html_dir)
    if not (results_dir / "benchmarks.json").is_file():
        raise HarnessError(f"no results to publish in {results_dir}: run `harness run SUITE` first")
    try:
        html_dir.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{html_dir.name}-building-", dir=html_dir.parent))
    except OSError as e:  # the scratch folder's random name would mean nothing to the user
        raise HarnessError(f"cannot write the site into {html_dir}: {e.strerror}") from e
    try:
        with database_lock(results_dir):
            _asv_publish(conf, building)
        _use_vendored_dependencies(building)
        pages = _write_harness_pages(results_dir, building / HARNESS_PAGES)
        _link_from_asv_index(building, pages)
        _swap_in(building, html_dir)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return html_dir / HARNESS_PAGES / "index.html"


def _write_harness_pages(results_dir: Path, pages: Path) -> list[str]:
    """A page per suite and mode for its newest run, and an index that says where to start, gives the
    newest run in numbers and lists every run; returns the page folders."""
    pages.mkdir(parents=True, exist_ok=True)
    items = []
    runs = all_runs(results_dir)
    latest = {page_name(run): (path, run) for path, run in runs}
    for name, (path, run) in sorted(latest.items()):
        kind = "training" if run.mode == Mode.TRAIN else "benchmarks"
        metric = "train_final_loss_ratio" if run.mode == Mode.TRAIN else "time_forward_backward"
        plots.report(run, pages / name, title=f"harness: suite {run.suite.name} ({kind})", back_link="../index.html",
                     script_dir=pages,  # one plotly.min.js for every page
                     history_link=f"../../index.html#{run.suite.name}.{metric}")
        items.append({"folder": name, "name": name, "started": run.started_at[:19], "file": path.name,
                      **run.counts})
    every = [{"started": run.started_at[:19], "name": page_name(run), "file": path.name,
              "machine": run.provenance.get("machine", "?"), "commit": _commit(run),
              "page": page_name(run) if latest[page_name(run)][0] == path else None, **run.counts}
             for path, run in reversed(runs)]
    newest = max(latest.values(), key=lambda found: found[1].started_at)[1] if latest else None
    render_page("index.html.j2", pages / "index.html", items=items, runs=every,
                newest=_in_numbers(newest) if newest is not None else None)
    return list(latest)


def _in_numbers(run: results.RunResults) -> dict:
    """The newest run as a table for the landing page: forward + backward per cell x T and backend with
    the decay rates (a benchmark run), or the outcomes over seeds (a training run)."""
    from harness.report import console, outcome_tables

    if run.mode == Mode.TRAIN:
        headers, rows = outcome_tables.outcome_rows(run)
        what = "training outcomes over seeds"
    else:
        headers, rows, _ = console.pivot(run)
        what = "forward + backward (median ms) per backend, and the gradient's decay rate per step"
    return {"name": page_name(run), "started": run.started_at[:19], "what": what, "headers": headers,
            "rows": rows}


def _commit(run: results.RunResults) -> str:
    git = run.provenance.get("git") or {}
    commit = git.get("commit") if isinstance(git, dict) else None
    return (str(commit)[:8] + (" (dirty)" if git.get("dirty") else "")) if commit else "no git"


def _swap_in(built: Path, target: Path) -> None:
    """Replace ``target`` by ``built``: two renames, so the old site stays whole until the new one is;
    under a lock of the site's own, so that concurrent publishes swap one after the other (the last
    one's site stays) instead of renaming the same folder at once."""
    from filelock import FileLock

    with FileLock(str(target.with_name(f".{target.name}.lock"))):
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}-old-{os.getpid()}")
            os.replace(target, old)
        os.replace(built, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def serve(directory: str | Path, port: int = 8080, host: str = "127.0.0.1") -> None:
    """Serve ``directory`` until interrupted."""
    directory = Path(directory)
    if not (directory / "index.html").is_file():
        raise HarnessError(f"nothing to serve in {directory}: run `harness publish` first")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as exc:  # a port in use, a host that is not this machine's
        raise HarnessError(f"cannot serve on {host}:{port}: {exc.strerror or exc}; choose another port with "
                           f"--port") from None
    with server:
        print(f"serving {directory} at http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)")
        server.serve_forever()
