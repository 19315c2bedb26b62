"""One fixed rearrangement of the pixels, applied to every image: the paper's Figure 4 experiment.

Tolstikhin et al. (2021, Section 3.4 and Figure 4) train a Mixer and a ResNet on images whose
pixels were rearranged by one permutation, the same for every image:

- **patches and pixels**: the patches are shuffled, and the pixels inside every patch are shuffled
  the same way;
- **global**: all pixels of the image are shuffled, ignoring patches.

A Mixer is indifferent to the first: its stem is one Linear layer on each patch vector (any fixed
order of the pixels inside a patch is as good as another, notebook 01), and its token-mixing MLP
gives every position its own weights, with no notion of which positions are neighbours. So
whatever a Mixer computes on the original images, a Mixer with rearranged weights computes on the
permuted ones (`permute_mixer` builds it). A CNN's 3x3 kernels assume that neighbouring pixels
belong together; no rearrangement of its weights undoes the shuffle.

`ImagePermutation` holds the permutation as one index per output pixel, `order`: pixel k of the
permuted image is pixel `order[k]` of the original (pixels numbered row by row).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor

from .mixer import MlpMixer
from .support.validation import check_divisible, check_image_batch, check_positive_int


@dataclass(frozen=True)
class ImagePermutation:
    """A fixed permutation of the `image_size * image_size` pixel positions.

    Attributes:
        order: `(H*W,)` long tensor; pixel k of the output is pixel `order[k]` of the input.
        image_size: side of the square images it applies to.
        patch_size, patch_order, pixel_order: set for a patch-and-pixel shuffle: output patch n is
            input patch `patch_order[n]`, and inside every patch, output pixel j is input pixel
            `pixel_order[j]` (patches and pixels numbered row by row); None for a global shuffle.
    """

    order: Tensor
    image_size: int
    patch_size: int | None = None
    patch_order: Tensor | None = None
    pixel_order: Tensor | None = None

    @classmethod
    def patches_and_pixels(cls, image_size: int = 32, patch_size: int = 4, seed: int = 0):
        """Shuffle the patches, and the pixels within every patch the same way."""
        check_positive_int(image_size, "image_size")
        check_positive_int(patch_size, "patch_size")
        check_divisible(image_size, patch_size)
        generator = torch.Generator().manual_seed(seed)
        num_patches = (image_size // patch_size) ** 2
        patch_order = torch.randperm(num_patches, generator=generator)
        pixel_order = torch.randperm(patch_size * patch_size, generator=generator)
        # Rearrange an "image" whose pixels hold their own index, then read the indices back.
        index = torch.arange(image_size * image_size).reshape(1, 1, image_size, image_size)
        patches = rearrange(
            index, "b c (h p1) (w p2) -> b (h w) (p1 p2) c", p1=patch_size, p2=patch_size
        )
        patches = patches[:, patch_order][:, :, pixel_order]  # (1, N, P*P, 1)
        side = image_size // patch_size
        image = rearrange(patches, "b (h w) (p1 p2) c -> b c (h p1) (w p2)", h=side, p1=patch_size)
        return cls(image.flatten(), image_size, patch_size, patch_order, pixel_order)

    @classmethod
    def global_pixels(cls, image_size: int = 32, seed: int = 0):
        """Shuffle all pixels of the image, ignoring patches."""
        check_positive_int(image_size, "image_size")
        generator = torch.Generator().manual_seed(seed)
        return cls(torch.randperm(image_size * image_size, generator=generator), image_size)

    def __call__(self, images: Tensor) -> Tensor:
        """`(B, C, H, W) -> (B, C, H, W)`: the same rearrangement for every image and channel."""
        check_image_batch(images, image_size=self.image_size)
        flat = images.flatten(2)  # (B, C, H*W)
        return flat[:, :, self.order.to(images.device)].reshape(images.shape)

    def inverse(self) -> ImagePermutation:
        """The permutation that puts the pixels back (its patch fields are left unset)."""
        return ImagePermutation(torch.argsort(self.order), self.image_size)


def permute_mixer(model: MlpMixer, permutation: ImagePermutation) -> MlpMixer:
    """A copy of `model` whose output on permuted images equals `model`'s on the originals.

    The stem's filters are rearranged like the pixels inside a patch, and every block's
    token-mixing MLP like the patches: the columns of `fc1` (which position each input weight
    reads) and the rows of `fc2` and its bias (which position each output is written to).
    Everything else acts on each token alone, or averages over all tokens, so it is unchanged.
    Only possible for a patch-and-pixel shuffle whose patch size is the model's.
    """
    if permutation.patch_order is None or permutation.patch_size != model.stem.patch_size:
        raise ValueError(
            "permute_mixer needs a patch-and-pixel shuffle with the model's patch size "
            f"({model.stem.patch_size}), e.g. ImagePermutation.patches_and_pixels(image_size, "
            f"{model.stem.patch_size}); a global shuffle mixes pixels of different patches, which "
            "no rearrangement of a Mixer's weights can undo."
        )
    twin = copy.deepcopy(model)
    patches, pixels = permutation.patch_order, permutation.pixel_order
    with torch.no_grad():
        weight = twin.stem.proj.weight  # (C, 3, P, P): one filter per channel
        flat = weight.flatten(2)[:, :, pixels.to(weight.device)]  # pixels in the new order
        weight.copy_(flat.reshape(weight.shape))
        for block in twin.blocks:
            mlp = block.mlp_tokens
            order = patches.to(mlp.fc1.weight.device)
            mlp.fc1.weight.copy_(mlp.fc1.weight[:, order])  # (D_S, N): input n reads patch order[n]
            mlp.fc2.weight.copy_(mlp.fc2.weight[order])  # (N, D_S): output n is patch order[n]
            mlp.fc2.bias.copy_(mlp.fc2.bias[order])
    return twin
