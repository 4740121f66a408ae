"""Fixtures: a user's image folders, signal arrays and model file, made per test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from userdata import USER_MODEL, make_image_folders, make_signals


@pytest.fixture()
def image_dir(tmp_path: Path) -> Path:
    return make_image_folders(tmp_path / "pics")


@pytest.fixture()
def signals_file(tmp_path: Path) -> Path:
    return make_signals(tmp_path / "signals.npz",
                        class_names=np.array(["low", "mid", "high"]))


@pytest.fixture()
def user_model_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_models.py"
    path.write_text(USER_MODEL)
    return path
