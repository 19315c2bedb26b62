"""Numbers published in the MLP-Mixer paper, with where they come from.

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

# Table 1: parameters (millions, without the classification head) of the paper's Mixers.
TABLE1_PARAMS_M = {
    "mixer_s32_224": 19,
    "mixer_s16_224": 18,
    "mixer_b32_224": 60,
    "mixer_b16_224": 59,
    "mixer_l32_224": 206,
    "mixer_l16_224": 207,
    "mixer_h14_224": 431,
}
