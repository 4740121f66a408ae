"""``cnnlens.pipeline.run``: the whole job from Python, the same folder as the CLI, a user's own
data and model end to end, stage options kept apart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cnnlens.cli import main
from cnnlens.errors import CnnlensError
from cnnlens.evaluate.options import EvaluateOptions
from cnnlens.explain.stage import ExplainOptions, load_cams
from cnnlens.faithfulness.stage import FaithfulnessOptions
from cnnlens.pipeline import RunOptions, run
from cnnlens.pipeline.runner import Progress

TINY = {"explain": ExplainOptions(limit=24, per_class=1, max_failures=2),
        "faithfulness": FaithfulnessOptions(limit=16, n_boot=50, sanity_samples=4,
                                            steps=4)}

VOLATILE = {"created", "seconds", "cpu_seconds", "seconds_per_sample", "items_per_s", "since",
            "device", "projected_seconds"}


def _strip(obj: Any) -> Any:
    """JSON without timings and timestamps (what legitimately differs between two runs)."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _folder(path: Path) -> dict[str, Any]:
    """Every artifact of a run, comparable: JSON stripped, arrays as arrays, other bytes."""
    out: dict[str, Any] = {}
    for f in sorted(path.rglob("*")):
        rel = str(f.relative_to(path))
        if f.is_dir() or rel in ("report.html", ".lock") or rel.startswith("tb/"):
            continue
        if f.suffix == ".pt":  # training state: its history holds timings; weights compared
            continue
        if f.suffix == ".json":
            out[rel] = _strip(json.loads(f.read_text()))
        elif f.suffix == ".npz":
            with np.load(f, allow_pickle=False) as z:
                out[rel] = {k: z[k].tolist() for k in z.files if k != "seconds"}
        else:
            out[rel] = f.read_bytes()
    return out


class Recorder(Progress):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.notes: list[str] = []

    def stage(self, name: str, status: str, detail: str = "") -> None:
        self.events.append((name, status))

    def note(self, text: str) -> None:
        self.notes.append(text)


def test_python_and_cli_give_identical_run_folders(tmp_path: Path) -> None:
    cli_dir = tmp_path / "cli"
    # the CLI's --limit applies to explain and faithfulness alike (documented)
    assert main(["run", "--epochs", "2", "--device", "cpu", "--limit", "24",
                 "--out", str(cli_dir)]) == 0
    rec = Recorder()
    py = run(RunOptions(epochs=2, device="cpu", explain=ExplainOptions(limit=24),
                        faithfulness=FaithfulnessOptions(limit=24)),
             out=tmp_path / "py", progress=rec)
    assert py.accuracy is not None and py.report == py.path / "report.html"
    assert [e for e in rec.events if e[1] != "done"] == [
        ("train", "start"), ("evaluate", "start"), ("explain", "start"),
        ("faithfulness", "start"), ("report", "start")]
    for rel in ("cams/gradcam.npz", "faithfulness/results.json", "report.html"):
        assert (cli_dir / rel).is_file(), rel
    py_files, cli_files = _folder(py.path), _folder(cli_dir)
    assert sorted(py_files) == sorted(cli_files)
    for rel in py_files:
        assert py_files[rel] == cli_files[rel], rel


def test_rerun_skips_done_stages_and_returns_their_results(tmp_path: Path) -> None:
    first = run(epochs=1, device="cpu", out=tmp_path / "r", **TINY)
    rec = Recorder()
    again = run(epochs=1, device="cpu", out=tmp_path / "r", progress=rec, **TINY)
    assert [s for s, status in rec.events if status == "skipped"] == [
        "train", "evaluate", "explain", "faithfulness"]
    assert again.accuracy == first.accuracy
    assert again.faithfulness_summary == first.faithfulness_summary
    assert again.stages["report"]["status"] == "ran"  # always rebuilt


def test_a_run_looks_its_task_up_once_and_reads_its_config_at_most_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner resolves the config once and hands it to every stage: a new run reads no
    config.json, a continued one reads it once (to compare it), the task registry is asked
    once each time."""
    import cnnlens.data as data_module
    from cnnlens.rundir import RunDir

    counts = {"registry": 0, "config": 0}

    class CountedTasks(dict[str, Any]):
        def __getitem__(self, name: str) -> Any:
            counts["registry"] += 1
            return super().__getitem__(name)

        def get(self, name: str, default: Any = None) -> Any:
            counts["registry"] += 1
            return super().get(name, default)

    read = RunDir.read_config

    def counted_read(self: RunDir) -> dict[str, Any]:
        counts["config"] += 1
        return read(self)

    monkeypatch.setattr(data_module, "TASKS", CountedTasks(data_module.TASKS))
    monkeypatch.setattr(RunDir, "read_config", counted_read)
    first = run(epochs=1, device="cpu", out=tmp_path / "r", **TINY)
    assert counts == {"registry": 1, "config": 0}
    assert first.stages["faithfulness"]["status"] == "ran"
    counts.update(registry=0, config=0)
    again = run(epochs=1, device="cpu", out=tmp_path / "r", **TINY)
    assert counts == {"registry": 1, "config": 1}
    assert again.config == first.config == read(RunDir(first.path))


def test_training_options_do_not_leak_into_other_stages(tmp_path: Path) -> None:
    res = run(epochs=1, batch_size=64, seed=3, device="cpu", out=tmp_path / "r", **TINY,
              stages=("train", "evaluate", "explain", "faithfulness"))
    assert res.config["recipe"]["batch_size"] == 64 and res.config["seed"] == 3
    assert res.faithfulness is not None
    assert res.faithfulness["request"]["seed"] == 0  # the stage's own seed
    assert res.explain is not None and res.explain["request"]["batch_size"] is None
    assert not (res.path / "report.html").exists()


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"epoch": 3}, "unknown run option(s) epoch"),
    ({"stages": ("train", "explian")}, "unknown stage(s) explian"),
    ({"val_fraction": 1.5}, "--val-fraction"),
    ({"explain": ExplainOptions(methods=("gradkam",))}, "gradkam"),
    ({"faithfulness": FaithfulnessOptions(fracs=(0.0,))}, "frac=0.0"),
    ({"from_keras": "x.h5", "epochs": 3}, "--from-keras"),
    ({"evaluate": EvaluateOptions(tta="dihedral")}, "--tta dihedral needs square images"),
])
def test_bad_options_fail_before_any_work(tmp_path: Path, kwargs: dict[str, Any],
                                          needle: str) -> None:
    with pytest.raises(CnnlensError) as exc:
        run(out=tmp_path / "r", device="cpu", **kwargs)
    assert needle in str(exc.value)
    assert not (tmp_path / "r").exists()


# -- a user's own data and model ------------------------------------------------------------------
def test_own_image_folders_end_to_end(tmp_path: Path, image_dir: Path) -> None:
    res = run(task="images", data_dir=str(image_dir), image_size=16, epochs=2, device="cpu",
              out=tmp_path / "r", **TINY)
    assert res.config["model_kwargs"] == {"num_classes": 3}
    assert res.evaluation is not None and res.evaluation["class_names"] == ["cats", "dogs", "owls"]
    assert res.evaluation["n"] == 12
    cams = load_cams(res.path, "gradcam")
    assert cams["maps"].shape == (12, 16, 16)
    assert res.faithfulness is not None and "random" in res.faithfulness["summary"]
    assert (res.path / "report.html").is_file()


def test_changing_the_test_time_augmentation_reruns_evaluate_only(tmp_path: Path,
                                                                   image_dir: Path) -> None:
    kw: dict[str, Any] = {"task": "images", "data_dir": str(image_dir), "image_size": 16,
                          "epochs": 1, "device": "cpu", "out": tmp_path / "r", **TINY}
    first = run(**kw)
    assert first.evaluation is not None and first.evaluation["options"]["tta"] == "none"
    events = []
    for _ in range(2):  # the first changes the option, the second asks the same again
        rec = Recorder()
        again = run(evaluate=EvaluateOptions(tta="dihedral"), progress=rec, **kw)
        events.append({s for s, status in rec.events if status == "skipped"})
        assert again.evaluation is not None and again.evaluation["options"]["tta"] == "dihedral"
    assert "test-time views" in (tmp_path / "r" / "report.html").read_text()
    assert events[0] == {"train", "explain", "faithfulness"}
    assert events[1] == {"train", "evaluate", "explain", "faithfulness"}
    with pytest.raises(CnnlensError, match="12x16 images"):
        run(**{**kw, "image_size": (12, 16), "out": tmp_path / "s"},
            evaluate=EvaluateOptions(tta="dihedral"))
    assert not (tmp_path / "s").exists()


def test_own_image_folders_with_a_val_folder(tmp_path: Path) -> None:
    from userdata import make_image_folders

    root = make_image_folders(tmp_path / "pics", val=True)
    res = run(task="images", data_dir=str(root), image_size=8, epochs=1, device="cpu",
              out=tmp_path / "r", stages=("train",))
    history = json.loads((res.path / "train" / "history.json").read_text())
    assert "val_accuracy" in history[0]  # the val/ folder is the validation split


def test_own_signals_and_model_end_to_end(tmp_path: Path, signals_file: Path,
                                          user_model_file: Path) -> None:
    rec = Recorder()
    res = run(task="signals", data_dir=str(signals_file), model=f"{user_model_file}:build",
              epochs=3, device="cpu", out=tmp_path / "r", progress=rec, **TINY)
    assert res.config["model"] == f"{user_model_file.resolve()}:build"
    assert res.config["model_kwargs"] == {"num_classes": 3, "in_channels": 2}
    assert res.explain is not None
    assert set(res.explain["layers"].values()) == {"body"}  # last conv-like spatial layer
    assert res.explain["layer_choice"] == "auto"
    assert any("'body'" in n for n in rec.notes)
    assert res.evaluation is not None and res.evaluation["class_names"] == ["low", "mid", "high"]
    assert load_cams(res.path, "ablationcam")["maps"].shape == (24, 24)


def test_own_model_as_module_function(tmp_path: Path, signals_file: Path,
                                      user_model_file: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(user_model_file.parent))
    res = run(task="signals", data_dir=str(signals_file), model="my_models:build", epochs=1,
              device="cpu", out=tmp_path / "r", stages=("train", "evaluate"))
    assert res.config["model"] == "my_models:build" and res.accuracy is not None


@pytest.mark.parametrize(("ref", "needle"), [
    ("{file}:nope", "has no function 'nope'"),
    ("{file}:not_a_model", "returned int, expected a torch.nn.Module"),
    ("{dir}/missing.py:build", "missing.py not found"),
    ("no_such_module_xyz:build", "module 'no_such_module_xyz' not found"),
    ("{file}:", "expected module:function"),
])
def test_bad_model_references_name_the_fault(tmp_path: Path, signals_file: Path,
                                             user_model_file: Path, ref: str,
                                             needle: str) -> None:
    model = ref.format(file=user_model_file, dir=tmp_path)
    with pytest.raises(CnnlensError) as exc:
        run(task="signals", data_dir=str(signals_file), model=model, epochs=1, device="cpu",
            out=tmp_path / "r")
    assert needle in str(exc.value) and "--model" in str(exc.value)


def test_a_lost_ctrl_c_still_stops_the_run_at_the_next_stage(tmp_path: Path) -> None:
    """Python drops a KeyboardInterrupt raised inside a finalizer; the CLI's handler also
    sets ``errors.INTERRUPTED``, and the pipeline checks it before each stage."""
    from cnnlens.errors import INTERRUPTED

    class LostCtrlC(Recorder):
        def stage(self, name: str, status: str, detail: str = "") -> None:
            super().stage(name, status, detail)
            if (name, status) == ("explain", "start"):
                INTERRUPTED.set()  # as if Ctrl-C's raise had been swallowed in explain

    rec = LostCtrlC()
    try:
        with pytest.raises(KeyboardInterrupt):
            run(epochs=1, device="cpu", out=tmp_path / "r", progress=rec, **TINY)
    finally:
        INTERRUPTED.clear()
    assert [s for s, status in rec.events if status == "start"] == [
        "train", "evaluate", "explain"]
    assert ("explain", "done") in rec.events  # explain finished: its files are complete
    assert not (tmp_path / "r" / "faithfulness").exists()


def test_faithfulness_scores_what_explain_was_asked_for_from_python(tmp_path: Path) -> None:
    """run(explain=ExplainOptions(methods, layer, limit)) carries them to faithfulness, as
    the CLI's --methods/--layer/--limit do (it once recomputed the defaults silently)."""
    result = run(task="mnist1d", pretrained=True, device="cpu", out=tmp_path / "r",
                 stages=("train", "evaluate", "explain", "faithfulness"),
                 explain=ExplainOptions(methods=("gradcam",), layer="res1d_1", limit=20,
                                        figures=False),
                 faithfulness=FaithfulnessOptions(sanity=False, n_boot=20, figures=False,
                                                  metrics=("drop_increase",)))
    res = result.faithfulness
    assert res is not None and res["n"] == 20
    assert res["methods"]["gradcam@res1d_1"]["layer"] == "res1d_1"
    assert set(res["methods"]) == {"gradcam@res1d_1", "random"}
    assert res["methods"]["gradcam@res1d_1"]["source"] == "cams/gradcam.npz"  # the same maps
    # options given to faithfulness itself win
    own = FaithfulnessOptions(methods=("gradcampp",), limit=10)
    assert own.following(ExplainOptions(methods=("gradcam",), limit=20)) == own
