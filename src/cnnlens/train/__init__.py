"""Training: recipes and the loop (checkpoints live in :mod:`cnnlens.rundir.checkpoint`)."""

from cnnlens.train.loop import EpochHook, TrainCallback, make_optimizer, train_run
from cnnlens.train.recipes import RECIPES, Recipe, get_recipe

__all__ = ["RECIPES", "EpochHook", "Recipe", "TrainCallback", "get_recipe", "make_optimizer",
           "train_run"]
