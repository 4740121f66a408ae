"""The HMT task: Kather 2016 histology tiles in the study's ``HMT_train`` / ``HMT_test`` layout."""

from __future__ import annotations

from cnnlens.data import DataConfig, TaskData
from cnnlens.data.images import load_image_folder_task
from cnnlens.errors import CnnlensError

HMT_CLASSES = [
    "01_TUMOR", "02_STROMA", "03_COMPLEX", "04_LYMPHO",
    "05_DEBRIS", "06_MUCOSA", "07_ADIPOSE", "08_EMPTY",
]
TRAIN_FOLDER = "HMT_train"
TEST_FOLDER = "HMT_test"


def load_hmt_task(cfg: DataConfig) -> TaskData:
    """Train / val / test datasets from ``cfg.data_dir``/``HMT_train`` and ``HMT_test``.

    Class names are the sorted class folders of ``HMT_train``; see
    :func:`cnnlens.data.images.load_image_folder_task` for the rest.
    """
    if cfg.data_dir is None:
        raise CnnlensError(
            "task hmt needs its image folder: pass --data-dir DIR (holding HMT_train/ and "
            "HMT_test/) or get it with `cnnlens data download hmt --to DIR`"
        )
    return load_image_folder_task(
        cfg,
        train_folder=TRAIN_FOLDER,
        test_folder=TEST_FOLDER,
        hint="get them with `cnnlens data download hmt`",
    )
