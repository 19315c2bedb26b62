"""Two small models to set beside a Mixer: a convolutional network and a Vision Transformer.

The MLP-Mixer paper places the Mixer between two families (Tolstikhin et al. 2021, Section 1):

- a **CNN** assumes that nearby pixels belong together and that a pattern means the same thing
  wherever it appears: every layer looks at small neighbourhoods (3x3 kernels) with weights shared
  across positions, and stacking layers widens what a unit sees;
- a **Vision Transformer** (ViT, Dosovitskiy et al. 2021) cuts the image into patches like the
  Mixer, but mixes tokens with self-attention, whose weights are computed from the input; it knows
  where a patch was only through a learned position embedding;
- the **Mixer** mixes tokens with fixed, learned weights, one per pair of positions (through its
  hidden layer), and has no built-in notion of neighbourhood at all.

Both models here are CIFAR-sized (32x32 images, 10 classes) and were sized to have about as many
parameters as `mixer_cifar_tiny` (0.15M), so notebook 08 can train all three on the same data with
the same budget. They are teaching baselines, not tuned architectures.

    SmallCNN   3 stages of two 3x3 convolutions (24, 48, 96 channels; the second and third stage
               start with stride 2), BatchNorm and ReLU, global average pooling, a linear head
    SmallViT   the Mixer's stem (4x4 patches, C = 64) plus a learned position embedding, 3
               pre-norm transformer layers (4 heads, MLP 4C), LayerNorm, mean over tokens, head
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .patching import PatchEmbedding
from .support.validation import check_positive_int


class SmallCNN(nn.Module):
    """A plain convolutional network for 32x32 images: the inductive bias of locality.

    Args:
        num_classes: outputs of the head.
        widths: channels of the three stages.
        in_chans: channels of the input images.

    Shapes:
        `(B, in_chans, H, W) -> (B, num_classes)`; any H, W (global pooling), 32x32 in the course.
    """

    def __init__(
        self, num_classes: int = 10, widths: tuple[int, int, int] = (24, 48, 96), in_chans: int = 3
    ):
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        layers, channels = [], in_chans
        for stage, width in enumerate(widths):
            stride = 1 if stage == 0 else 2  # halve the resolution at the start of stages 2 and 3
            layers += [_conv_bn_relu(channels, width, stride), _conv_bn_relu(width, width, 1)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)
        self.widths = tuple(widths)

    def forward(self, images: Tensor) -> Tensor:
        x = self.features(images)  # (B, 3, 32, 32) -> (B, 96, 8, 8)
        return self.head(x.mean(dim=(2, 3)))  # global average pooling: (B, 96) -> (B, classes)

    def extra_repr(self) -> str:
        return f"widths={self.widths}"


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallViT(nn.Module):
    """A small Vision Transformer with the Mixer's stem: attention in place of token mixing.

    Tokens are the stem's patch embeddings plus a learned position embedding (attention alone
    would treat the patches as an unordered set, see notebook 07). The layers are PyTorch's
    `nn.TransformerEncoderLayer` in the pre-norm arrangement the ViT paper uses; like the Mixer, the
    head reads the mean over tokens (the ViT paper's class token is left out to keep the two heads
    alike).

    Args:
        img_size, patch_size, in_chans: the images and patches, as for `MlpMixer`.
        embed_dim: channels C of each token.
        depth: number of transformer layers.
        num_heads: attention heads (must divide `embed_dim`).
        mlp_ratio: hidden width of each layer's MLP, as a multiple of C.
        num_classes: outputs of the head.

    Shapes:
        `(B, in_chans, img_size, img_size) -> (B, num_classes)`.
    """

    def __init__(
        self,
        img_size: int = 32,
        patch_size: int = 4,
        in_chans: int = 3,
        embed_dim: int = 64,
        depth: int = 3,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        num_classes: int = 10,
    ):
        super().__init__()
        check_positive_int(depth, "depth")
        check_positive_int(num_heads, "num_heads")
        if embed_dim % num_heads:
            raise ValueError(
                f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}; each head gets "
                "embed_dim / num_heads channels, so choose e.g. num_heads=4 for embed_dim=64."
            )
        self.stem = PatchEmbedding(img_size, patch_size, in_chans, embed_dim)
        self.position_embedding = nn.Parameter(torch.zeros(1, self.stem.num_tokens, embed_dim))
        nn.init.trunc_normal_(self.position_embedding, std=0.02)
        layer = nn.TransformerEncoderLayer(
            embed_dim,
            num_heads,
            dim_feedforward=int(mlp_ratio * embed_dim),
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,  # pre-norm: x + Attention(LayerNorm(x)), as in ViT and the Mixer
        )
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)

    @property
    def num_tokens(self) -> int:
        return self.stem.num_tokens

    def forward(self, images: Tensor) -> Tensor:
        x = self.stem(images) + self.position_embedding  # (B, N, C)
        x = self.norm(self.blocks(x))  # (B, N, C)
        return self.head(x.mean(dim=1))  # (B, C) -> (B, classes)


BASELINES = {"cnn_cifar_tiny": SmallCNN, "vit_cifar_tiny": SmallViT}


def create_baseline(name: str, **kwargs) -> nn.Module:
    """Build `'cnn_cifar_tiny'` (`SmallCNN`) or `'vit_cifar_tiny'` (`SmallViT`)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; use one of {sorted(BASELINES)}.")
    return BASELINES[name](**kwargs)


def count_parameters(model: nn.Module) -> int:
    """The number of learned numbers in `model`."""
    return sum(p.numel() for p in model.parameters())
