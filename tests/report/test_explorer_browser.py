"""The report's explorer in headless Chromium: what it lists is what the run's files say.

Two real runs: the hostile-names MNIST-1D run (signals; 40 explained samples, 30 scored for
faithfulness) and a small image-folder run (tiles drawn from WebP thumbnails). Every check
reads the live page: counts, which cards a filter leaves, the order a sort gives against
``results.json``, pixels on the canvases, the view kept in the URL, keyboard navigation.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cnnlens.explain.options import ExplainOptions
from cnnlens.faithfulness.options import FaithfulnessOptions
from cnnlens.pipeline import run
from support import XSS
from userdata import make_image_folders

READY = "const a = document.getElementById('explorer-app'); return a ? a.dataset.ready : null"
CARDS = ("return Array.from(document.querySelectorAll('#explorer-cards .card'))"
         ".map(c => [Number(c.dataset.index), c.dataset.value])")


@pytest.fixture(scope="module")
def image_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("explorer-images")
    folders = make_image_folders(work / "tiles", size=20,
                                 per_class={"train": 10, "test": 9, "val": 3})
    res = run(task="images", data_dir=str(folders), image_size=20, epochs=1, device="cpu",
              out=work / "run", explain=ExplainOptions(per_class=1, max_failures=2),
              faithfulness=FaithfulnessOptions(limit=20, n_boot=50, sanity_samples=2, steps=4))
    assert res.report is not None
    return res.report


def _open(driver: Any, report: Path, fragment: str = "") -> Any:
    driver.get("about:blank")
    driver.get(report.as_uri() + fragment)
    for _ in range(500):
        if driver.execute_script(READY):
            return driver
        time.sleep(0.02)
    raise AssertionError(f"the explorer never became ready: {driver.get_log('browser')}")


def _choose(driver: Any, select_id: str, value: str) -> None:
    driver.execute_script(
        "const s = document.getElementById(arguments[0]); s.value = arguments[1];"
        "s.dispatchEvent(new Event('change'));", select_id, value)


def _predictions(report: Path) -> dict[str, np.ndarray]:
    with np.load(report.parent / "cams" / "gradcam.npz") as f:
        return {k: f[k] for k in ("indices", "labels", "predicted")}


def _count(driver: Any) -> str:
    return str(driver.execute_script(
        "return document.getElementById('explorer-count').textContent"))


def test_every_explained_sample_is_counted(driver: Any, hostile_report: Path) -> None:
    page = _open(driver, hostile_report)
    assert _count(page) == "40 of 40 samples"
    assert [i for i, _ in page.execute_script(CARDS)] == list(range(40))  # one page, index order
    options = page.execute_script(
        "return Array.from(document.querySelectorAll('#explorer-true option'))"
        ".map(o => o.textContent)")
    assert XSS in options  # a class name is an option's text, never markup
    assert page.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0


def test_a_class_and_wrong_shows_exactly_those_samples(driver: Any,
                                                       hostile_report: Path) -> None:
    p = _predictions(hostile_report)
    wrong = p["labels"] != p["predicted"]
    assert wrong.any() and (~wrong).any()  # two epochs: a filter with something to leave out
    cls = int(np.bincount(p["labels"][wrong]).argmax())
    expected = p["indices"][wrong & (p["labels"] == cls)].tolist()
    page = _open(driver, hostile_report)
    _choose(page, "explorer-true", str(cls))
    _choose(page, "explorer-correct", "wrong")
    assert sorted(i for i, _ in page.execute_script(CARDS)) == sorted(expected)
    assert _count(page) == f"{len(expected)} of 40 samples"
    _choose(page, "explorer-correct", "correct")
    right = p["indices"][~wrong & (p["labels"] == cls)].tolist()
    assert sorted(i for i, _ in page.execute_script(CARDS)) == sorted(right)


def test_sorting_by_a_faithfulness_value_follows_results_json(driver: Any,
                                                              hostile_report: Path) -> None:
    results = json.loads((hostile_report.parent / "faithfulness" / "results.json").read_text())
    key = next(k for k in results["metric_keys"] if k.startswith("deletion"))
    values = dict(zip(results["per_sample"]["indices"],
                      results["per_sample"]["values"]["gradcampp"][key], strict=True))
    page = _open(driver, hostile_report,
                 f"#explorer?s=metric%7C{key}%7Cgradcampp&d=desc")
    cards = page.execute_script(CARDS)
    scored = [(i, v) for i, v in cards if v != ""]
    assert [i for i, _ in scored] == sorted(values, key=lambda i: (-values[i], i))
    assert all(float(v) == values[i] for i, v in scored)  # the very numbers of results.json
    assert [i for i, v in cards if v == ""] == list(range(30, 40))  # not scored: last


def test_the_view_is_kept_in_the_url_and_restored_from_it(driver: Any,
                                                          hostile_report: Path) -> None:
    p = _predictions(hostile_report)
    page = _open(driver, hostile_report)
    _choose(page, "explorer-correct", "wrong")
    _choose(page, "explorer-sort", "conf")
    fragment = page.execute_script("return location.hash")
    assert "c=wrong" in fragment and "s=conf" in fragment
    again = _open(driver, hostile_report, fragment)
    cards = again.execute_script(CARDS)
    assert sorted(i for i, _ in cards) == p["indices"][p["labels"] != p["predicted"]].tolist()
    conf = [float(v) for _, v in cards]
    assert conf == sorted(conf)
    assert again.execute_script("return document.getElementById('explorer-correct').value") \
        == "wrong"


def test_keyboard_opens_steps_and_closes_a_card(driver: Any, hostile_report: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    def press(key: str) -> None:  # to whatever has the focus, as a user's keyboard does
        ActionChains(page).send_keys(key).perform()

    page = _open(driver, hostile_report)
    page.execute_script("document.querySelector('#explorer-cards .card').focus()")
    press(Keys.ARROW_RIGHT)
    assert page.execute_script("return document.activeElement.dataset.index") == "1"
    press(Keys.ENTER)
    hidden = "return document.getElementById('explorer-modal').hidden"
    assert page.execute_script(hidden) is False
    assert "open=1" in page.execute_script("return location.hash")
    press(Keys.ARROW_RIGHT)
    assert "open=2" in page.execute_script("return location.hash")
    press(Keys.ESCAPE)
    assert page.execute_script(hidden) is True
    assert "open=" not in page.execute_script("return location.hash")


def _canvas_stats(driver: Any) -> list[list[float]]:
    """Per canvas of the first card: [pixel std, distinct colours]."""
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('#explorer-cards .card')[0]
                          .querySelectorAll('canvas')).map(c => {
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let s = 0, s2 = 0; const seen = new Set();
          for (let k = 0; k < d.length; k += 4) {
            const v = d[k] + d[k + 1] + d[k + 2]; s += v; s2 += v * v;
            seen.add(d[k] << 16 | d[k + 1] << 8 | d[k + 2]);
          }
          const n = d.length / 4;
          return [Math.sqrt(Math.max(0, s2 / n - (s / n) ** 2)), seen.size];
        });""")


def test_signal_cards_draw_the_input_and_every_map(driver: Any, hostile_report: Path) -> None:
    page = _open(driver, hostile_report)
    stats = _canvas_stats(page)
    assert len(stats) == 4  # the input and three methods
    assert all(std > 5 and colours > 2 for std, colours in stats), stats
    assert min(c for _, c in stats[1:]) > stats[0][1]  # a map adds colour to the line


def test_image_cards_draw_tiles_and_maps_without_errors(driver: Any,
                                                        image_report: Path) -> None:
    page = _open(driver, image_report)
    assert _count(page) == "27 of 27 samples"
    for _ in range(100):  # thumbnails decode asynchronously
        stats = _canvas_stats(page)
        if all(std > 5 for std, _ in stats):
            break
        time.sleep(0.05)
    assert len(stats) == 4 and all(std > 5 and colours > 20 for std, colours in stats), stats
    errors = [e for e in page.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors
