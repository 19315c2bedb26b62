import argparse
from dataclasses import fields

import pytest

from mixer_edu.config import RunOptions, TrainConfig, add_arguments, recipe, split_arguments
from mixer_edu.support.validation import check_choice


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"clip_grad": -1.0}, r"clip_grad must be >= 0, got -1.0. Use 0 to switch clipping off"),
        ({"weight_decay": -0.1}, r"weight_decay must be >= 0, got -0.1"),
        ({"label_smoothing": -0.1}, r"label_smoothing must be in \[0, 1\), got -0.1"),
        ({"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\), got 1.0"),
        ({"warmup_epochs": -1.0}, r"warmup_epochs must be >= 0, got -1.0"),
        ({"batch_augment_prob": 1.5}, r"batch_augment_prob must be in \[0, 1\], got 1.5"),
        ({"drop_path_rate": 1.0}, r"drop_path_rate must be in \[0, 1\)"),
        ({"lr": 0.0}, r"lr must be > 0, got 0.0"),
        ({"lr": float("nan")}, r"lr must be > 0, got nan"),
        ({"epochs": 0}, r"epochs must be a positive int, got 0"),
        ({"train_images": -5}, r"train_images must be a positive int"),
        ({"augment": "crop_flip"}, r"augment must be one of .*'crop-flip'.*Did you mean"),
        ({"batch_augment": "cutout"}, r"batch_augment must be one of 'none', 'cutmix', 'mixup'"),
        ({"dataset": "imagenet"}, r"dataset must be one of 'cifar10', 'standin'; got 'imagenet'"),
        ({"model_name": "mixer_cifar"}, r"model_name must be one of .*Did you mean 'mixer_cifar"),
    ],
)
def test_every_bad_recipe_value_names_the_option_and_what_is_allowed(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**change)


def test_wrong_types_are_type_errors():
    with pytest.raises(TypeError, match="epochs must be a positive int"):
        TrainConfig(epochs=2.5)
    with pytest.raises(TypeError, match="lr must be a number"):
        TrainConfig(lr="0.1")


def test_run_options_are_checked_too():
    with pytest.raises(ValueError, match="precision must be one of"):
        RunOptions(precision="fp16")
    with pytest.raises(ValueError, match="either resume or overwrite"):
        RunOptions(resume=True, overwrite=True)
    with pytest.raises(ValueError, match="data_path must be one of 'auto', 'device', 'per-image'"):
        RunOptions(data_path="gpu")


def test_recipes_change_only_what_differs_from_the_defaults():
    assert recipe("cifar10") == TrainConfig()
    standin = recipe("standin")
    assert standin.dataset == "standin" and standin.model_name == TrainConfig().model_name
    assert recipe(fast=True, epochs=1).epochs == 1


def _parser():
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainConfig)
    add_arguments(parser, RunOptions)
    return parser


def test_command_line_has_one_option_per_field_and_passes_on_only_what_was_typed():
    parser = _parser()
    help_text = " ".join(parser.format_help().split())  # no line breaks
    for f in [*fields(TrainConfig), *fields(RunOptions)]:
        if f.metadata["cli"]:
            assert (f.metadata["flag"] or "--" + f.name.replace("_", "-")) in help_text
    assert split_arguments(parser.parse_args([])) == ({}, {})  # defaults stay in the dataclasses
    changes, options = split_arguments(
        parser.parse_args(["--model", "mixer_cifar_tiny", "--lr", "0.01", "--no-progress"])
    )
    assert changes == {"model_name": "mixer_cifar_tiny", "lr": 0.01}
    assert options == {"progress": False}
    assert "(default: 0.05)" in help_text and "--drop-path" in help_text


def test_choice_checker_suggests_the_closest_choice():
    assert check_choice("b", ("a", "b"), "letter") == "b"
    with pytest.raises(
        ValueError, match=r"letter must be one of 'alpha', 'beta'; got 'alpah'\. Did"
    ):
        check_choice("alpah", ("alpha", "beta"), "letter")


def test_compile_is_auto_unless_asked_for_or_refused_on_the_command_line():
    from mixer_edu.config import RunOptions, build_parser, split_arguments

    def options(*argv):
        return split_arguments(build_parser().parse_args(list(argv)))[1]

    assert options("--compile") == {"compile": True}  # the spelling from before 'auto'
    assert options("--no-compile") == {"compile": False}
    assert options() == {} and RunOptions().compile == "auto"


def test_a_recipe_saved_with_the_old_names_of_cutmix_mixup_still_reads():
    from dataclasses import asdict

    saved = {**asdict(TrainConfig()), "mixing": "cutmix", "mixing_prob": 0.3}
    del saved["batch_augment"], saved["batch_augment_prob"]
    assert {"mixing", "mixing_prob"} <= TrainConfig.field_names()
    config = TrainConfig(**TrainConfig.saved_recipe(saved))
    assert (config.batch_augment, config.batch_augment_prob) == ("cutmix", 0.3)
