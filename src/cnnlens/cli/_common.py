"""Options and progress display shared by the CLI commands."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tqdm import tqdm

from cnnlens.data import TASKS
from cnnlens.errors import CnnlensError
from cnnlens.models import MODELS
from cnnlens.train.loop import TrainCallback
from cnnlens.train.recipes import RECIPES


def positive_int(value: str) -> int:
    """argparse type: an integer > 0, with a message naming the accepted range."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {n}")
    return n


def add_training_options(p: argparse.ArgumentParser) -> None:
    """Options that define a training run (shared by ``train`` and ``run``)."""
    p.add_argument("--task", default="mnist1d",
                   help=f"task to run ({', '.join(TASKS)}; default mnist1d)")
    p.add_argument("--model", default=None,
                   help=f"model ({', '.join(MODELS)}; default: the task's model)")
    p.add_argument("--recipe", default="study",
                   help=f"training recipe ({', '.join(RECIPES)}; default study)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="epochs (default: the recipe's, 200 for MNIST-1D and 150 for HMT)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="batch size (32)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (0.01)")
    p.add_argument("--momentum", type=float, default=None, help="SGD momentum (0)")
    p.add_argument("--schedule", choices=["none", "step"], default=None,
                   help="step: lr = 1e-3 * 0.5^(epoch // 15), as the study's report describes")
    p.add_argument("--early-stopping", action="store_true", default=None,
                   help="stop when validation loss has not improved for --patience epochs")
    p.add_argument("--patience", type=positive_int, default=None,
                   help="early-stopping patience (8)")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="fraction of the training data held out for validation (per class)")
    p.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                   help="turn off training-time augmentation (images)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--data-dir", default=None,
                   help="data folder (HMT: holds HMT_train/ and HMT_test/)")
    p.add_argument("--image-size", type=positive_int, default=None,
                   help="resize images to this square size (224)")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images, listing them")
    add_device_option(p)


def add_device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Build a validated run config from parsed training options."""
    from cnnlens.pipeline import make_config

    if args.val_fraction is not None and not 0.0 <= args.val_fraction < 1.0:
        raise CnnlensError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    return make_config(
        task=args.task,
        model=args.model,
        recipe=args.recipe,
        seed=args.seed,
        device=args.device,
        data_dir=args.data_dir,
        image_size=args.image_size,
        skip_bad=args.skip_bad,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        schedule=args.schedule,
        early_stopping=args.early_stopping,
        patience=args.patience,
        val_fraction=args.val_fraction,
        augment=args.augment,
    )


class TqdmTrainCallback(TrainCallback):
    """One progress bar per epoch with running loss and accuracy, items/s and ETA."""

    def __init__(self, unit: str = "sample") -> None:
        self.unit = unit
        self.bar: tqdm[Any] | None = None

    def on_epoch_start(self, epoch: int, epochs: int, n_items: int) -> None:
        self.bar = tqdm(total=n_items, desc=f"epoch {epoch + 1}/{epochs}", unit=self.unit,
                        leave=False, file=sys.stderr, dynamic_ncols=True)

    def on_batch_end(self, n_items: int, loss: float, acc: float) -> None:
        if self.bar is not None:
            self.bar.update(n_items)
            self.bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.3f}", refresh=False)

    def on_epoch_end(self, stats: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        line = (f"epoch {stats['epoch'] + 1}: loss {stats['loss']:.4f} acc {stats['accuracy']:.4f}"
                f" lr {stats['lr']:.3g}")
        if "val_loss" in stats:
            line += f" | val loss {stats['val_loss']:.4f} acc {stats['val_accuracy']:.4f}"
        line += f" | {stats['items_per_s']:.0f} {self.unit}/s"
        tqdm.write(line, file=sys.stderr)


def info(message: str) -> None:
    """A line of CLI output (stdout)."""
    print(message, flush=True)
