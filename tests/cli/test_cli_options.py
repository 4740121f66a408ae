"""Stage options on the command line come from the options dataclasses, not a copy."""

from __future__ import annotations

from dataclasses import fields

import pytest

from cnnlens.cli import build_parser
from cnnlens.cli.options import options_from_args
from cnnlens.evaluate.options import EvaluateOptions
from cnnlens.explain.options import ExplainOptions
from cnnlens.faithfulness.options import FaithfulnessOptions
from cnnlens.models.options import TrainedModelOptions
from cnnlens.report.options import ReportOptions
from cnnlens.train.options import TRAINING_FIELDS, TrainingOverrides, TrainingRunOptions


@pytest.mark.parametrize(("argv", "cls"), [(["faithfulness", "RUN"], FaithfulnessOptions),
                                           (["explain", "RUN"], ExplainOptions),
                                           (["evaluate", "RUN"], EvaluateOptions),
                                           (["report", "RUN"], ReportOptions)])
def test_a_bare_command_line_gives_the_dataclass_defaults(argv: list[str], cls: type) -> None:
    args = build_parser().parse_args(argv)
    assert options_from_args(cls, args) == cls()


def test_every_declared_option_is_read_back_as_its_field() -> None:
    args = build_parser().parse_args([
        "faithfulness", "RUN", "--methods", "gradcam,ablationcam", "--frac", "0.5", "0.7",
        "--metrics", "road", "--limit", "7", "--steps", "4", "--baseline", "0.25",
        "--percentages", "20", "80", "--noise", "0", "--n-boot", "50", "--seed", "3",
        "--no-sanity", "--sanity-samples", "5", "--sanity-seeds", "2", "--sanity-draw",
        "reset", "--sanity-constant", "nan", "--random-cells", "4", "--recompute",
        "--no-figures", "--batch-size", "9", "--split", "val"])
    opts = options_from_args(FaithfulnessOptions, args)
    assert opts == FaithfulnessOptions(
        methods=("gradcam", "ablationcam"), fracs=(0.5, 0.7), metrics=("road",), limit=7,
        steps=4, baseline=0.25, percentages=(20.0, 80.0), noise=0.0, n_boot=50, seed=3,
        sanity=False, sanity_samples=5, sanity_seeds=2, sanity_draw="reset",
        sanity_constant="nan", random_cells=(4,), use_saved=False, figures=False,
        batch_size=9, split="val")
    declared = {f.name for f in fields(FaithfulnessOptions) if "cli" in f.metadata}
    assert declared == {f.name for f in fields(FaithfulnessOptions)} - {"alpha"}


def test_run_takes_the_same_declarations_under_its_own_names() -> None:
    args = build_parser().parse_args(["run", "--seed", "5", "--faithfulness-seed", "2",
                                      "--layer", "gradcam=conv1d_1", "--no-sanity"])
    faith = options_from_args(FaithfulnessOptions, args, prefix="faithfulness_",
                              only=("fracs", "metrics", "baseline", "seed", "sanity"))
    assert faith.seed == 2 and faith.sanity is False and args.seed == 5
    explain = options_from_args(ExplainOptions, args, only=("methods", "layer", "score",
                                                            "limit"))
    assert explain.layer == {"gradcam": "conv1d_1"}


@pytest.mark.parametrize("command", ["train", "run"])
def test_training_overrides_are_the_dataclass_fields_for_train_and_run(command: str) -> None:
    bare = build_parser().parse_args([command])
    assert options_from_args(TrainingOverrides, bare) == TrainingOverrides()  # all None
    args = build_parser().parse_args([
        command, "--epochs", "3", "--batch-size", "16", "--lr", "0.5", "--momentum", "0.9",
        "--schedule", "onecycle", "--early-stopping", "--patience", "4", "--val-fraction",
        "0.2", "--no-augment", "--optimizer", "adamw", "--weight-decay", "0.01",
        "--label-smoothing", "0.1", "--augmentation", "dihedral", "--precision", "fp32"])
    given = TrainingOverrides(
        epochs=3, batch_size=16, lr=0.5, momentum=0.9, schedule="onecycle",
        early_stopping=True, patience=4, val_fraction=0.2, augment=False, optimizer="adamw",
        weight_decay=0.01, label_smoothing=0.1, augmentation="dihedral", precision="fp32")
    assert options_from_args(TrainingOverrides, args) == given
    assert all("cli" in f.metadata for f in fields(TrainingOverrides))
    # RunOptions is built on the same fields: what the command line gave is what run() gets
    from cnnlens.cli._common import run_options_from_args

    assert run_options_from_args(args).training_overrides() == given.training_overrides()
    assert tuple(f.name for f in fields(TrainingOverrides)) == TRAINING_FIELDS


def test_a_bad_override_is_refused_by_the_flag_it_came_from() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--epochs", "0"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--schedule", "cosine"])


@pytest.mark.parametrize("command", [["run"], ["evaluate", "RUN"], ["faithfulness", "RUN"]])
def test_a_trained_models_contract_is_one_declaration_on_every_command(
        command: list[str]) -> None:
    args = build_parser().parse_args([
        *command, "--model", "net.onnx", "--weights", "w.pt", "--trust-pickle", "--normalize",
        "imagenet", "--output", "logits", "--standardize", "--grayscale", "--class-names",
        "names.txt"])
    assert options_from_args(TrainedModelOptions, args) == TrainedModelOptions(
        weights="w.pt", trust_pickle=True, normalize="imagenet", output="logits",
        standardize=True, grayscale=True, class_names="names.txt")
    bare = build_parser().parse_args(command)
    assert options_from_args(TrainedModelOptions, bare) == TrainedModelOptions()


def test_explain_offers_the_contract_options_loose_inputs_can_apply() -> None:
    args = build_parser().parse_args(["explain", "--inputs", "pics", "--model", "net.onnx",
                                      "--weights", "w.pt", "--normalize", "imagenet",
                                      "--class-names", "names.txt"])
    got = options_from_args(TrainedModelOptions, args,
                            only=("weights", "trust_pickle", "normalize", "class_names"))
    assert got == TrainedModelOptions(weights="w.pt", normalize="imagenet",
                                      class_names="names.txt")


def test_run_level_options_are_declared_once_for_train_and_run() -> None:
    for command in ("train", "run"):
        bare = build_parser().parse_args([command])
        assert options_from_args(TrainingRunOptions, bare) == TrainingRunOptions()
    args = build_parser().parse_args([
        "run", "--task", "images", "--data", "pics", "--image-size", "48,96", "--resize",
        "shorter-side+center-crop", "--skip-bad", "--model", "net.py:build", "--recipe",
        "best", "--seed", "7", "--device", "cpu", "--tb-cams-every", "0"])
    assert options_from_args(TrainingRunOptions, args) == TrainingRunOptions(
        task="images", data_dir="pics", image_size=(48, 96),
        resize="shorter-side+center-crop", skip_bad=True, model="net.py:build",
        recipe="best", seed=7, device="cpu", tb_cams_every=0)
    from cnnlens.cli.run import options_from_args as run_options

    opts = run_options(args)  # what `cnnlens run` hands to run(): the same fields
    assert (opts.task, opts.image_size, opts.seed, opts.device) == ("images", (48, 96), 7, "cpu")
