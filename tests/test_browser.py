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

from tests.asv_project import harness, make_repo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install '.[test]')")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")


@pytest.fixture
def site(tmp_path):
    repo = make_repo(tmp_path / "proj")
    harness(repo, "run", "tiny", "--backends", "numpy", "-q")
    harness(repo, "publish")
    server = subprocess.Popen([sys.executable, "-m", "harness", "preview", "--port", "0"], cwd=repo,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = server.stdout.readline()  # "serving ... at http://127.0.0.1:PORT/ (Ctrl-C to stop)"
    url = line.split(" at ")[1].split()[0]
    yield url
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


def test_published_site_renders_in_a_browser(site, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(site + "index.html")
    names = _wait_for(browser, lambda: [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".benchmark-text")
                               if e.text])
    assert {"time_forward_backward", "peak_memory", "grad_abs_decay_rate"} <= set(names), names
    browser.save_screenshot(str(tmp_path / "asv-index.png"))
    assert _console_errors(browser) == []

    browser.find_element(By.ID, "harness-pages-link").click()
    _wait_for(browser, lambda: browser.current_url.endswith("harness/index.html"))
    browser.find_element(By.LINK_TEXT, "tiny").click()
    images = _wait_for(browser, lambda: browser.find_elements(By.TAG_NAME, "img"))
    assert len(images) == 5  # gradient profiles of rnn_tanh and gru, decay rate, time, memory
    loaded = _wait_for(browser, lambda: all(browser.execute_script("return arguments[0].complete && "
                                                          "arguments[0].naturalWidth > 0", img) for img in images))
    assert loaded
    browser.save_screenshot(str(tmp_path / "gradient-page.png"))
    assert _console_errors(browser) == []
    assert (tmp_path / "asv-index.png").stat().st_size > 0 and (tmp_path / "gradient-page.png").stat().st_size > 0
