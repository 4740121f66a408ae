"""``cnnlens data``: download, split and inspect image data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cnnlens.errors import CnnlensError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from cnnlens.data.download import SOURCES

    p = sub.add_parser("data", help="download, split and inspect image data",
                       description="Get and check image data sets.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")

    d = dsub.add_parser(
        "download", help="download a data set (checksum verified, resumable)",
        description="Download, verify (SHA-384), extract and split a published data set. "
        "Running it again resumes an interrupted download and skips finished steps.")
    d.add_argument("source", help=f"data set ({', '.join(SOURCES)})")
    d.add_argument("--to", required=True, help="folder to download into")
    d.add_argument("--url", default=None, help="download from this URL instead (same checksum)")
    d.add_argument("--no-split", dest="split", action="store_false",
                   help="only download and extract; do not split into train/test")
    d.add_argument("--seed", type=int, default=0, help="seed of the train/test split (0)")
    d.add_argument("--test-per-class", type=int, default=None,
                   help="test images per class (hmt: 62)")
    d.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds (30)")
    s = dsub.add_parser(
        "split", help="split <DIR>/<class>/<files> into train/test folders",
        description="Split a class-folder layout (e.g. the original 8 HMT folders) into "
        "<OUT>/HMT_train/<class>/ and <OUT>/HMT_test/<class>/, deterministically.")
    s.add_argument("src", help="folder holding <class>/<image files> (or one folder that does)")
    s.add_argument("--out", required=True, help="new (or empty) folder for the split")
    s.add_argument("--test-per-class", type=int, default=62, help="test images per class (62)")
    s.add_argument("--seed", type=int, default=0, help="split seed (0)")
    s.add_argument("--copy", action="store_true", help="copy files instead of hard-linking")

    i = dsub.add_parser(
        "info", help="count images per class and skipped files",
        description="Count the images of DIR/<split>/<class>/ (or DIR/<class>/); with --check, "
        "decode every file and list the unreadable ones.")
    i.add_argument("dir", help="data folder")
    i.add_argument("--check", action="store_true", help="decode every image (slower)")
    i.add_argument("--image-size", type=int, default=224, help="size used by --check (224)")

    actions = {"download": _download, "split": _split, "info": _info}

    def dispatch(args: argparse.Namespace) -> int:
        action = actions.get(args.data_command or "")
        if action is None:
            p.print_help()
            return 2
        return action(args)

    p.set_defaults(func=dispatch)


def _download(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cnnlens.data.download import SOURCES, fetch_source
    from cnnlens.errors import unknown_choice

    if args.source not in SOURCES:
        raise unknown_choice("data set", args.source, SOURCES)
    source = SOURCES[args.source]
    bar: Any = tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=source.filename,
                    file=sys.stderr, dynamic_ncols=True, leave=False,
                    disable=None)  # no bar when stderr is not a terminal

    def progress(done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        out = fetch_source(source, args.to, url=args.url, progress=progress, split=args.split,
                           seed=args.seed, test_per_class=args.test_per_class,
                           timeout=args.timeout)
    finally:
        bar.close()
    print(f"{source.name}: data ready in {out}", flush=True)
    if args.split:
        print(f"use it with --data-dir {out}", flush=True)
    else:
        print(f"split it with: cnnlens data split {out} --out {Path(args.to) / source.name}",
              flush=True)
    print(f"please cite: {source.citation}", flush=True)
    return 0


def _split(args: argparse.Namespace) -> int:
    from cnnlens.data.download import split_dataset

    manifest = split_dataset(args.src, args.out, test_per_class=args.test_per_class,
                             seed=args.seed, link=not args.copy)
    n_train = sum(len(v) for v in manifest["train"].values())
    n_test = sum(len(v) for v in manifest["test"].values())
    print(f"split {manifest['source']} into {args.out}: {n_train} train, {n_test} test "
          f"({len(manifest['train'])} classes, seed {args.seed})", flush=True)
    if manifest["skipped_non_image"]:
        print(f"skipped {len(manifest['skipped_non_image'])} hidden or non-image entries",
              flush=True)
    return 0


def _info(args: argparse.Namespace) -> int:
    from cnnlens.data.image_files import scan_split
    from cnnlens.data.images import ImageFolderDataset

    root = Path(args.dir)
    if not root.is_dir():
        raise CnnlensError(f"{root}: not a folder")
    splits = [p for p in sorted(root.iterdir())
              if p.is_dir() and not p.name.startswith(".")
              and any(q.is_dir() and not q.name.startswith(".") for q in p.iterdir())]
    if not splits:
        splits = [root]
    for folder in splits:
        scan = scan_split(folder)
        counts = scan.counts()
        print(f"{folder}: {len(scan.files)} images in {len(counts)} classes", flush=True)
        for name, n in counts.items():
            print(f"  {name}: {n}", flush=True)
        if scan.skipped:
            print(f"  skipped {len(scan.skipped)} hidden or non-image entries", flush=True)
        if args.check:
            ds = ImageFolderDataset(folder, size=args.image_size, skip_bad=True)
            for bad in ds.skipped_bad:
                print(f"  unreadable: {bad['error']}", flush=True)
            print(f"  {len(ds.skipped_bad)} unreadable files", flush=True)
    return 0
