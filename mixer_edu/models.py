"""Named models: the paper's Mixer family, small models for CIFAR-sized images, and gMLP.

`MODELS` is an explicit registry: each entry names the class that builds the model, its keyword
arguments, and a title to print. `create_model(name, **overrides)` builds one; adding a model
family is one more entry. The paper's models (Table 1 of Tolstikhin et al. 2021) use 224x224 images:

    name            patch  layers  hidden C  token MLP D_S  channel MLP D_C  params
    mixer_s32_224    32      8       512         256            2048          19M
    mixer_s16_224    16      8       512         256            2048          18M
    mixer_b32_224    32     12       768         384            3072          60M
    mixer_b16_224    16     12       768         384            3072          59M
    mixer_l32_224    32     24      1024         512            4096         206M
    mixer_l16_224    16     24      1024         512            4096         207M
    mixer_h14_224    14     32      1280         640            5120         431M

(parameters without the classification head, as in the paper). Halving the patch size gives
four times the tokens (larger token-mixing MLPs) but a four times smaller stem (P*P*3 inputs per
patch), which is why S/16 has fewer parameters than S/32 while costing about four times the
compute.

The `mixer_cifar_*` models take 32x32 images with 4x4 patches (an 8x8 grid of 64 tokens) and
10 classes, and are small enough to train on a laptop CPU. `mixer_cifar_small` has the shape
used by the CIFAR-10 reference repositories (C=128, D_S=64, D_C=512, 8 layers).

The `gmlp_*` entries build `GMlp` (`mixer_edu.gmlp`: Mixer's stem and head around spatial gating
blocks), with the shapes of Liu et al. 2021 and timm: 30 layers, 16x16 patches, gated MLP
width 6C; gMLP-Ti/S/B have C = 128/256/512 and 5.9M/19.4M/73.1M parameters with the head.
`gmlp_cifar_tiny` and `gmlp_cifar_small` match `mixer_cifar_tiny` and `mixer_cifar_small` in
images, patches, width and depth.

Every model comes with timm's `pretrained_cfg`: how to prepare its images (mean and std, size,
crop, interpolation), which `timm.data.resolve_model_data_config(model)` reads. The models are
untrained; `mixer_edu.tools.pretrained` loads the paper's weights through timm.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .gmlp import GMlp
from .mixer import MlpMixer
from .support.checkpoint import load_checkpoint, load_weights
from .support.timm_compat import BlockFeatures
from .support.validation import check_choice, to_pair

# How to prepare the images, in the words of timm's `pretrained_cfg`. The paper's models: timm's
# settings for the paper's weights (pixels scaled to [-1, 1] by mean and std 0.5; resized to
# 224 / 0.875 = 256 with bicubic interpolation, then the central 224x224).
PAPER_IMAGES = dict(
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    interpolation="bicubic",
    crop_pct=0.875,
    crop_mode="center",
)
# The CIFAR models: CIFAR-10's per-channel statistics, those of `mixer_edu.data` (written out
# here so that building a model does not import the data pipeline; a test checks they agree);
# test images are used whole, without resizing or cropping.
CIFAR_IMAGES = dict(
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    interpolation="bilinear",
    crop_pct=1.0,
    crop_mode="center",
)


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: the class that builds the model, its keywords, a printable title,
    and how its images are prepared (mean, std, crop; see `pretrained_cfg`)."""

    model_class: type[nn.Module]
    config: dict
    title: str
    images: dict


# The paper's models see 224x224 RGB images and ImageNet's 1000 classes.
PAPER = dict(img_size=224, in_chans=3, num_classes=1000)
# CIFAR-sized: 32x32 images, 4x4 patches -> an 8x8 grid of 64 tokens, 10 classes.
CIFAR = dict(img_size=32, patch_size=4, num_classes=10)


def paper_mixer(size: str, patch: int, blocks: int, width: int) -> tuple[str, ModelSpec]:
    """A row of the paper's Table 1: `("mixer_b16_224", Mixer-B/16's entry)`."""
    config = dict(PAPER, patch_size=patch, num_blocks=blocks, embed_dim=width)
    spec = ModelSpec(MlpMixer, config, f"Mixer-{size}/{patch}", PAPER_IMAGES)
    return f"mixer_{size.lower()}{patch}_224", spec


def paper_gmlp(size: str, width: int) -> tuple[str, ModelSpec]:
    """A gMLP of Liu et al. (30 blocks, 16x16 patches, gated width 6C): `("gmlp_ti16_224", ...)`."""
    config = dict(PAPER, patch_size=16, num_blocks=30, embed_dim=width, mlp_ratio=6)
    return f"gmlp_{size.lower()}16_224", ModelSpec(GMlp, config, f"gMLP-{size}/16", PAPER_IMAGES)


# The registry: adding a model family is one more entry here.
MODELS: dict[str, ModelSpec] = {
    # The paper's family (Table 1): size, patch, layers, hidden size C.
    **dict(
        paper_mixer(*row)
        for row in [
            ("S", 32, 8, 512),
            ("S", 16, 8, 512),
            ("B", 32, 12, 768),
            ("B", 16, 12, 768),
            ("L", 32, 24, 1024),
            ("L", 16, 24, 1024),
            ("H", 14, 32, 1280),
        ]
    ),
    # CIFAR-sized Mixers.
    "mixer_cifar_tiny": ModelSpec(
        MlpMixer, dict(CIFAR, num_blocks=4, embed_dim=64), "Mixer (CIFAR, tiny)", CIFAR_IMAGES
    ),
    "mixer_cifar_small": ModelSpec(
        MlpMixer, dict(CIFAR, num_blocks=8, embed_dim=128), "Mixer (CIFAR, small)", CIFAR_IMAGES
    ),
    "mixer_cifar_base": ModelSpec(
        MlpMixer, dict(CIFAR, num_blocks=8, embed_dim=256), "Mixer (CIFAR, base)", CIFAR_IMAGES
    ),
    # gMLP: the paper's Ti/S/B at 224x224, then CIFAR-sized.
    **dict(paper_gmlp(size, width) for size, width in [("Ti", 128), ("S", 256), ("B", 512)]),
    "gmlp_cifar_tiny": ModelSpec(
        GMlp,
        dict(CIFAR, num_blocks=4, embed_dim=64, mlp_ratio=6),
        "gMLP (CIFAR, tiny)",
        CIFAR_IMAGES,
    ),
    "gmlp_cifar_small": ModelSpec(
        GMlp,
        dict(CIFAR, num_blocks=8, embed_dim=128, mlp_ratio=6),
        "gMLP (CIFAR, small)",
        CIFAR_IMAGES,
    ),
}

# Each model's keyword dict, by name (the registry without the classes).
MODEL_CONFIGS: dict[str, dict] = {name: spec.config for name, spec in MODELS.items()}


def list_models() -> list[str]:
    """Names accepted by `create_model`, in the order above."""
    return list(MODELS)


def model_spec(name: str) -> ModelSpec:
    """The registry entry of `name`; an unknown name lists the known ones (and the closest)."""
    return MODELS[check_choice(name, MODELS, "model name")]


def model_config(name: str, **overrides) -> dict:
    """The full keyword dict that `create_model(name, **overrides)` passes to the model."""
    return {**model_spec(name).config, **overrides}


def model_class(name: str) -> type[nn.Module]:
    """The class that builds the named model (`MlpMixer` or `GMlp`)."""
    return model_spec(name).model_class


def create_model(
    name: str,
    pretrained: bool = False,
    *,
    features_only: bool = False,
    out_indices: int | Sequence[int] | None = None,
    **overrides,
) -> nn.Module:
    """Build the named model; keyword overrides change its configuration.

    Args:
        name: a name of `list_models()`.
        pretrained: False (the models are built untrained). timm's keyword, accepted so that
            timm's code can build our models; True raises, pointing to where weights come from.
        features_only: return the model as a feature extractor (`support.timm_compat.
            BlockFeatures`), as timm's `create_model` does: its forward gives the token table
            after the blocks `out_indices` (timm's default: the last three) as `(B, C, h, w)` maps.
        out_indices: which blocks, with `features_only` (see `support.timm_compat.take_indices`).
        **overrides: the model's keywords, over the registry's.

    The model (or the feature extractor) carries timm's `pretrained_cfg` (alias `default_cfg`).

    Example:
        >>> model = create_model("mixer_b16_224", num_classes=0)   # no head, as in Table 1
        >>> model = create_model("mixer_cifar_small", drop_path_rate=0.1)
        >>> model = create_model("gmlp_cifar_tiny", near_identity_gate=False)
        >>> features = create_model("mixer_cifar_tiny", features_only=True)  # last 3 blocks
    """
    if pretrained:
        raise ValueError(
            f"create_model builds untrained models, so pretrained must be False for {name!r}; "
            "the paper's weights load from timm with mixer_edu.tools.pretrained.load_pretrained"
            "('mixer_b16_224.goog_in21k_ft_in1k') (timm.list_pretrained('mixer_*') lists them) "
            "or from_timm(timm_model); the CIFAR models have none: train one (mixer_edu.train)."
        )
    if out_indices is not None and not features_only:
        raise TypeError("out_indices chooses the outputs of features_only=True; pass both.")
    model = model_class(name)(**model_config(name, **overrides))
    model.pretrained_cfg = model.default_cfg = pretrained_cfg(name, model)
    if not features_only:
        return model
    features = BlockFeatures(model, 3 if out_indices is None else out_indices)
    # As timm's: without the head's entries, which a feature extractor does not have.
    features.pretrained_cfg = features.default_cfg = {
        key: value
        for key, value in model.pretrained_cfg.items()
        if key not in ("num_classes", "classifier")
    }
    return features


# --------------------------------------------------------------------------------------------
# Models back from checkpoints (written by `mixer_edu.train`, read by `support.checkpoint`).
# --------------------------------------------------------------------------------------------

# The modules whose layer classes a checkpoint's model config may name. mixer_edu's own layers
# (every nn.Module subclass defined in these modules) and torch's activations and normalisations:
# building any of them only creates weights.
LAYER_MODULES = (
    "mixer_edu.mlp",
    "mixer_edu.drop_path",
    "mixer_edu.patching",
    "mixer_edu.mixer",
    "mixer_edu.gmlp",
    "mixer_edu.seq_mixing",
    "torch.nn.modules.activation",
    "torch.nn.modules.normalization",
    "torch.nn.modules.linear",  # nn.Identity
)


def layer_classes() -> dict[str, type[nn.Module]]:
    """The allow-list: `{"mixer_edu.mixer.MixerBlock": MixerBlock, ...}`, by `encode_config` name.

    Only classes *defined* in `LAYER_MODULES` (not what they import) and only `nn.Module`
    subclasses: a name in a checkpoint can never reach a function such as `os.system`.
    """
    classes = {}
    for module_name in LAYER_MODULES:
        for value in vars(importlib.import_module(module_name)).values():
            if (
                isinstance(value, type)
                and issubclass(value, nn.Module)
                and value.__module__ == module_name
            ):
                classes[f"{value.__module__}.{value.__qualname__}"] = value
    return classes


def decode_config(config: dict) -> dict:
    """Undo `encode_config`; a class name is looked up in the allow-list `layer_classes()` only."""
    allowed = None
    decoded = {}
    for key, value in config.items():
        if isinstance(value, dict) and set(value) == {"class"}:
            allowed = allowed if allowed is not None else layer_classes()
            name = value["class"]
            if not isinstance(name, str) or name not in allowed:
                raise ValueError(
                    f"model_config[{key!r}] names {name!r}, which is not one of mixer_edu's layer "
                    "classes (or torch.nn's activation and normalisation layers); such a "
                    "checkpoint is not loaded, for safety: a name could point at any function."
                )
            value = allowed[name]
        decoded[key] = value
    return decoded


def build_model(checkpoint: dict) -> nn.Module:
    """A new model with the checkpoint's name and configuration, and its weights."""
    model = create_model(checkpoint["model_name"], **decode_config(checkpoint["model_config"]))
    load_weights(model, checkpoint["model"], f"the checkpoint of {checkpoint['model_name']}")
    return model


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the trained model stored in a checkpoint or snapshot.

    Returns:
        `(model, checkpoint)`: the model in eval mode on `device`, and the checkpoint dict
        (`epoch`, `dataset`, `classes`, ... ; see the module docstring).

    Example:
        >>> model, checkpoint = load_model("runs/standin/checkpoint.pt")
        >>> checkpoint["epoch"], checkpoint["dataset"]
    """
    checkpoint = load_checkpoint(path)
    model = build_model(checkpoint)
    return model.to(device).eval(), checkpoint


def pretrained_cfg(name: str, model: nn.Module) -> dict:
    """timm's `pretrained_cfg` of a model built by `create_model(name, ...)`.

    timm's tools read it: `timm.data.resolve_model_data_config(model)` takes the mean, std, input
    size, crop and interpolation from it (without it, timm falls back to ImageNet's mean and std,
    the wrong preprocessing for the paper's weights and for our CIFAR models); `first_conv` and
    `classifier` name the stem's convolution and the head. The input size and number of classes
    are those of `model`, after any override.
    """
    height, width = to_pair(model.stem.img_size)
    return dict(
        architecture=name,
        input_size=(model.in_chans, height, width),
        fixed_input_size=True,  # the token-mixing weights fix the number of patches
        **model_spec(name).images,
        num_classes=model.num_classes,
        pool_size=None,
        first_conv="stem.proj",
        classifier="head",
    )
