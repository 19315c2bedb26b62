"""Numbers published in the MLP-Mixer paper, with where they come from.

`TABLE1` is the paper's Table 1, the specifications of its seven Mixers: patch size, number of
layers, hidden size C, sequence length S, the hidden widths D_C and D_S of the two MLPs, and the
parameters in millions (without the head).

Tolstikhin et al., "MLP-Mixer: An all-MLP Architecture for Vision", NeurIPS 2021
(arXiv:2105.01601). Notebook 08 plots these; nothing here was measured by this course. Only
values the paper prints in a table are kept (Figures 2 and 3 are described in words in the
notebook, not re-plotted from read-off points).

`TABLE2` holds rows of the paper's Table 2 (transfer to ImageNet after pre-training): the
ImageNet top-1 accuracy after fine-tuning, and the inference throughput in images per second per
TPUv3 core. The Mixer, ViT and BiT rows in both pre-training groups are kept; the rows of other
models and the other columns (ReaL, average of 5 tasks, VTAB, training cost) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

CITATION = (
    "Tolstikhin et al. 2021, MLP-Mixer: An all-MLP Architecture for Vision (arXiv:2105.01601)"
)


@dataclass(frozen=True)
class PublishedResult:
    model: str
    family: str  # "Mixer", "ViT" or "BiT (ResNet)"
    pretraining: str  # "ImageNet-21k" (14M images, public) or "JFT-300M" (300M, proprietary)
    imagenet_top1: float  # % after fine-tuning on ImageNet
    throughput: float  # images / second / TPUv3 core


TABLE2 = (
    PublishedResult("Mixer-L/16", "Mixer", "ImageNet-21k", 84.15, 105),
    PublishedResult("ViT-L/16", "ViT", "ImageNet-21k", 85.30, 32),
    PublishedResult("BiT-R152x4", "BiT (ResNet)", "ImageNet-21k", 85.39, 26),
    PublishedResult("Mixer-H/14", "Mixer", "JFT-300M", 87.94, 40),
    PublishedResult("ViT-H/14", "ViT", "JFT-300M", 88.55, 15),
    PublishedResult("BiT-R152x4", "BiT (ResNet)", "JFT-300M", 87.54, 26),
)


@dataclass(frozen=True)
class MixerSpec:
    """One column of the paper's Table 1 (its "Specifications of the Mixer architectures")."""

    title: str  # the paper's name, e.g. "Mixer-B/16"
    patch_size: int  # "Patch resolution P x P"
    num_layers: int
    hidden_size: int  # C
    sequence_length: int  # S = N, the number of patches of a 224x224 image
    mlp_dim_channels: int  # D_C, the channel-mixing MLP's hidden width
    mlp_dim_tokens: int  # D_S, the token-mixing MLP's hidden width
    params_m: int  # millions, without the classification head


# Table 1 in full, keyed by the name `create_model` knows the model by.
TABLE1 = {
    "mixer_s32_224": MixerSpec("Mixer-S/32", 32, 8, 512, 49, 2048, 256, 19),
    "mixer_s16_224": MixerSpec("Mixer-S/16", 16, 8, 512, 196, 2048, 256, 18),
    "mixer_b32_224": MixerSpec("Mixer-B/32", 32, 12, 768, 49, 3072, 384, 60),
    "mixer_b16_224": MixerSpec("Mixer-B/16", 16, 12, 768, 196, 3072, 384, 59),
    "mixer_l32_224": MixerSpec("Mixer-L/32", 32, 24, 1024, 49, 4096, 512, 206),
    "mixer_l16_224": MixerSpec("Mixer-L/16", 16, 24, 1024, 196, 4096, 512, 207),
    "mixer_h14_224": MixerSpec("Mixer-H/14", 14, 32, 1280, 256, 5120, 640, 431),
}

# Table 1's last row alone: parameters (millions, without the classification head).
TABLE1_PARAMS_M = {name: spec.params_m for name, spec in TABLE1.items()}
