"""The report of a real pipeline run, opened in headless Chromium through WebDriver.

Asserted from the live page: every section present, every image decoded, no resource loaded
but ``data:`` URLs, no console error, a non-blank screenshot; hostile class names (markup and
mathtext) shown literally and never executed.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from support import MATH, XSS

SECTIONS = ["Run", "Data", "Training", "Evaluation", "Class activation maps", "Faithfulness",
            "Explorer", "Timings"]


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
    script = next(p.strip() for p in csp.split(";") if p.strip().startswith("script-src"))
    assert script.startswith("script-src 'sha256-") and "unsafe" not in script


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
