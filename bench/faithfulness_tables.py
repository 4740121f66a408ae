"""The study's Table I, reproduced with intervals, a random baseline and timings; ROAD, the
Table I metric under imputation, and a verdict across metrics.

HMT: the course's Keras VGG-7 (``keras/HMT.h5``) imported, all 496 ``HMT_test`` tiles at
224 px, ``frac = 0.9``, Grad-CAM at ``max_pooling2d_1``, Grad-CAM++ and Ablation-CAM at
``conv2d_3``, all on the softmax probability (what the Keras model differentiated; the
logit variants are added with ``--with-logit``). MNIST-1D: a ``study``-recipe run folder
(``--mnist-run``; without one, the course's ``keras/MNIST1D.h5`` is imported instead and the
output says so), all 1000 test signals, layer ``conv1d_2``, ``frac`` 0.15 and 0.3.

With ``--road`` each task also gets: the Table I metric with removed positions imputed
(``baseline="road"``), ROAD (MoRF/LeRF at 10, 30, 50, 70, 90 %), a verdict over every
output (zero-filled and imputed), and ROAD's own timing (3 methods, MoRF + LeRF). HMT's
ROAD runs on every ``--hmt-road-stride``-th tile (a 224 px sparse solve takes up to ~0.7 s;
the projected time for all 496 tiles is printed).

Prints markdown and writes it to ``bench/results/faithfulness_tables.md``::

    .venv/bin/python bench/faithfulness_tables.py [--task hmt|mnist1d|both] [--mnist-run RUN]
        [--road] [--hmt-road-stride K]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

# The study's Table I (HMT, frac 0.9, their own retrained VGG-7, 480 of 496 test tiles).
STUDY_HMT = {
    "gradcam": (47.436, 22.083),
    "gradcampp": (50.921, 19.792),
    "ablationcam": (43.341, 30.469),
}


def _study_cell(label: str) -> str:
    method = label.split("@")[0].split(":")[0]
    if label.endswith(":logit") or method not in STUDY_HMT:
        return "–"
    drop, inc = STUDY_HMT[method]
    return f"{drop:.3f} / {inc:.3f}"


def _load() -> str:
    return "load average " + ", ".join(f"{v:.1f}" for v in os.getloadavg())


def _run_table(run: Path, *, methods: list[str], fracs: list[float], metrics: list[str],
               data_dir: str | None, sanity: bool, device: str, **kw: Any) -> dict[str, Any]:
    from cnnlens.faithfulness import run_faithfulness

    load0 = _load()
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_faithfulness(run, methods=methods, fracs=fracs, metrics=metrics,
                           data_dir=data_dir, device=device, sanity=sanity,
                           **{"steps": 10, "use_saved": False, **kw})
    res["bench_load"] = f"{load0} before, {_load()} after"
    res["bench_seconds"] = time.perf_counter() - t0
    res["bench_cpu_seconds"] = time.process_time() - c0
    return res


def _timing_lines(res: dict[str, Any]) -> list[str]:
    s = res["seconds"]
    cams = ", ".join(f"{k} {v:.1f}" for k, v in s["cams"].items())
    met = ", ".join(f"{k} {sum(v.values()):.1f}" for k, v in s["metrics"].items())
    lines = [
        f"- whole stage call: **{res['bench_seconds']:.1f} s wall**, "
        f"{res['bench_cpu_seconds']:.1f} s CPU (all threads; wall > CPU / threads means the "
        f"machine was shared) — wall split: data + model load {s['load']:.1f} s; "
        f"CAMs: {cams}; metrics: {met}; statistics {s['stats']:.1f} s"
        + (f"; sanity check {s['sanity']:.1f} s" if "sanity" in s else "") + ")",
        f"- machine: {res.get('bench_load', '?')}",
    ]
    imp = res.get("imputation") or {}
    if imp.get("solved") or imp.get("reused"):
        lines.append(f"- imputed inputs: {imp['solved']} solved and scored, {imp['reused']} "
                     "reused from another metric's identical removal")
    for metric, v in (res.get("projected_seconds") or {}).items():
        lines.append(f"- not run: {metric}, projected {v:.0f} s on this machine")
    return lines


def _road_seconds(res: dict[str, Any]) -> str:
    per = {label: v.get("road") for label, v in res["seconds"]["metrics"].items()}
    methods = {k: v for k, v in per.items() if v is not None and k != "random"}
    total = sum(methods.values())
    return (f"ROAD for {len(methods)} methods × {res['n']} samples × "
            f"{len(res['request']['percentages'])} percentages, MoRF + LeRF: **{total:.1f} s** "
            f"({', '.join(f'{k} {v:.1f}' for k, v in methods.items())}; random "
            f"{per.get('random') or 0:.1f} s more)")


def _verdict_lines(res: dict[str, Any]) -> list[str]:
    v = res.get("verdict") or {}
    lines = [f"**Verdict** ({len(v.get('metrics', []))} outputs): {v.get('text', '–')}", ""]
    for key, rows in (v.get("rankings") or {}).items():
        order = " > ".join(f"{r['method']}{'=' if r['tied_with_best'] else ''} "
                           f"{r['mean']:.3g}" for r in rows)
        lines.append(f"- {key}: {order}")
    return [*lines, ""]


def _combined(parts: dict[str, dict[str, Any]], task: str) -> list[str]:
    """One verdict over the outputs of several stage runs on the same samples."""
    from cnnlens.faithfulness import metrics as M
    from cnnlens.faithfulness.verdict import build_verdict

    summary: dict[str, dict[str, Any]] = {}
    tests: list[dict[str, Any]] = []
    keys: list[str] = []
    higher: dict[str, bool] = {}
    for tag, res in parts.items():
        for k in res["metric_keys"]:
            name = f"{k} [{tag}]"
            keys.append(name)
            higher[name.partition("@")[0]] = M.OUTPUTS[k.partition("@")[0]].higher_is_better
            higher[name] = higher[name.partition("@")[0]]
            for m, per in res["summary"].items():
                summary.setdefault(m, {})[name] = per[k]
        tests += [{**t, "metric": f"{t['metric']} [{tag}]"} for t in res["tests"]]
    ns = {res["n"] for res in parts.values()}
    v = build_verdict(summary, tests, keys, higher_is_better=higher, task=task,
                      n=ns.pop() if len(ns) == 1 else None)
    return _verdict_lines({"verdict": v})


def _sanity_lines(res: dict[str, Any]) -> list[str]:
    out = []
    for label, s in res.get("sanity", {}).items():
        corr = ", ".join(f"{n} {r:.2f}" for n, r in zip(s["layers"], s["spearman_mean"],
                                                         strict=True))
        final = s.get("final") or {}
        seeds = s.get("seeds", [])
        per_seed = ", ".join(f"{row[-1]:.2f}" for row in s.get("per_seed", []))
        out.append(f"- sanity `{label}` (Spearman vs trained maps, n={s['n']}, mean over "
                   f"{len(seeds)} seeds): {corr}; final {final.get('mean', float('nan')):.2f} "
                   f"[{final.get('low', float('nan')):.2f}, {final.get('high', float('nan')):.2f}]"
                   f" (per seed: {per_seed}) — **{s.get('verdict', '?')}**")
    return out


def hmt(args: argparse.Namespace, work: Path) -> list[str]:
    from cnnlens.explain.stage import run_explain
    from cnnlens.faithfulness.table import format_table, format_tests
    from cnnlens.pipeline.keras_run import import_keras

    methods = ["gradcam@max_pooling2d_1:prob", "gradcampp@conv2d_3:prob",
               "ablationcam@conv2d_3:prob"]
    if args.road and args.hmt_run:  # a run folder with cams/: everything on one tile subset
        return _hmt_road_subset(args, Path(args.hmt_run), methods)
    run = import_keras(DATA / "keras" / "HMT.h5", task="hmt", out_dir=work / "hmt")
    t0 = time.perf_counter()
    # the maps once, as `cnnlens run` does before faithfulness; every table below reuses them
    run_explain(run, data_dir=str(DATA / "hmt"), figures=False, device=args.device,
                layer={"gradcam": "max_pooling2d_1", "gradcampp": "conv2d_3",
                       "ablationcam": "conv2d_3"}, score="prob")
    explain_s = time.perf_counter() - t0
    if args.with_logit:
        methods += ["gradcam@max_pooling2d_1:logit", "gradcampp@conv2d_3:logit",
                    "ablationcam@conv2d_3:logit"]
    res = _run_table(run, methods=methods, fracs=[0.9], metrics=args.hmt_metrics,
                     data_dir=str(DATA / "hmt"), sanity=args.sanity, device=args.device,
                     use_saved=True)
    lines = [
        "## HMT (imported `keras/HMT.h5`, all HMT_test tiles, 224 px, frac 0.9)",
        "",
        f"n = {res['n']}, model accuracy {res['accuracy']:.4f} "
        f"({round(res['accuracy'] * res['n'])} / {res['n']} correct); targets = predicted "
        "class; drop / increase in %, mean [95 % bootstrap CI].",
        "",
        format_table(res),
        "",
        "Study's Table I (drop / increase, %, their retrained VGG-7, 480 tiles, no intervals):",
        "",
        "| method | this run: drop / increase | study: drop / increase | positions kept (mean) |",
        "|---|---|---|---|",
    ]
    for label, per in res["summary"].items():
        d, i = per["drop@0.9"]["mean"], per["increase@0.9"]["mean"]
        k = res["kept_fraction"].get(label, {}).get("0.9", float("nan"))
        lines.append(f"| {label} | {d:.3f} / {i:.3f} | {_study_cell(label)} | {k:.3f} |")
    lines += ["", "Paired tests (Holm-corrected per metric):", "", "```",
              format_tests(res), "```", ""]
    lines += [f"- maps computed once beforehand by the explain stage: {explain_s:.1f} s; the "
              "stage call below reuses them (as inside `cnnlens run`)"]
    lines += _timing_lines(res) + _sanity_lines(res) + [""]
    if args.road and res.get("verdict"):
        lines += _verdict_lines(res)
    if args.random_grids:
        lines += _random_grids(run, args.random_grids)
    if args.road:
        lines += _hmt_road(args, run, methods, res)
    return lines


def _hmt_road(args: argparse.Namespace, run: Path, methods: list[str],
              zero: dict[str, Any]) -> list[str]:
    from cnnlens.faithfulness.table import format_table

    imputed = _run_table(run, methods=methods, fracs=[0.9], metrics=["drop_increase"],
                         data_dir=str(DATA / "hmt"), sanity=False, device=args.device,
                         baseline="road", use_saved=True)
    lines = ["### HMT: the Table I metric with removed pixels imputed (ROAD's noisy linear "
             "imputation, sigma 0.01)", "", format_table(imputed), ""]
    lines += [*_timing_lines(imputed), ""]
    lines += ["### HMT: verdict over the Table I metric, zero-filled and imputed "
              f"({zero['n']} tiles)", ""]
    lines += _combined({"zero": zero, "road": imputed}, "HMT (imported HMT.h5), test split")
    print("\n".join(lines), flush=True)  # the long part follows: keep what is done
    try:
        lines += _hmt_road_subset(args, run, methods)
    except Exception as exc:  # a bench keeps the tables it has; the error is in the output
        lines += [f"ROAD subset failed: {type(exc).__name__}: {exc}", ""]
    return lines


def _hmt_road_subset(args: argparse.Namespace, run: Path, methods: list[str]) -> list[str]:
    """ROAD on every k-th HMT test tile, computed directly (the stage takes a prefix)."""
    from cnnlens.explain.stage import load_cams
    from cnnlens.faithfulness import metrics as M
    from cnnlens.faithfulness import stats as S
    from cnnlens.faithfulness.comparisons import pairwise_tests
    from cnnlens.faithfulness.options import parse_method
    from cnnlens.faithfulness.table import format_table
    from cnnlens.faithfulness.verdict import build_verdict
    from cnnlens.rundir.folder import RunDir

    k = args.hmt_road_stride
    model, _ = RunDir(run).load_model()
    data = RunDir(run).load_data(data_dir=str(DATA / "hmt"), augment=False)
    idx = list(range(0, len(data.test), k))  # type: ignore[arg-type]
    x = torch.stack([data.test[i][0] for i in idx])  # type: ignore[index]
    labels = np.asarray([int(data.test[i][1]) for i in idx])  # type: ignore[index]
    load0 = _load()
    y, t = M.target_probs(model, x)
    maps: dict[str, torch.Tensor] = {}
    for spec in map(parse_method, methods):
        saved = load_cams(run, spec.method)  # the explain stage's maps (predicted targets)
        if str(saved["layer"]) != spec.layer or not np.array_equal(saved["targets"][idx],
                                                                    t.numpy()):
            raise SystemExit(f"cams/{spec.method}.npz does not match {spec.label}")
        maps[spec.label] = torch.from_numpy(np.asarray(saved["maps"])[idx]).float()
    maps["random"] = M.random_maps((x.shape[0], *x.shape[2:]), seed=0, cells=(56, 56))
    scorer = M.ImputedScores(noise=0.01, seed=0)
    per: dict[str, dict[str, np.ndarray]] = {m: {} for m in maps}
    secs: dict[str, dict[str, float]] = {"zero": {}, "road": {}, "ROAD": {}}
    for label, m in maps.items():
        for base in ("zero", "road"):
            t0 = time.perf_counter()
            di = M.drop_increase(model, x, m, frac=0.9, targets=t, base_scores=y,
                                 baseline=base, imputer=scorer)
            secs[base][label] = time.perf_counter() - t0
            per[label][f"drop@0.9 [{base}]"] = di.values["drop"]
            per[label][f"increase@0.9 [{base}]"] = di.values["increase"]
        t0 = time.perf_counter()
        res = M.road(model, x, m, targets=t, base_scores=y, imputer=scorer)
        secs["ROAD"][label] = time.perf_counter() - t0
        for o in ("road_morf", "road_lerf", "road_gap"):
            per[label][o] = res.values[o]
    keys = list(per["random"])

    def out_spec(key: str) -> Any:
        return M.OUTPUTS[key.partition("@")[0].partition(" ")[0]]

    summary = {m: {key: S.bootstrap_ci(v[key] * out_spec(key).scale, n_boot=2000) for key in keys}
               for m, v in per.items()}
    tests = []
    for key in keys:
        base = key.partition("@")[0].partition(" ")[0]
        renamed = {m: {base: v[key]} for m, v in per.items()}
        tests += [{**tt, "metric": key} for tt in pairwise_tests(renamed, [base], 0.05)]
    higher = {key: out_spec(key).higher_is_better for key in keys}
    v = build_verdict(summary, tests, keys, higher_is_better=higher,
                      task=f"HMT (imported HMT.h5), every {k}th test tile", n=len(idx))
    meth = sum(sv for lab, sv in secs["ROAD"].items() if lab != "random")
    lines = [f"## HMT: Table I zero-filled vs imputed, and ROAD, on every {k}th test tile "
             f"({len(idx)} tiles, per class {np.bincount(labels).tolist()})", "",
             "Maps: the explain stage's (Grad-CAM at max_pooling2d_1, Grad-CAM++ and "
             "Ablation-CAM at conv2d_3, probability); random: 56×56 grid, seed 0. Table I at "
             "frac 0.9 with removed pixels set to 0 (the study) or imputed (ROAD's noisy "
             "linear imputation, sigma 0.01); ROAD at 10, 30, 50, 70, 90 % removed.", "",
             format_table({"summary": summary, "metric_keys": keys, "tests": tests}), ""]
    lines += _verdict_lines({"verdict": v})
    part = {b: sum(d.values()) for b, d in secs.items()}
    lines += [f"- time (s), 4 maps: Table I zero {part['zero']:.1f}, Table I imputed "
              f"{part['road']:.1f}, ROAD {part['ROAD']:.1f}",
              f"- ROAD time, 3 methods × {len(idx)} tiles × 5 percentages × MoRF + LeRF: "
              f"**{meth:.1f} s** ({', '.join(f'{a} {b:.1f}' for a, b in secs['ROAD'].items())});"
              f" projected for all 496 tiles: {meth * 496 / len(idx) / 60:.1f} min (at this "
              f"load); imputed inputs solved {scorer.solved}, reused {scorer.reused}",
              f"- machine: {load0} before, {_load()} after", ""]
    return lines


def _random_grids(run: Path, grids: list[int]) -> list[str]:
    """The random baseline on coarser or finer grids: how much the mask's shape matters."""
    from cnnlens.faithfulness import metrics as M
    from cnnlens.rundir.folder import RunDir

    model, _ = RunDir(run).load_model()
    data = RunDir(run).load_data(data_dir=str(DATA / "hmt"), augment=False)
    x = torch.stack([data.test[i][0] for i in range(len(data.test))])  # type: ignore[arg-type]
    y, t = M.target_probs(model, x)
    lines = ["Random baseline vs. the grid its noise is drawn on (frac 0.9, seed 0):", "",
             "| grid | drop (%) | increase (%) | positions kept |", "|---|---|---|---|"]
    for g in grids:
        maps = M.random_maps((x.shape[0], *x.shape[2:]), seed=0, cells=(g, g))
        r = M.drop_increase(model, x, maps, frac=0.9, targets=t, base_scores=y)
        lines.append(f"| {g}x{g} | {100 * r.values['drop'].mean():.2f} | "
                     f"{100 * r.values['increase'].mean():.2f} | {r.values['kept'].mean():.3f} |")
    return [*lines, ""]


def mnist1d(args: argparse.Namespace, work: Path) -> list[str]:
    from cnnlens.faithfulness.table import format_table, format_tests
    from cnnlens.pipeline.keras_run import import_keras
    from cnnlens.rundir.folder import RunDir

    if args.mnist_run:
        run = Path(args.mnist_run)
        cfg = RunDir(run).read_config()
        recipe = cfg.get("recipe") or {}
        what = (f"run folder `{run.name}` (recipe {recipe.get('name', '?')}, "
                f"seed {cfg.get('seed', '?')})")
    else:
        run = import_keras(DATA / "keras" / "MNIST1D.h5", task="mnist1d", out_dir=work / "m1d")
        what = "imported `keras/MNIST1D.h5` (no --mnist-run given)"
    methods = ["gradcam@conv1d_2", "gradcampp@conv1d_2", "ablationcam@conv1d_2"]
    table = _run_table(run, methods=methods, fracs=[0.15, 0.3], metrics=["drop_increase"],
                       data_dir=None, sanity=False, device=args.device)
    lines = [
        f"## MNIST-1D ({what}, all test signals, layer conv1d_2, logit)",
        "",
        f"n = {table['n']}, model accuracy {table['accuracy']:.4f}; targets = predicted class.",
        "",
        format_table(table),
        "",
        "```",
        format_tests(table),
        "```",
        "",
        "Speed of the table alone (maps + drop/increase at both fracs + statistics, no "
        "sanity check, no figures):",
        "",
    ]
    lines += _timing_lines(table)
    if args.full_mnist:
        full = _run_table(run, methods=methods, fracs=[0.15, 0.3],
                          metrics=["drop_increase", "confidence", "deletion", "insertion"],
                          data_dir=None, sanity=True, device=args.device)
        lines += ["", "All metrics (deletion/insertion: 10 steps, zero baseline):", "",
                  format_table(full), ""]
        lines += _timing_lines(full) + _sanity_lines(full)
    if args.road:
        lines += _mnist_road(args, run, methods)
    return [*lines, ""]


def _mnist_road(args: argparse.Namespace, run: Path, methods: list[str]) -> list[str]:
    from cnnlens.faithfulness.table import format_table

    every = ["drop_increase", "confidence", "deletion", "insertion", "road"]
    full = _run_table(run, methods=methods, fracs=[0.15, 0.3], metrics=every, data_dir=None,
                      sanity=True, device=args.device)
    imputed = _run_table(run, methods=methods, fracs=[0.15, 0.3],
                         metrics=["drop_increase", "deletion", "insertion"], data_dir=None,
                         sanity=False, device=args.device, baseline="road")
    road_only = _run_table(run, methods=methods, fracs=[0.15], metrics=["road"],
                           data_dir=None, sanity=False, device=args.device, figures=False)
    lines = ["### MNIST-1D: every metric (zero-filled removal; deletion/insertion 10 steps) "
             "and ROAD", "", format_table(full), ""]
    lines += _timing_lines(full) + _sanity_lines(full) + [""] + _verdict_lines(full)
    lines += ["### MNIST-1D: Table I metric and deletion/insertion with removed positions "
              "imputed (ROAD's noisy linear imputation, sigma 0.01)", "",
              format_table(imputed), ""]
    lines += [*_timing_lines(imputed), ""]
    lines += ["### MNIST-1D: verdict over every output, zero-filled and imputed", ""]
    lines += _combined({"zero": full, "road": imputed}, "MNIST-1D (study run), test split")
    lines += [f"- {_road_seconds(road_only)}; whole stage call "
              f"{road_only['bench_seconds']:.1f} s ({road_only['bench_load']})", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=["hmt", "mnist1d", "both"], default="both")
    p.add_argument("--mnist-run", default=None, help="a study-recipe MNIST-1D run folder")
    p.add_argument("--with-logit", action="store_true", help="also score logit-based maps (HMT)")
    p.add_argument("--hmt-metrics", nargs="+", default=["drop_increase"],
                   help="metrics for the HMT table (default: drop_increase)")
    p.add_argument("--sanity", action="store_true", help="run the sanity check on HMT too")
    p.add_argument("--random-grids", nargs="*", type=int, default=[],
                   help="also score HMT random maps drawn on these grids, e.g. 7 14 28 224")
    p.add_argument("--full-mnist", action="store_true",
                   help="also run every metric and the sanity check on MNIST-1D")
    p.add_argument("--road", action="store_true",
                   help="also ROAD, the Table I metric under imputation and the verdicts")
    p.add_argument("--hmt-run", default=None,
                   help="with --road: a run folder of the imported HMT.h5 whose cams/ hold the "
                   "explain stage's maps; everything is then scored on one tile subset")
    p.add_argument("--hmt-road-stride", type=int, default=16,
                   help="HMT ROAD on every K-th test tile (default 16: 31 tiles)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "faithfulness_tables.md"))
    args = p.parse_args(argv)
    print(machine_line())  # every figure names the CPU it was measured on
    if not DATA.is_dir():
        print(f"shared data folder {DATA} is absent", file=sys.stderr)
        return 1
    lines = [
        "# Faithfulness tables",
        "",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
        f"{platform.processor() or platform.machine()}, python {platform.python_version()}",
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="cnnlens-faith-bench-") as tmp:
        if args.task in ("mnist1d", "both"):
            lines += mnist1d(args, Path(tmp))
        if args.task in ("hmt", "both"):
            lines += hmt(args, Path(tmp))
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
