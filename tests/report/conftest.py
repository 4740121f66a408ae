"""A real, tiny MNIST-1D run folder with every stage's artifacts, built once per session.

``cnnlens run`` on the full test split takes over a minute on 2 cores (faithfulness
dominates), so the later stages run on the first samples only.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cnnlens.cli import main
from cnnlens.data.mnist1d import load_mnist1d
from cnnlens.evaluate.stage import evaluate_run
from cnnlens.explain.options import ExplainOptions
from cnnlens.explain.stage import run_explain
from cnnlens.faithfulness.options import FaithfulnessOptions
from cnnlens.faithfulness.stage import run_faithfulness
from cnnlens.pipeline import run
from cnnlens.rundir.folder import RunDir
from support import MATH, XSS, require, unavailable

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,2400"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "run"
    assert main(["train", "--epochs", "1", "--out", str(out), "--device", "cpu"]) == 0
    run = RunDir(out)
    evaluate_run(run, device="cpu")
    run_explain(out, limit=60, per_class=2, max_failures=3)
    run_faithfulness(out, limit=40, n_boot=100, sanity_samples=4, steps=4)
    return out


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
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
