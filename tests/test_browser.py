"""The published site in a real headless browser (Debian's chromium and chromium-driver).

Opens asv's index and the harness's gradient page over a localhost server (``harness preview``),
checks that the benchmark list and every plot image loaded, and that the console has no errors.
Screenshots are saved in the test's temporary folder.
"""
from __future__ import annotations

import contextlib
import copy
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.asv_project import git, make_repo
from tests.support.cli import harness
from tests.support.runs import PROVENANCE, write_results_file

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
BACKENDS = ("numpy", "numba")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install '.[test]')")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")]


@contextlib.contextmanager
def _served(repo: Path) -> Iterator[str]:
    """``harness publish`` in ``repo``, then ``harness preview`` on a free port: yields the site's URL."""
    harness("publish", cwd=repo, check=True)
    server = subprocess.Popen([sys.executable, "-m", "harness", "preview", "--port", "0"], cwd=repo,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()  # "serving ... at http://127.0.0.1:PORT/ (Ctrl-C to stop)"
        yield line.split(" at ")[1].split()[0]
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
def site(tmp_path):
    repo = make_repo(tmp_path / "proj")
    harness("run", "tiny", "--backends", ",".join(BACKENDS), "-q", cwd=repo, check=True)
    with _served(repo) as url:
        yield url


@pytest.fixture
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _wait_for(driver, predicate, timeout: float = 30.0):
    """Selenium's explicit wait: polls ``predicate`` until it is truthy (a timeout fails the test)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda _: predicate())


def _console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _series(driver) -> dict[str, int]:
    """The asv graph's flot series: label -> number of plotted (non-null) points."""
    return driver.execute_script(
        "var plot = $('#main-graph').data('plot'); if (!plot) { return null; }"
        "var out = {}; plot.getData().forEach(function (s) {"
        "  out[s.label] = s.data.filter(function (p) { return p[1] !== null; }).length; });"
        "return out;")


def test_published_site_renders_in_a_browser(site, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(site + "index.html")
    names = _wait_for(browser, lambda: [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".benchmark-text")
                                        if e.text])
    assert {"time_forward_backward", "peak_memory", "grad_abs_decay_rate"} <= set(names), names
    assert _console_errors(browser) == []

    # The history graph of one benchmark: a plotted point for every backend x cell x T of the run.
    browser.get(site + "index.html#tiny.time_forward_backward")
    series = _wait_for(browser, lambda: _series(browser))
    browser.save_screenshot(str(tmp_path / "asv-graph.png"))
    for backend in BACKENDS:
        plotted = {label: n for label, n in series.items() if backend in label}
        assert len(plotted) == 4 and all(n == 1 for n in plotted.values()), series  # 2 cells x 2 T, one commit

    # From the asv graph to the plots behind it, and back to the graph from there.
    link = _wait_for(browser, lambda: [e for e in browser.find_elements(By.ID, "harness-graph-link")
                                       if e.is_displayed()])[0]
    assert link.text == "The plots behind this graph: tiny"
    link.click()
    _wait_for(browser, lambda: browser.current_url.endswith("harness/tiny/index.html"))
    browser.find_element(By.ID, "history").click()
    _wait_for(browser, lambda: browser.current_url.endswith("index.html#tiny.time_forward_backward"))
    assert _wait_for(browser, lambda: _series(browser))

    # The landing page: where to start, and the newest run in numbers.
    browser.get(site + "index.html")
    _wait_for(browser, lambda: browser.find_elements(By.ID, "harness-pages-link"))
    browser.find_element(By.ID, "harness-pages-link").click()
    _wait_for(browser, lambda: browser.current_url.endswith("harness/index.html"))
    numbers = browser.find_element(By.ID, "newest-table").text
    assert all(name in numbers for name in ("rnn_tanh", "gru", *BACKENDS)), numbers
    browser.find_element(By.LINK_TEXT, "tiny").click()
    images = _wait_for(browser, lambda: browser.find_elements(By.TAG_NAME, "img"))
    stems = sorted(img.get_attribute("src").rsplit("/", 1)[1] for img in images)
    assert stems == ["decay_predicted.png", "decay_rate.png", "decay_sigma_max.png", "gflops.png", "gradient_gru.png",
                     "gradient_rnn_tanh.png", "memory.png", "peak_fraction.png", "time.png"]
    assert _wait_for(browser, lambda: all(browser.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 300", img) for img in images))
    captions = [e.text for e in browser.find_elements(By.TAG_NAME, "figcaption")]
    assert any("every step the layer ran" in c for c in captions)
    browser.save_screenshot(str(tmp_path / "gradient-page.png"))
    assert _console_errors(browser) == []

    # The interactive page, offline (plotly's script beside it): the mouse over a profile reads its value.
    browser.find_element(By.ID, "explore").click()
    _wait_for(browser, lambda: browser.current_url.endswith("interactive.html"))
    figure = _wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, "#figure-0 .main-svg"))[0]
    _hover_and_read(browser, "figure-0", curve=0, point=5, tmp_path=tmp_path)
    assert _console_errors(browser) == [] and figure.size["width"] > 300
    assert _overlapping_labels(browser) == []


def _overlapping_labels(driver) -> list[str]:
    """Pairs of text labels (titles, subplot titles, axis titles, legend entries) of the page's plotly
    figures whose boxes intersect; the page must have labels to compare (a check of nothing fails)."""
    found, labels = driver.execute_script(
        "var found = [], labels = 0;"
        "document.querySelectorAll('.js-plotly-plot').forEach(function (gd) {"
        "  var boxes = Array.from(gd.querySelectorAll('.gtitle, .annotation-text, .xtitle, .ytitle, "
        "    .legendtext')).map(function (e) { return [e.textContent, e.getBoundingClientRect()]; })"
        "    .filter(function (b) { return b[1].width > 0 && b[1].height > 0; });"
        "  labels += boxes.length;"
        "  for (var i = 0; i < boxes.length; i++) for (var j = i + 1; j < boxes.length; j++) {"
        "    var a = boxes[i][1], b = boxes[j][1];"
        "    if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom)"
        "      found.push(gd.id + ': ' + boxes[i][0] + ' / ' + boxes[j][0]);"
        "  }"
        "});"
        "return [found, labels];")
    assert labels >= 6, f"only {labels} labels found on the page: the selectors no longer match plotly's"
    return found


def _hover_and_read(browser, div: str, curve: int, point: int, tmp_path: Path) -> None:
    """Move the mouse onto point ``point`` of trace ``curve`` of plotly figure ``div``: its hover label
    must show that point's lag and value."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    where = browser.execute_script(
        "var gd = document.getElementById(arguments[0]), t = gd._fullData[arguments[1]], k = arguments[2];"
        "var xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();"
        "var y = t.y[k], yl = ya.type === 'log' ? Math.log10(y) : y;"
        "return {x: xa._offset + xa.l2p(t.x[k]), y: ya._offset + ya.l2p(yl), w: box.width, h: box.height,"
        "        lag: t.x[k], value: y};", div, curve, point)
    element = browser.find_element(By.ID, div)
    ActionChains(browser).move_to_element_with_offset(
        element, int(where["x"] - where["w"] / 2), int(where["y"] - where["h"] / 2)).perform()
    label = _wait_for(browser, lambda: " ".join(e.text for e in browser.find_elements(
        By.CSS_SELECTOR, f"#{div} .hoverlayer .hovertext")))
    browser.save_screenshot(str(tmp_path / "interactive-hover.png"))
    assert f"lag {where['lag']}" in label, label
    shown = re.search(r"lag \d+\s*g ([0-9.e+-]+)", label)
    assert shown and float(shown.group(1)) == pytest.approx(where["value"], rel=1e-3), label  # 4 digits shown


def test_a_hostile_machine_tooltip_shows_its_script_as_text(browser, tmp_path):
    """asv's graph page renders machine.json into the machine button's tooltip as HTML (issue 29, item 1):
    a shared results file's OS, CPU and GPU fields are escaped, so hovering shows the script as text and
    never runs it."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    script = "<img src=x onerror=window.pwned=1>"
    repo = make_repo(tmp_path / "proj")
    prov = copy.deepcopy(PROVENANCE)
    prov.update(os=script, cpu=script, gpu=script)
    prov["git"] = {"commit": git(repo, "rev-parse", "HEAD"), "commit_date_ms": 1_700_000_000_000, "dirty": False}
    harness("record", str(write_results_file(tmp_path, prov)), cwd=repo, check=True)
    with _served(repo) as url:
        browser.get(url + "index.html#suite.time_forward_backward")
        button = _wait_for(browser, lambda: [b for b in browser.find_elements(By.CSS_SELECTOR, "a.btn")
                                             if b.text == "testbox"])[0]
        ActionChains(browser).move_to_element(button).perform()
        tip = _wait_for(browser, lambda: [t for t in browser.find_elements(By.CSS_SELECTOR, ".tooltip")
                                          if "os:" in t.text])[0]
        browser.save_screenshot(str(tmp_path / "machine-tooltip.png"))
        assert f"os: {script}" in tip.text and f"cpu: {script}" in tip.text  # the markup, shown as text
        assert tip.find_elements(By.TAG_NAME, "img") == []
        assert browser.execute_script("return window.pwned === undefined")


def test_a_training_run_s_interactive_page_has_no_overlapping_labels(browser, tmp_path):
    """The training page's four stacked panels (eval loss, training loss, gradient norm, clipped share):
    their titles, axis titles and legend entries do not overlap, and hovering reads a point."""
    from selenium.webdriver.common.by import By

    repo = make_repo(tmp_path / "proj")
    suite_file = repo / "suites" / "tiny" / "suite.toml"
    suite_file.write_text(suite_file.read_text() + "\n[train]\nseq_lens = [12]\niterations = 20\nbatch = 4\n"
                                                   "eval_every = 10\neval_size = 16\nprofile_every = 10\n")
    harness("train", "tiny", "--backends", "numpy", "--no-asv", "-q", "--output", str(tmp_path / "t.json"),
            cwd=repo, check=True)
    harness("report", str(tmp_path / "t.json"), "--out", str(tmp_path / "report"), check=True)
    browser.get((tmp_path / "report" / "interactive.html").as_uri())
    _wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, "#figure-0 .main-svg"))
    browser.save_screenshot(str(tmp_path / "training-interactive.png"))
    assert _overlapping_labels(browser) == []
    assert _console_errors(browser) == []
