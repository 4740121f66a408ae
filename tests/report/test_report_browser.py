"""The report of a real pipeline run, opened in headless Chromium through WebDriver.

Asserted from the live page: every section present, every image decoded, no resource loaded
but ``data:`` URLs, no console error, a non-blank screenshot; hostile class names (markup and
mathtext) shown literally and never executed.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cnnlens.data.mnist1d import load_mnist1d
from cnnlens.explain.stage import ExplainOptions
from cnnlens.faithfulness.stage import FaithfulnessOptions
from cnnlens.pipeline import run
from support import require, unavailable

XSS = "<img src=x onerror=alert(1)>"
MATH = "$x^2$"
SECTIONS = ["Run", "Data", "Training", "Evaluation", "Class activation maps", "Faithfulness",
            "Timings"]
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,2400"]


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny MNIST-1D run through the whole pipeline, two classes renamed to attack the page."""
    work = tmp_path_factory.mktemp("browser")
    a = load_mnist1d()
    names = np.array([XSS, MATH, *[str(i) for i in range(2, 10)]])
    npz = work / "mnist1d_hostile.npz"
    np.savez(npz, x_train=a["x"][:800], y_train=a["y"][:800], x_test=a["x_test"][:200],
             y_test=a["y_test"][:200], class_names=names)
    res = run(task="signals", data_dir=str(npz), epochs=2, device="cpu", out=work / "run",
              explain=ExplainOptions(limit=40, per_class=1, max_failures=2),
              faithfulness=FaithfulnessOptions(limit=30, n_boot=100, sanity_samples=4, steps=4))
    assert res.report is not None
    return res.report


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    webdriver = require("selenium.webdriver")
    browser = next((shutil.which(b) for b in CHROMIUM if shutil.which(b)), None)
    chromedriver = shutil.which("chromedriver")
    if browser is None or chromedriver is None:
        unavailable("headless Chromium and ChromeDriver are not installed: as root, "
                    "`apt-get install chromium chromium-driver` (scripts/setup.sh test does it)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    from selenium.webdriver.chrome.service import Service

    drv = webdriver.Chrome(service=Service(executable_path=chromedriver), options=opts)
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()


@pytest.fixture(scope="module")
def page(driver: Any, hostile_report: Path) -> Any:
    driver.get(hostile_report.as_uri())
    driver.execute_script("return document.readyState")
    return driver


def test_every_section_is_present(page: Any) -> None:
    headings = page.execute_script(
        "return Array.from(document.querySelectorAll('h2')).map(h => h.textContent.trim())")
    assert headings == SECTIONS


def test_every_image_is_decoded(page: Any) -> None:
    images = page.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, "
        "i.src.slice(0, 22)])")
    assert len(images) >= 8  # curves, ROC, confusion, examples, galleries, faithfulness
    for complete, width, src in images:
        assert complete and width > 0, src
        assert src.startswith("data:image/"), src


def test_nothing_but_data_urls_is_loaded(page: Any) -> None:
    names = page.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(n.startswith("data:") for n in names), names
    csp = page.execute_script(
        "const m = document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]');"
        "return m ? m.content : null")
    assert csp is not None and "default-src 'none'" in csp and "img-src data:" in csp


def test_no_console_errors(page: Any) -> None:
    errors = [e for e in page.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors


def test_hostile_class_names_show_literally_and_never_run(page: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    text = page.execute_script("return document.body.innerText")
    assert XSS in text and MATH in text
    injected = page.execute_script("return document.querySelectorAll('img[src=\"x\"]').length")
    assert injected == 0
    with pytest.raises(NoAlertPresentException):
        page.switch_to.alert.text  # noqa: B018  (raises when no alert fired)


def test_screenshot_is_not_blank(page: Any) -> None:
    shot = Image.open(io.BytesIO(page.get_screenshot_as_png())).convert("L")
    pixels = np.asarray(shot, dtype=np.float64)
    assert pixels.std() > 10 and len(np.unique(pixels)) > 50
