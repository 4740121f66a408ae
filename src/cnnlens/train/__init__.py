"""Training: recipes and the loop (checkpoints live in :mod:`cnnlens.rundir.checkpoint`)."""

from cnnlens.lazy import lazy_exports

_EXPORTS = {
    "EpochHook": "loop",
    "RECIPES": "recipes",
    "Recipe": "recipes",
    "TrainCallback": "loop",
    "get_recipe": "recipes",
    "make_optimizer": "loop",
    "train_run": "loop",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
