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
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .gmlp import GMlp
from .mixer import MlpMixer
from .support.checkpoint import load_checkpoint, load_weights
from .support.validation import check_choice


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: the class that builds the model, its keywords, a printable title."""

    model_class: type[nn.Module]
    config: dict
    title: str


# The paper's models see 224x224 RGB images and ImageNet's 1000 classes.
PAPER = dict(img_size=224, in_chans=3, num_classes=1000)
# CIFAR-sized: 32x32 images, 4x4 patches -> an 8x8 grid of 64 tokens, 10 classes.
CIFAR = dict(img_size=32, patch_size=4, num_classes=10)


def paper_mixer(size: str, patch: int, blocks: int, width: int) -> tuple[str, ModelSpec]:
    """A row of the paper's Table 1: `("mixer_b16_224", Mixer-B/16's entry)`."""
    config = dict(PAPER, patch_size=patch, num_blocks=blocks, embed_dim=width)
    return f"mixer_{size.lower()}{patch}_224", ModelSpec(MlpMixer, config, f"Mixer-{size}/{patch}")


def paper_gmlp(size: str, width: int) -> tuple[str, ModelSpec]:
    """A gMLP of Liu et al. (30 blocks, 16x16 patches, gated width 6C): `("gmlp_ti16_224", ...)`."""
    config = dict(PAPER, patch_size=16, num_blocks=30, embed_dim=width, mlp_ratio=6)
    return f"gmlp_{size.lower()}16_224", ModelSpec(GMlp, config, f"gMLP-{size}/16")


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
        MlpMixer, dict(CIFAR, num_blocks=4, embed_dim=64), "Mixer (CIFAR, tiny)"
    ),
    "mixer_cifar_small": ModelSpec(
        MlpMixer, dict(CIFAR, num_blocks=8, embed_dim=128), "Mixer (CIFAR, small)"
    ),
    "mixer_cifar_base": ModelSpec(
        MlpMixer, dict(CIFAR, num_blocks=8, embed_dim=256), "Mixer (CIFAR, base)"
    ),
    # gMLP: the paper's Ti/S/B at 224x224, then CIFAR-sized.
    **dict(paper_gmlp(size, width) for size, width in [("Ti", 128), ("S", 256), ("B", 512)]),
    "gmlp_cifar_tiny": ModelSpec(
        GMlp, dict(CIFAR, num_blocks=4, embed_dim=64, mlp_ratio=6), "gMLP (CIFAR, tiny)"
    ),
    "gmlp_cifar_small": ModelSpec(
        GMlp, dict(CIFAR, num_blocks=8, embed_dim=128, mlp_ratio=6), "gMLP (CIFAR, small)"
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


def create_model(name: str, **overrides) -> nn.Module:
    """Build the named model; keyword overrides change its configuration.

    Example:
        >>> model = create_model("mixer_b16_224", num_classes=0)   # no head, as in Table 1
        >>> model = create_model("mixer_cifar_small", drop_path_rate=0.1)
        >>> model = create_model("gmlp_cifar_tiny", near_identity_gate=False)
    """
    return model_class(name)(**model_config(name, **overrides))


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
