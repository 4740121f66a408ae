"""``cnnlens explain --inputs`` end to end on the 496 HMT test tiles: where the time goes.

Runs the command in this process (as a user would type it) on ``HMT_test/*/*.tif`` with the
course's imported ``keras/HMT.h5`` and the study's three methods, then prints the machine
line and the split the command records in ``OUT/summary.json`` (load, decode, CAMs,
faithfulness, overlays, html) with the wall time around the whole call.

    .venv/bin/python bench/loose_inputs.py [--faithfulness-steps N] [--threads T]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine_line

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PHASES = ("load", "decode", "cams", "faithfulness", "overlays", "html")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", default=str(DATA / "hmt" / "HMT_test" / "*" / "*.tif"),
                    help="glob of the input files")
    ap.add_argument("--model", default=str(DATA / "keras" / "HMT.h5"))
    ap.add_argument("--faithfulness-steps", default=None,
                    help="passed to the command (default: the command's)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    ap.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    args = ap.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    from cnnlens.cli import main as cnnlens

    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_line())
    files = sorted(glob.glob(args.tiles))
    if not files:
        print(f"no files match {args.tiles}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or Path(tmp) / "out")
        argv = ["explain", "--model", args.model, "--inputs", *files, "--out", str(out),
                "--methods", "gradcam", "gradcampp", "ablationcam"]
        if args.faithfulness_steps is not None:
            argv += ["--faithfulness-steps", str(args.faithfulness_steps)]
        shown = " ".join(a for a in argv if a not in files[1:])
        print(f"command: cnnlens {shown.replace(files[0], args.tiles)}")
        t0 = time.perf_counter()
        code = cnnlens(argv)
        wall = time.perf_counter() - t0
        if code:
            return code
        summary = json.loads((out / "summary.json").read_text())
        page_mb = (out / "index.html").stat().st_size / 2**20
    t = summary["timings"]
    print(f"\n{summary['n']} inputs, methods {', '.join(summary['methods'])} at "
          f"{', '.join(sorted(set(summary['layers'].values())))}, faithfulness steps "
          f"{summary['faithfulness_steps']} (baseline {summary['faithfulness_baseline']}), "
          f"index.html {page_mb:.1f} MB, load average after {os.getloadavg()[0]:.2f}\n")
    print("| phase | seconds | share |")
    print("|---|---:|---:|")
    for phase in PHASES:
        print(f"| {phase} | {t[phase]:.1f} | {t[phase] / wall:.0%} |")
    print(f"| **total (wall, whole command)** | **{wall:.1f}** | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
