"""Named model configurations: the paper's Mixer family and small models for CIFAR-sized images.

A configuration is a plain dict of `MlpMixer` keywords; `create_model(name, **overrides)` builds
one. The paper's models (Table 1 of Tolstikhin et al. 2021) use 224x224 images:

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

The `gmlp_*` names build `GMlp` (`mixer_edu.gmlp`: Mixer's stem and head around spatial gating
blocks), with the shapes of Liu et al. 2021 and timm: 30 layers, 16x16 patches, gated MLP
width 6C; gMLP-Ti/S/B have C = 128/256/512 and 5.9M/19.4M/73.1M parameters with the head.
`gmlp_cifar_tiny` and `gmlp_cifar_small` match `mixer_cifar_tiny` and `mixer_cifar_small` in
images, patches, width and depth.
"""

from __future__ import annotations

import difflib

from .gmlp import GMlp
from .mixer import MlpMixer

MODEL_CONFIGS: dict[str, dict] = {
    # The paper's family (ImageNet resolution, 1000 classes).
    "mixer_s32_224": dict(patch_size=32, num_blocks=8, embed_dim=512),
    "mixer_s16_224": dict(patch_size=16, num_blocks=8, embed_dim=512),
    "mixer_b32_224": dict(patch_size=32, num_blocks=12, embed_dim=768),
    "mixer_b16_224": dict(patch_size=16, num_blocks=12, embed_dim=768),
    "mixer_l32_224": dict(patch_size=32, num_blocks=24, embed_dim=1024),
    "mixer_l16_224": dict(patch_size=16, num_blocks=24, embed_dim=1024),
    "mixer_h14_224": dict(patch_size=14, num_blocks=32, embed_dim=1280),
    # CIFAR-sized: 32x32 images, 4x4 patches -> 64 tokens, 10 classes.
    "mixer_cifar_tiny": dict(img_size=32, patch_size=4, num_blocks=4, embed_dim=64, num_classes=10),
    "mixer_cifar_small": dict(
        img_size=32, patch_size=4, num_blocks=8, embed_dim=128, num_classes=10
    ),
    "mixer_cifar_base": dict(
        img_size=32, patch_size=4, num_blocks=8, embed_dim=256, num_classes=10
    ),
    # gMLP (built by GMlp): the paper's Ti/S/B at 224x224, then CIFAR-sized.
    "gmlp_ti16_224": dict(patch_size=16, num_blocks=30, embed_dim=128, mlp_ratio=6),
    "gmlp_s16_224": dict(patch_size=16, num_blocks=30, embed_dim=256, mlp_ratio=6),
    "gmlp_b16_224": dict(patch_size=16, num_blocks=30, embed_dim=512, mlp_ratio=6),
    "gmlp_cifar_tiny": dict(
        img_size=32, patch_size=4, num_blocks=4, embed_dim=64, mlp_ratio=6, num_classes=10
    ),
    "gmlp_cifar_small": dict(
        img_size=32, patch_size=4, num_blocks=8, embed_dim=128, mlp_ratio=6, num_classes=10
    ),
}

# Every paper model is built for 224x224 RGB images and ImageNet's 1000 classes.
_PAPER_DEFAULTS = dict(img_size=224, in_chans=3, num_classes=1000)


def list_models() -> list[str]:
    """Names accepted by `create_model`, in the order above."""
    return list(MODEL_CONFIGS)


def model_config(name: str, **overrides) -> dict:
    """The full keyword dict that `create_model(name, **overrides)` passes to the model."""
    if name not in MODEL_CONFIGS:
        close = difflib.get_close_matches(str(name), MODEL_CONFIGS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown model name {name!r}.{hint} Known models: {', '.join(MODEL_CONFIGS)}."
        )
    defaults = {} if "_cifar" in name else _PAPER_DEFAULTS
    return {**defaults, **MODEL_CONFIGS[name], **overrides}


def model_class(name: str) -> type[MlpMixer]:
    """The class that builds the named model: `GMlp` for `gmlp_*` names, else `MlpMixer`."""
    return GMlp if name.startswith("gmlp_") else MlpMixer


def create_model(name: str, **overrides) -> MlpMixer:
    """Build the named model; keyword overrides change its configuration.

    Example:
        >>> model = create_model("mixer_b16_224", num_classes=0)   # no head, as in Table 1
        >>> model = create_model("mixer_cifar_small", drop_path_rate=0.1)
        >>> model = create_model("gmlp_cifar_tiny", near_identity_gate=False)
    """
    return model_class(name)(**model_config(name, **overrides))
