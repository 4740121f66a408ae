import random
from pathlib import Path

import numpy as np
import pytest

from cnnlens.data import DataConfig, load_task
from cnnlens.data.mnist1d import generate_mnist1d, load_mnist1d


def test_generated_data_equals_published_arrays(shared_data: Path) -> None:
    ref = np.load(shared_data / "mnist1d" / "mnist1d_reference.npz", allow_pickle=False)
    got = load_mnist1d()
    for key in ("y", "y_test"):
        np.testing.assert_array_equal(got[key], ref[key])
    for key in ("x", "x_test", "t"):
        assert got[key].shape == ref[key].shape
        assert np.abs(got[key] - ref[key]).max() <= 1e-12


def test_generation_leaves_global_rng_untouched() -> None:
    np.random.seed(123)
    random.seed(123)
    expected = (np.random.rand(), random.random())
    np.random.seed(123)
    random.seed(123)
    generate_mnist1d({"num_samples": 100})
    assert (np.random.rand(), random.random()) == expected


def test_cache_is_keyed_by_arguments_and_reused(tmp_path: Path) -> None:
    small = load_mnist1d({"num_samples": 100}, cache_dir=tmp_path)
    files = list((tmp_path / "mnist1d").glob("*.npz"))
    assert len(files) == 1
    assert small["x"].shape[0] + small["x_test"].shape[0] == 100
    load_mnist1d({"num_samples": 200}, cache_dir=tmp_path)
    assert len(list((tmp_path / "mnist1d").glob("*.npz"))) == 2
    # No temp files are left beside the cache.
    assert not [p for p in (tmp_path / "mnist1d").iterdir() if p.suffix != ".npz"]
    mtime = files[0].stat().st_mtime_ns
    again = load_mnist1d({"num_samples": 100}, cache_dir=tmp_path)
    assert files[0].stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again["x"], small["x"])


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated", "stale"])
def test_corrupt_cache_is_regenerated(tmp_path: Path, damage: str) -> None:
    good = load_mnist1d({"num_samples": 100}, cache_dir=tmp_path)
    (path,) = (tmp_path / "mnist1d").glob("*.npz")
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not an npz")
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:  # an npz of the right name holding something else
        np.savez(path, x=np.zeros((3, 40)), y=np.zeros(2, dtype=np.int64),
                 x_test=np.zeros((1, 40)), y_test=np.zeros(1, dtype=np.int64), t=np.zeros(40))
    again = load_mnist1d({"num_samples": 100}, cache_dir=tmp_path)
    np.testing.assert_array_equal(again["x"], good["x"])
    with np.load(path, allow_pickle=False) as f:
        assert f["x"].shape == good["x"].shape
    assert not list((tmp_path / "mnist1d").glob("*.tmp"))


def test_task_shapes_and_stratified_validation_split() -> None:
    data = load_task(DataConfig("mnist1d", val_fraction=0.1, seed=3))
    assert data.kind == "signal"
    x, _y = data.test[0]
    assert tuple(x.shape) == (1, 40)
    assert len(data.test) == 1000
    assert len(data.train) + len(data.val) == 4000
    val_labels = np.array([int(data.val[i][1]) for i in range(len(data.val))])
    counts = np.bincount(val_labels, minlength=10)
    assert counts.min() > 0.7 * counts.max()
    again = load_task(DataConfig("mnist1d", val_fraction=0.1, seed=3))
    assert bool((again.val.tensors[0] == data.val.tensors[0]).all())  # type: ignore[attr-defined]


def test_test_split_class_counts_match_design() -> None:
    data = load_task(DataConfig("mnist1d"))
    counts = np.bincount(data.test.tensors[1].numpy(), minlength=10)  # type: ignore[attr-defined]
    assert counts.tolist() == [102, 104, 89, 106, 106, 98, 99, 96, 98, 102]


def test_bad_val_fraction_names_parameter() -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        load_task(DataConfig("mnist1d", val_fraction=1.5))
