"""The published site in a real headless browser (Debian's chromium and chromium-driver).

Opens asv's index and the harness's gradient page over a localhost server (``harness preview``),
checks that the benchmark list and every plot image loaded, and that the console has no errors.
Screenshots are saved in the test's temporary folder.
"""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.support.asv_project import make_repo
from tests.support.cli import harness

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
BACKENDS = ("numpy", "numba")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install '.[test]')")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")]


@pytest.fixture
def site(tmp_path):
    repo = make_repo(tmp_path / "proj")
    harness("run", "tiny", "--backends", ",".join(BACKENDS), "-q", cwd=repo, check=True)
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

    browser.get(site + "index.html")
    _wait_for(browser, lambda: browser.find_elements(By.ID, "harness-pages-link"))
    browser.find_element(By.ID, "harness-pages-link").click()
    _wait_for(browser, lambda: browser.current_url.endswith("harness/index.html"))
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
