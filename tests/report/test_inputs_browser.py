"""The ``explain --inputs`` page in headless Chromium: offline, policy kept, names literal.

Asserted from the live page: every overlay decoded (``naturalWidth > 0``), nothing loaded
but ``data:`` URLs, the stylesheet and the explorer's script admitted by their hashes under a
policy without ``'unsafe-inline'``, the explorer listing every input with its AUCs, no
console error, and a file named like markup shown as text, never run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cnnlens.pipeline.loose import explain_inputs
from looseinputs import make_loose_images, save_builder

XSS = "<img src=x onerror=alert(1)>"
METHODS = ("gradcam", "gradcampp", "ablationcam")


@pytest.fixture(scope="module")
def inputs_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("inputs_browser")
    files = make_loose_images(work / "pics", n=6)
    hostile = work / "pics" / f"{XSS}.png"
    hostile.write_bytes(files[0].read_bytes() if files[0].suffix == ".png" else b"")
    builder, weights = save_builder(work / "model")
    names = work / "names.txt"
    names.write_text(f"cat\n{XSS}\n$x^2$\nowl\n")
    explain_inputs(builder, [work / "pics"], work / "out", weights=weights, methods=METHODS,
                   image_size=32, class_names=names, top_k=4)
    return work / "out" / "index.html"


@pytest.fixture(scope="module")
def page(driver: Any, inputs_page: Path) -> Any:
    driver.get(inputs_page.as_uri())
    driver.execute_script("return document.readyState")
    return driver


def test_every_overlay_is_decoded(page: Any) -> None:
    images = page.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, "
        "i.src.slice(0, 22), i.alt])")
    assert len(images) == 7 * (1 + len(METHODS))
    for complete, width, src, alt in images:
        assert complete and width > 0, alt
        assert src.startswith("data:image/"), src


def test_policy_holds_and_nothing_loads(page: Any) -> None:
    names = page.execute_script("return performance.getEntriesByType('resource')"
                                ".map(e => e.name)")
    assert all(n.startswith("data:") for n in names), names
    csp = page.execute_script(
        "return document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]').content")
    assert "default-src 'none'" in csp and "img-src data:" in csp
    assert "unsafe-inline" not in csp
    script = next(p.strip() for p in csp.split(";") if p.strip().startswith("script-src"))
    assert script.startswith("script-src 'sha256-") and script.count("'") == 2
    # the hashed stylesheet applied: the flex rows are laid out
    display = page.execute_script(
        "return getComputedStyle(document.querySelector('.row')).display")
    assert display == "flex"


def test_no_console_errors(page: Any) -> None:
    errors = [e for e in page.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors


def test_hostile_names_show_literally_and_never_run(page: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    text = page.execute_script("return document.body.innerText")
    assert f"{XSS}.png" in text and XSS in text and "$x^2$" in text
    assert page.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0
    with pytest.raises(NoAlertPresentException):
        page.switch_to.alert.text  # noqa: B018  (raises when no alert fired)


def test_the_explorer_lists_every_input_and_sorts_by_its_aucs(page: Any, inputs_page: Path
                                                              ) -> None:
    ready = "const a = document.getElementById('explorer-app'); return a && a.dataset.ready"
    assert page.execute_script(ready)
    count = page.execute_script("return document.getElementById('explorer-count').textContent")
    assert count == "7 of 7 samples"
    # no labels: no true-class or correctness filter to offer
    assert page.execute_script("return document.getElementById('explorer-true')") is None
    summary = json.loads((inputs_page.parent / "summary.json").read_text())
    assert summary["n"] == 7
    rows = (inputs_page.parent / "predictions.csv").read_text().splitlines()
    header = rows[0].split(",")
    col = header.index("gradcam_deletion_auc")
    want = {k: float(r.split(",")[col]) for k, r in enumerate(rows[1:])}
    page.execute_script(
        "const s = document.getElementById('explorer-sort');"
        "s.value = 'metric|deletion_auc|gradcam'; s.dispatchEvent(new Event('change'));")
    cards = page.execute_script(
        "return Array.from(document.querySelectorAll('#explorer-cards .card'))"
        ".map(c => [Number(c.dataset.index), Number(c.dataset.value)])")
    assert [i for i, _ in cards] == sorted(want, key=lambda k: (want[k], k))
    assert all(abs(v - want[i]) <= 1e-6 * max(1.0, abs(want[i])) for i, v in cards)
    names = page.execute_script(
        "return Array.from(document.querySelectorAll('#explorer-cards .name'))"
        ".map(e => e.textContent.trim())")
    assert any(n.endswith(f"/{XSS}.png") for n in names)  # text, as the file is named
