"""Training: recipes, the loop, checkpoints."""

from cnnlens.train.loop import TrainCallback, make_optimizer, train_run
from cnnlens.train.recipes import RECIPES, Recipe, get_recipe

__all__ = ["RECIPES", "Recipe", "TrainCallback", "get_recipe", "make_optimizer", "train_run"]
