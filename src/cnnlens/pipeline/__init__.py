"""The top of the library: one call runs train → evaluate → explain → faithfulness → report.

:mod:`.config` builds a run's configuration, :mod:`.create` makes its folder,
:mod:`.keras_run` and :mod:`.pretrained` make run folders from a Keras file or the shipped
weights, :mod:`.stages` is the stage table and :mod:`.runner` runs it. The run folder the
stages share lives one layer down, in :mod:`cnnlens.rundir`.
"""

from cnnlens.pipeline.config import make_config
from cnnlens.pipeline.create import prepare_run_dir
from cnnlens.pipeline.keras_run import import_keras
from cnnlens.pipeline.runner import RunOptions, RunResult, run
from cnnlens.pipeline.stages import STAGE_NAMES, STAGES
from cnnlens.progress import Progress
from cnnlens.rundir import RunDir, RunLockedError, load_checkpoint, save_checkpoint

__all__ = ["STAGES", "STAGE_NAMES", "Progress", "RunDir", "RunLockedError", "RunOptions",
           "RunResult", "import_keras", "load_checkpoint", "make_config", "prepare_run_dir",
           "run", "save_checkpoint"]
