"""The HMT task: Kather 2016 histology tiles in the study's ``HMT_train`` / ``HMT_test`` layout.

A named preset of the ``images`` task: the same loader with the study's folder names.
"""

from __future__ import annotations

from cnnlens.data import DataConfig, TaskData, TaskShape
from cnnlens.data.image_task import describe_image_folders, load_image_folder_task
from cnnlens.data.resize import image_hw

HMT_CLASSES = [
    "01_TUMOR", "02_STROMA", "03_COMPLEX", "04_LYMPHO",
    "05_DEBRIS", "06_MUCOSA", "07_ADIPOSE", "08_EMPTY",
]
TRAIN_FOLDER = "HMT_train"
TEST_FOLDER = "HMT_test"
HINT = "get them with `cnnlens data download hmt`"


def load_hmt_task(cfg: DataConfig) -> TaskData:
    """Train / val / test datasets from ``cfg.data_dir``/``HMT_train`` and ``HMT_test``.

    Class names are the sorted class folders of ``HMT_train``; see
    :func:`cnnlens.data.image_task.load_image_folder_task` for the rest.
    """
    return load_image_folder_task(
        cfg, train_folder=TRAIN_FOLDER, test_folder=TEST_FOLDER, val_folder=None, hint=HINT
    )


def describe_hmt(cfg: DataConfig) -> TaskShape:
    """The study's 8 classes and ``(3, size, size)``; the folder is read when it is given."""
    if cfg.data_dir is None:
        return TaskShape(list(HMT_CLASSES), (3, *image_hw(cfg.image_size)), "image")
    return describe_image_folders(cfg, train_folder=TRAIN_FOLDER, test_folder=TEST_FOLDER)
