"""The training recipe as one validated object: `TrainConfig`, the named recipes and the CLI.

A run is described by two plain dataclasses:

- `TrainConfig`: *what* the run computes (model, data, optimiser, augmentation, seed). It is
  stored in the checkpoint, and a run resumes only with the same recipe.
- `RunOptions`: *where and how* it runs (output folder, device, precision, data path, progress
  bars). Changing them never changes what is learned (apart from bf16 rounding, and the data
  path, which draws its augmentations from the same distribution with other random numbers).

Every default lives in the field that declares it, with its help text beside it, and every value
is checked when the object is made (`ValueError` naming the option, what is allowed and what was
given). The command line (`python -m mixer_edu.train`) is built from the same fields, so the
recipe, `train()` and the CLI cannot drift apart.

`recipe(dataset, fast=...)` gives the classroom recipes: the defaults are the CIFAR-10 recipe;
`'standin'` and fast mode change a few fields.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path

from .data import AUGMENTATIONS, BATCH_AUGMENTATIONS, DATASETS, dataset_classes, dataset_label
from .models import list_models, model_config
from .support import checkpoint as ckpt
from .support.plan import COMPILE_CHOICES, DATA_PATHS
from .support.runtime import PRECISIONS
from .support.validation import check_choice, check_positive_int, check_range

# Settings renamed since an earlier version: a checkpoint that stored the old name still resumes.
RENAMED_SETTINGS = {"mixing": "batch_augment", "mixing_prob": "batch_augment_prob"}


def option(default, help: str, *, flag: str | None = None, cli: bool = True):
    """A dataclass field with its command-line help (and flag, when not `--field-name`)."""
    metadata = {"help": help, "flag": flag, "cli": cli}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything that decides what a training run computes (stored in its checkpoint).

    The defaults are the classroom CIFAR-10 recipe: `mixer_cifar_small` for 30 epochs.
    """

    model_name: str = option(
        "mixer_cifar_small", "model name, see mixer_edu.list_models()", flag="--model"
    )
    dataset: str = option("cifar10", f"data set: {', '.join(DATASETS)}")
    epochs: int = option(30, "total epochs (with --resume, the run continues up to this)")
    batch_size: int = option(128, "training images per step")
    lr: float = option(1e-3, "peak learning rate")
    weight_decay: float = option(0.05, "AdamW weight decay of the weight matrices")
    warmup_epochs: float = option(3.0, "epochs of linear learning-rate warmup")
    label_smoothing: float = option(0.1, "label smoothing of the cross-entropy, in [0, 1)")
    clip_grad: float = option(1.0, "gradient-norm clipping threshold (0: off)")
    augment: str = option("crop-flip", f"image augmentation: {', '.join(AUGMENTATIONS)}")
    batch_augment: str = option(
        "none", f"batch augmentation (CutMix / Mixup): {', '.join(BATCH_AUGMENTATIONS)}"
    )
    batch_augment_prob: float = option(0.5, "probability that a batch is blended, in [0, 1]")
    drop_path_rate: float = option(
        0.0, "DropPath rate of every block, in [0, 1)", flag="--drop-path"
    )
    seed: int = option(0, "seeds the initial weights and every epoch's randomness")
    train_images: int | None = option(None, "train on the first N training images only")
    test_images: int | None = option(None, "evaluate on the first N test images only")
    model_overrides: dict = option({}, "further keywords for create_model", cli=False)

    def __post_init__(self):
        check_choice(self.model_name, list_models(), "model_name")
        check_choice(self.dataset, DATASETS, "dataset")
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.batch_size, "batch_size")
        check_range(self.lr, "lr", 0, low_open=True)
        check_range(self.weight_decay, "weight_decay", 0, hint="Use 0 for no weight decay.")
        check_range(self.warmup_epochs, "warmup_epochs", 0)
        check_range(self.label_smoothing, "label_smoothing", 0, 1, high_open=True)
        check_range(self.clip_grad, "clip_grad", 0, hint="Use 0 to switch clipping off.")
        check_choice(self.augment, AUGMENTATIONS, "augment")
        check_choice(self.batch_augment, BATCH_AUGMENTATIONS, "batch_augment")
        check_range(self.batch_augment_prob, "batch_augment_prob", 0, 1)
        check_range(self.drop_path_rate, "drop_path_rate", 0, 1, high_open=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {self.seed!r}.")
        for name in ("train_images", "test_images"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), name)
        if not isinstance(self.model_overrides, dict):
            raise TypeError(f"model_overrides must be a dict, got {self.model_overrides!r}.")

    def model_kwargs(self) -> dict:
        """The model's full configuration (`mixer_edu.models.model_config`)."""
        overrides = dict(self.model_overrides)
        if self.drop_path_rate:
            overrides["drop_path_rate"] = self.drop_path_rate
        return model_config(self.model_name, **overrides)

    def dataset_label(self) -> str:
        """How results on this run's data set are labelled ('CIFAR-10', 'synthetic stand-in')."""
        return dataset_label(self.dataset)

    def classes(self) -> tuple[str, ...]:
        """The class names of this run's data set, in label order."""
        return dataset_classes(self.dataset)

    @classmethod
    def field_names(cls) -> set[str]:
        """The recipe's settings: what a checkpoint's stored recipe may hold (old names too)."""
        return {f.name for f in fields(cls)} | set(RENAMED_SETTINGS)

    @staticmethod
    def saved_recipe(train_config: dict) -> dict:
        """A checkpoint's stored recipe with today's setting names (`RENAMED_SETTINGS`)."""
        return {RENAMED_SETTINGS.get(name, name): value for name, value in train_config.items()}


@dataclass
class RunOptions:
    """Where and how a run executes; none of these changes what the model learns.

    `'auto'` and None leave the choice to `support.plan.plan_run`, which says why it chose.
    """

    out: Path | None = option(None, "output folder (default runs/MODEL-DATASET)")
    resume: bool = option(False, "continue the run in --out (a finished run is just loaded)")
    overwrite: bool = option(False, "delete a previous run in --out first")
    precision: str = option("auto", f"{', '.join(PRECISIONS)} (auto: bf16 where native)")
    device: str | None = option(None, "cuda, mps or cpu (default: the fastest available)")
    compile: bool | str = option(
        "auto",
        "--compile / --no-compile: the training step compiled, or eager (auto: compiled on "
        "CUDA GPUs, eager elsewhere; CUDA graphs at small batches)",
    )
    data_path: str = option(
        "auto",
        f"{', '.join(DATA_PATHS)} (auto: the data set on the device for augment none/crop-flip, "
        "the per-image loader for RandAugment/AutoAugment)",
    )
    data_root: Path | None = option(None, "data folder (default $MIXER_EDU_DATA or data/)")
    num_workers: int | None = option(None, "DataLoader worker processes", flag="--workers")
    progress: bool = option(
        True, "no progress bars or epoch lines (progress=False)", flag="--no-progress"
    )

    def __post_init__(self):
        check_choice(self.precision, PRECISIONS, "precision")
        check_choice(self.data_path, DATA_PATHS, "data_path")
        check_choice(self.compile, COMPILE_CHOICES, "compile")
        if self.num_workers is not None:
            check_range(self.num_workers, "num_workers", 0)
        if self.resume and self.overwrite:
            raise ValueError("pass either resume or overwrite, not both.")

    def plan(self) -> dict:
        """The choices `support.plan.plan_run` takes: precision, data path, compile, workers."""
        return dict(
            precision=self.precision,
            data_path=self.data_path,
            compile=self.compile,
            num_workers=self.num_workers,
        )

    @classmethod
    def from_keywords(cls, keywords: dict) -> RunOptions:
        """`RunOptions(**keywords)`, saying where a recipe field given by mistake belongs."""
        recipe_fields = set(keywords) & {f.name for f in fields(TrainConfig)}
        if recipe_fields:
            first, *_ = names = sorted(recipe_fields)
            raise TypeError(
                f"{', '.join(names)}: part of the recipe, not a run option; pass "
                f"train(TrainConfig({first}=...)) or train(recipe(dataset, {first}=...))."
            )
        return cls(**keywords)


# --------------------------------------------------------------------------------------------
# The classroom recipes: changes to TrainConfig's defaults.
# --------------------------------------------------------------------------------------------

RECIPES = {
    # Classroom CIFAR-10: Mixer with the width and depth of the reference repositories
    # (C=128, 8 blocks), 30 epochs with crop+flip and label smoothing: the defaults.
    "cifar10": {},
    # The stand-in with the full budget (offline classrooms).
    "standin": dict(dataset="standin", epochs=15, warmup_epochs=1.0),
    # Fast mode (CI, MIXER_EDU_FAST=1): a tiny model for a few short epochs.
    "fast": dict(
        model_name="mixer_cifar_tiny", dataset="standin", epochs=4, batch_size=64, warmup_epochs=0.5
    ),
}


def recipe(dataset: str = "cifar10", fast: bool = False, **changes) -> TrainConfig:
    """The classroom recipe for `dataset` (or fast mode's), with optional `changes`.

    Example (a notebook):
        >>> config = recipe(course_dataset(), fast=fast_mode())
        >>> result = train(config, out=run_dir("04-training"), resume=True)
    """
    if not fast:
        check_choice(dataset, DATASETS, "dataset")
    return TrainConfig(**{**RECIPES["fast" if fast else dataset], **changes})


def default_out(config: TrainConfig) -> Path:
    """`runs/MODEL-DATASET`: where a run writes when no `out` is given."""
    return Path("runs") / f"{config.model_name}-{config.dataset}"


# --------------------------------------------------------------------------------------------
# The command line, built from the fields above.
# --------------------------------------------------------------------------------------------

_TYPES = {"int": int, "float": float, "str": str, "Path": Path}


def add_arguments(parser: argparse.ArgumentParser, config_class) -> None:
    """One option per field of `config_class`; unset options stay out of the parsed namespace.

    Leaving them out (`argparse.SUPPRESS`) keeps the defaults in the dataclass alone: the CLI
    passes on only what was typed.
    """
    for f in fields(config_class):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        if f.type == "bool | str":  # True, False or 'auto' (unset): --flag / --no-flag
            parser.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS, help=meta["help"],
            )  # fmt: skip
            continue
        if f.type == "bool":
            action = "store_false" if default else "store_true"
            parser.add_argument(
                flag, dest=f.name, action=action, default=argparse.SUPPRESS, help=meta["help"]
            )
            continue
        base_type = f.type.split(" | ")[0]  # "int | None" -> "int"
        shown = f" (default: {default})" if default is not None else ""
        parser.add_argument(
            flag,
            dest=f.name,
            type=_TYPES[base_type],
            default=argparse.SUPPRESS,
            help=meta["help"] + shown,
            metavar=flag.lstrip("-").replace("-", "_").upper(),
        )


def split_arguments(args: argparse.Namespace) -> tuple[dict, dict]:
    """The recipe fields and the run options that were given on the command line."""
    given = vars(args)
    recipe_names = {f.name for f in fields(TrainConfig)}
    option_names = {f.name for f in fields(RunOptions)}
    return (
        {k: v for k, v in given.items() if k in recipe_names},
        {k: v for k, v in given.items() if k in option_names},
    )


def build_parser() -> argparse.ArgumentParser:
    """`--fast`, then one option per field of `TrainConfig` and `RunOptions`."""
    parser = argparse.ArgumentParser(
        prog="python -m mixer_edu.train",
        description="Train an MLP-Mixer on CIFAR-10 or the synthetic stand-in.",
        epilog="Unset options come from the recipe of the data set (or from the checkpoint "
        "with --resume). Example: python -m mixer_edu.train --dataset standin --epochs 5 "
        "--out runs/standin",
    )
    parser.add_argument("--fast", action="store_true", help="fast-mode recipe: a tiny model")
    add_arguments(parser.add_argument_group("recipe"), TrainConfig)
    add_arguments(parser.add_argument_group("run"), RunOptions)
    return parser


def config_from_command_line(changes: dict, options: dict, fast: bool = False) -> TrainConfig:
    """The recipe of the data set (or, with `resume`, the checkpoint's), with `changes` applied."""
    config = recipe(changes.get("dataset", "cifar10"), fast=fast)
    if options.get("resume"):
        options.setdefault("out", default_out(replace(config, **changes)))
        config = checkpoint_recipe(options["out"]) or config  # it fills the gaps
    return replace(config, **changes)


def checkpoint_recipe(out: Path) -> TrainConfig | None:
    """The `TrainConfig` stored in `out`'s checkpoint, or None when there is none yet."""
    path = Path(out) / ckpt.CHECKPOINT_NAME
    if not path.exists():
        return None
    saved = ckpt.load_resumable(path, TrainConfig.field_names())["train_config"]
    return TrainConfig(**TrainConfig.saved_recipe(saved))


def from_command_line(argv: list[str] | None = None) -> tuple[TrainConfig, dict]:
    """`python -m mixer_edu.train ...` read: the recipe and the run options (a dict for `train`)."""
    args = build_parser().parse_args(argv)
    changes, options = split_arguments(args)
    return config_from_command_line(changes, options, args.fast), options
