"""The report's explorer: page size with and without it, and time to interactive.

    .venv/bin/python bench/report_explorer.py RUN_DIR [RUN_DIR ...] [--loads 3]

For each run folder (explained, ideally scored for faithfulness too) it builds the report
twice, with the explorer and with ``--explorer-limit 0``, and opens the first in headless
Chromium ``--loads`` times: "interactive" is ``performance.now()`` when the explorer set
``data-ready`` (its cards drawn, its controls live), from navigation start; the median is
shown. Needs Chromium and ChromeDriver (``scripts/setup.sh test`` installs them).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["TQDM_DISABLE"] = "1"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line
from cnnlens.report import build_report

READY = "const a = document.getElementById('explorer-app'); return a ? a.dataset.ready : null"


def _driver(profile: str):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser = next(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                   if shutil.which(b))
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,2400",
                 f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")),
                            options=opts)


def interactive_ms(driver, page: Path) -> float:  # type: ignore[no-untyped-def]
    driver.get("about:blank")
    driver.get(page.as_uri())
    for _ in range(1000):
        ready = driver.execute_script(READY)
        if ready:
            return float(ready)
        time.sleep(0.01)
    raise RuntimeError(f"{page}: the explorer never became ready")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--loads", type=int, default=3)
    args = ap.parse_args()
    print(machine_line())
    print("| run | samples shown | report without explorer | with explorer | interactive "
          "(median ms) |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        driver = _driver(str(Path(tmp) / "profile"))
        try:
            for run in args.runs:
                plain = build_report(run, out=Path(tmp) / "plain.html", explorer_limit=0)
                full = build_report(run, out=Path(tmp) / "full.html")
                ms = [interactive_ms(driver, full) for _ in range(args.loads)]
                shown = driver.execute_script(
                    "return document.getElementById('explorer-count').textContent")
                print(f"| {run.name} | {shown} | {plain.stat().st_size / 1e6:.2f} MB | "
                      f"{full.stat().st_size / 1e6:.2f} MB | {statistics.median(ms):.0f} |")
        finally:
            driver.quit()


if __name__ == "__main__":
    main()
