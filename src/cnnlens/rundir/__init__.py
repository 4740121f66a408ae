"""The run folder, its lock and its checkpoints: the layer every stage reads and writes.

It sits below the stages (train, evaluate, explain, faithfulness, report) and above data and
models; creating a run folder for a new run is the pipeline's job (:mod:`cnnlens.pipeline.create`).
"""

from cnnlens.rundir.checkpoint import load_checkpoint, read_checkpoint_meta, save_checkpoint
from cnnlens.rundir.folder import (
    LOCK_NAME,
    RUN_ARTIFACTS,
    RunDir,
    RunLockedError,
    check_class_names,
    load_checked_data,
)

__all__ = ["LOCK_NAME", "RUN_ARTIFACTS", "RunDir", "RunLockedError", "check_class_names",
           "load_checked_data", "load_checkpoint", "read_checkpoint_meta", "save_checkpoint"]
