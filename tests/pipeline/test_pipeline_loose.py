"""``explain_inputs``: loose images and signals, no labels, explained by a model from a file.

A 20-file folder of PNG/JPEG/TIFF images in RGB, gray, RGBA, palette and 16-bit modes at odd
sizes, explained by a builder plus its state dict: 20 x methods overlays, a CSV row per
input, the page; preprocessing equal to the ``images`` task's; the label-free AUCs equal to
the faithfulness metric functions; bad inputs named in one error.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlens.data.images import ImageFolderDataset
from cnnlens.data.loose import read_inputs, scan_inputs
from cnnlens.errors import CnnlensError
from cnnlens.faithfulness.label_free import deletion_insertion
from cnnlens.faithfulness.metrics import deletion, insertion, random_maps
from cnnlens.pipeline.loose import explain_inputs
from looseinputs import make_loose_images, save_builder

METHODS = ("gradcam", "gradcampp", "ablationcam")
SIZE = 32


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("loose") / "pics"
    make_loose_images(root)
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    return save_builder(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def names_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("names") / "names.txt"
    path.write_text("cat\ndog\nowl\n<b>fox</b>\n")
    return path


@pytest.fixture(scope="module")
def result(folder: Path, model: tuple[str, Path], names_file: Path,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("out") / "explained"
    seen: list[tuple[str, int, int]] = []
    summary = explain_inputs(model[0], [folder], out, weights=model[1], methods=METHODS,
                             image_size=SIZE, class_names=names_file, top_k=2,
                             batch_size=8, progress=lambda w, d, n: seen.append((w, d, n)))
    assert ("overlays", 20, 20) in seen
    return summary, out


def test_every_input_gets_overlays_a_csv_row_and_the_page(result: tuple[dict, Path]) -> None:
    summary, out = result
    assert summary["n"] == 20 and summary["skipped"] == 2  # .hidden.png, notes.txt
    pngs = sorted((out / "overlays").glob("*.png"))
    assert len(pngs) == 20 * len(METHODS)
    assert all(p.name.rsplit("__", 1)[1][:-4] in METHODS for p in pngs)
    with (out / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20
    assert {"top1", "top1_prob", "top2", "top2_prob", "gradcam_deletion_auc",
            "random_insertion_auc"} <= set(rows[0])
    for row in rows:
        assert row["top1"] in ("cat", "dog", "owl", "<b>fox</b>")
        assert float(row["top1_prob"]) >= float(row["top2_prob"])
        assert row["explained"] == row["top1"]
        assert 0.0 <= float(row["ablationcam_insertion_auc"]) <= 1.0
    page = (out / "index.html").read_text()
    assert page.count("<figure>") == 20 * (1 + len(METHODS))
    assert "&lt;b&gt;fox&lt;/b&gt;" in page or "<b>fox</b>" not in page
    assert not list(out.rglob("*.tmp"))


def test_images_are_preprocessed_like_the_images_task(folder: Path, tmp_path: Path) -> None:
    files = sorted(p for p in folder.rglob("img_*"))
    cls = tmp_path / "split" / "a"
    cls.mkdir(parents=True)
    for f in files:
        (cls / f"{f.parent.name}_{f.name}").write_bytes(f.read_bytes())
    ds = ImageFolderDataset(tmp_path / "split", size=SIZE)
    loose = {s.path.name: s.x for s in read_inputs(scan_inputs([cls]), image_size=SIZE).samples}
    for i, path in enumerate(ds.files):
        assert torch.equal(ds[i][0], loose[path.name]), path.name


@pytest.mark.parametrize("baseline", ["mean", "zero"])
def test_label_free_aucs_equal_the_metric_functions(baseline: str) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 3)).eval()
    x = torch.rand(5, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    maps = {"a": random_maps((5, 12, 12), seed=1), "b": random_maps((5, 12, 12), seed=2)}
    t = torch.tensor([0, 1, 2, 1, 0])
    ours = deletion_insertion(net, x, maps, t, steps=4, baseline=baseline)
    for name, m in maps.items():
        d = deletion(net, x, m, steps=4, targets=t, baseline=baseline).values["deletion_auc"]
        i = insertion(net, x, m, steps=4, targets=t, baseline=baseline).values["insertion_auc"]
        np.testing.assert_allclose(ours[name]["deletion_auc"], d, atol=1e-6)
        np.testing.assert_allclose(ours[name]["insertion_auc"], i, atol=1e-6)


def test_signals_from_npy_and_npz(tmp_path: Path) -> None:
    builder, weights = save_builder(tmp_path / "m", "build1d")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "one.npy", rng.normal(size=(2, 30)).astype(np.float32))  # (C, L)
    np.save(tmp_path / "many.npy", rng.normal(size=(3, 2, 30)))  # (N, C, L)
    np.savez(tmp_path / "pack.npz", a=rng.normal(size=(2, 2, 25)), b=rng.normal(size=(2, 40)))
    out = tmp_path / "out"
    summary = explain_inputs(builder, [tmp_path / "one.npy", tmp_path / "many.npy",
                                       tmp_path / "pack.npz"], out, weights=weights,
                             methods=("gradcam",), faithfulness_steps=3)
    assert summary["n"] == 1 + 3 + 2 + 1
    with (out / "predictions.csv").open() as fh:
        names = [r["file"] for r in csv.DictReader(fh)]
    assert names[0].endswith("one.npy") and names[1].endswith("many.npy[0]")
    assert names[-1].endswith("pack.npz:b") and names[-2].endswith("pack.npz:a[1]")
    assert len(list((out / "overlays").glob("*__gradcam.png"))) == 7
    page = (out / "index.html").read_text()  # lengths 30, 25 and 40: no shared explorer
    assert "No explorer: it needs inputs of one kind" in page and "<script>" not in page


def test_target_by_name_and_a_bad_target(folder: Path, model: tuple[str, Path],
                                         names_file: Path, tmp_path: Path) -> None:
    files = sorted(folder.glob("img_0*"))[:2]
    s = explain_inputs(model[0], files, tmp_path / "o", weights=model[1], methods=("gradcam",),
                       image_size=SIZE, class_names=names_file, target="owl",
                       faithfulness_steps=0)
    assert s["target"] == "owl"
    with (tmp_path / "o" / "predictions.csv").open() as fh:
        assert {r["explained"] for r in csv.DictReader(fh)} == {"owl"}
    with pytest.raises(CnnlensError, match=r"--target 'emu': not a class.*0\.\.3"):
        explain_inputs(model[0], files, tmp_path / "p", weights=model[1], image_size=SIZE,
                       class_names=names_file, target="emu")


def test_unreadable_files_are_all_named_or_skipped(folder: Path, model: tuple[str, Path],
                                                   tmp_path: Path) -> None:
    bad1, bad2 = tmp_path / "zero.png", tmp_path / "cut.jpg"
    bad1.write_bytes(b"")
    bad2.write_bytes((folder / "img_01.jpg").read_bytes()[:30]) if (
        folder / "img_01.jpg").exists() else bad2.write_bytes(b"\xff\xd8\xff")
    good = sorted(folder.glob("img_*"))[0]
    with pytest.raises(CnnlensError) as err:
        explain_inputs(model[0], [good, bad1, bad2], tmp_path / "o", weights=model[1],
                       image_size=SIZE)
    msg = str(err.value)
    assert "2 unreadable" in msg and str(bad1) in msg and str(bad2) in msg
    assert "--skip-bad" in msg and "\n" not in msg
    assert not (tmp_path / "o" / "index.html").exists()
    s = explain_inputs(model[0], [good, bad1, bad2], tmp_path / "o", weights=model[1],
                       image_size=SIZE, skip_bad=True, faithfulness_steps=0,
                       methods=("gradcam",))
    assert s["n"] == 1 and {b["path"] for b in s["bad"]} == {str(bad1), str(bad2)}
    assert str(bad1) in (tmp_path / "o" / "index.html").read_text()


def test_empty_inputs_and_a_class_count_mismatch(model: tuple[str, Path], folder: Path,
                                                 tmp_path: Path) -> None:
    with pytest.raises(CnnlensError, match="--inputs is empty"):
        explain_inputs(model[0], [], tmp_path / "o", weights=model[1])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnlensError, match="no input files found"):
        explain_inputs(model[0], [tmp_path / "empty"], tmp_path / "o", weights=model[1])
    names = tmp_path / "names.json"
    names.write_text('["a", "b"]')
    files = sorted(folder.glob("img_*"))[:1]
    with pytest.raises(CnnlensError) as err:
        explain_inputs(model[0], files, tmp_path / "o", weights=model[1], image_size=SIZE,
                       class_names=names)
    assert "lists 2 classes" in str(err.value) and "outputs 4 class scores" in str(err.value)


def test_hostile_and_colliding_names_get_safe_unique_files(model: tuple[str, Path],
                                                           folder: Path, tmp_path: Path) -> None:
    src = sorted(folder.glob("img_*.png"))[0].read_bytes()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "<img src=x onerror=alert(1)>.png").write_bytes(src)
    (tmp_path / "a" / "_img src=x onerror=alert(1)_.png").write_bytes(src)
    explain_inputs(model[0], [tmp_path / "a"], tmp_path / "o", weights=model[1],
                   image_size=SIZE, methods=("gradcam",), faithfulness_steps=0)
    files = sorted(p.name for p in (tmp_path / "o" / "overlays").iterdir())
    assert len(files) == 2 and all("<" not in f and " " not in f for f in files)
    assert any("-2__gradcam" in f for f in files)


def test_a_failed_page_write_leaves_no_index(model: tuple[str, Path], folder: Path,
                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    import cnnlens.report.inputs_page as page

    def broken(fh: object, chunks: object) -> None:
        fh.write(b"<!DOCTYPE html><html>half")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(page, "_write_chunks", broken)
    with pytest.raises(CnnlensError, match=r"index\.html: cannot write"):
        explain_inputs(model[0], sorted(folder.glob("img_*"))[:1], tmp_path / "o",
                       weights=model[1], image_size=SIZE, faithfulness_steps=0)
    assert not (tmp_path / "o" / "index.html").exists()
    assert not list((tmp_path / "o").glob(".*.tmp"))


def test_names_that_start_a_formula_stay_text_in_the_csv() -> None:
    from cnnlens.pipeline.loose_outputs import text_cell

    assert text_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and text_cell("@x") == "'@x"
    assert text_cell("-1.png") == "'-1.png" and text_cell("tile.png") == "tile.png"
