"""cnnlens: train, evaluate and explain convolutional networks with class activation maps."""

from cnnlens.errors import CnnlensError

__version__ = "0.1.0"
__all__ = ["CnnlensError", "__version__"]
