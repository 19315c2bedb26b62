"""Images to patches to tokens: the first step of every Mixer.

A Mixer never looks at pixels one by one. It cuts the image into a grid of non-overlapping
`patch_size x patch_size` patches, unrolls each patch into one vector of `P * P * C` numbers and
projects every patch vector with the *same* linear map to `embed_dim` channels:

    image (B, C, H, W)
      -> patches (B, N, P*P*C)     N = (H / P) * (W / P) patches, read row by row
      -> tokens  (B, N, embed_dim) one shared Linear(P*P*C, embed_dim)

After this, the image is a table: one row per patch ("token"), one column per channel. The rest of
the Mixer only ever mixes along the rows (token mixing) or along the columns (channel mixing).

Two ways to write the projection, with exactly the same numbers:

1. `patchify`, then a `nn.Linear` on the unrolled patches (the paper's description);
2. a `nn.Conv2d` with `kernel_size = stride = patch_size` (what timm and most code use, because
   it skips the explicit reshuffle of pixels).

A convolution whose stride equals its kernel size visits each patch exactly once, and at each patch
it computes a dot product between the patch and each filter: that is a Linear layer applied to the
patch. `conv_to_linear` and `linear_to_conv` convert the weights between the two forms.

Patch vectors are unrolled in (row, column, channel) order, `(p1 p2 c)`, as in the paper's JAX
code, so a patch vector reshaped to `(P, P, C)` is a small RGB image again.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from .validation import check_divisible, check_image_batch, check_positive_int, check_tensor


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into non-overlapping patches and unroll each patch into a vector.

    Args:
        images: `(B, C, H, W)`; H and W must be multiples of `patch_size`.
        patch_size: side P of the square patches.

    Returns:
        `(B, N, P*P*C)` with `N = (H/P) * (W/P)`; patches in row-major order (left to right,
        then top to bottom), each unrolled as `(p1 p2 c)`.
    """
    check_positive_int(patch_size, "patch_size")
    check_image_batch(images)
    for size in images.shape[-2:]:
        check_divisible(size, patch_size)
    # (B, C, h*P, w*P) -> (B, h*w, P*P*C)
    return rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_size, p2=patch_size)


def unpatchify(
    patches: torch.Tensor,
    patch_size: int,
    grid_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Put unrolled patches back together into images: the exact inverse of `patchify`.

    Args:
        patches: `(B, N, P*P*C)` as returned by `patchify`.
        patch_size: side P of the square patches.
        grid_size: `(rows, columns)` of the patch grid; by default the grid is square, `sqrt(N)`.

    Returns:
        `(B, C, rows*P, columns*P)`.
    """
    check_positive_int(patch_size, "patch_size")
    check_tensor(patches, "patches")
    if patches.ndim != 3:
        raise ValueError(
            f"patches must have shape (B, N, P*P*C), got {tuple(patches.shape)}; "
            "for a single image add the batch axis with patches.unsqueeze(0)."
        )
    _, num_patches, patch_dim = patches.shape
    if patch_dim % (patch_size * patch_size) != 0:
        raise ValueError(
            f"the last axis ({patch_dim}) must be P*P*C for patch_size P={patch_size}, "
            f"but {patch_dim} is not a multiple of {patch_size * patch_size}; "
            "check that patch_size is the one used by patchify."
        )
    if grid_size is None:
        side = math.isqrt(num_patches)
        if side * side != num_patches:
            raise ValueError(
                f"{num_patches} patches do not form a square grid; "
                "pass grid_size=(rows, columns) explicitly."
            )
        grid_size = (side, side)
    rows, columns = grid_size
    if rows * columns != num_patches:
        raise ValueError(
            f"grid_size {tuple(grid_size)} holds {rows * columns} patches but there are "
            f"{num_patches}; pass the grid used when the patches were made."
        )
    # (B, h*w, P*P*C) -> (B, C, h*P, w*P)
    return rearrange(
        patches,
        "b (h w) (p1 p2 c) -> b c (h p1) (w p2)",
        h=rows,
        w=columns,
        p1=patch_size,
        p2=patch_size,
    )


def conv_to_linear(conv: nn.Conv2d) -> nn.Linear:
    """Return the `nn.Linear` on unrolled patches that computes exactly what `conv` computes.

    The conv filters `(D, C, P, P)` are reordered to `(D, P, P, C)` to match `patchify`'s
    `(p1 p2 c)` order, then flattened to the Linear's `(D, P*P*C)` weight matrix.
    """
    _check_patch_conv(conv)
    out_channels, in_channels, p, _ = conv.weight.shape
    linear = nn.Linear(
        p * p * in_channels,
        out_channels,
        bias=conv.bias is not None,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        linear.weight.copy_(rearrange(conv.weight, "d c p1 p2 -> d (p1 p2 c)"))
        if conv.bias is not None:
            linear.bias.copy_(conv.bias)
    return linear


def linear_to_conv(linear: nn.Linear, patch_size: int, in_chans: int = 3) -> nn.Conv2d:
    """Return the strided `nn.Conv2d` that computes exactly what `linear` does on patches."""
    check_positive_int(patch_size, "patch_size")
    expected = patch_size * patch_size * in_chans
    if linear.in_features != expected:
        raise ValueError(
            f"linear.in_features is {linear.in_features}, but patches of size {patch_size} with "
            f"{in_chans} channels have {expected} numbers; pass the patch_size and in_chans "
            "the Linear was built for."
        )
    conv = nn.Conv2d(
        in_chans,
        linear.out_features,
        kernel_size=patch_size,
        stride=patch_size,
        bias=linear.bias is not None,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(
            rearrange(linear.weight, "d (p1 p2 c) -> d c p1 p2", p1=patch_size, p2=patch_size)
        )
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def _check_patch_conv(conv: nn.Conv2d) -> None:
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"expected an nn.Conv2d, got {type(conv).__name__}.")
    k, s = conv.kernel_size, conv.stride
    if k[0] != k[1] or tuple(s) != tuple(k) or conv.padding not in ((0, 0), "valid"):
        raise ValueError(
            f"only a patch convolution (square kernel, stride = kernel size, no padding) is a "
            f"Linear on patches; got kernel_size={k}, stride={s}, padding={conv.padding}."
        )


class PatchEmbedding(nn.Module):
    """The Mixer's stem: one shared linear projection of every patch, as a strided convolution.

    Args:
        img_size: side of the square input images.
        patch_size: side P of the square patches; must divide `img_size`.
        in_chans: channels C of the input images.
        embed_dim: channels of each output token (the paper's hidden size C).

    Shapes:
        `(B, in_chans, img_size, img_size) -> (B, N, embed_dim)`, `N = (img_size / P) ** 2`.

    The parameter is called `proj` (as in timm), so checkpoints have the key `stem.proj.weight`.
    """

    def __init__(
        self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768
    ):
        super().__init__()
        for value, name in [
            (img_size, "img_size"),
            (patch_size, "patch_size"),
            (in_chans, "in_chans"),
            (embed_dim, "embed_dim"),
        ]:
            check_positive_int(value, name)
        check_divisible(img_size, patch_size)
        self.img_size = img_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_image_batch(images, channels=self.in_chans, image_size=self.img_size)
        x = self.proj(images)  # (B, D, h, w): one D-vector per patch
        return rearrange(x, "b d h w -> b (h w) d")  # (B, N, D), patches read row by row

    def extra_repr(self) -> str:
        return (
            f"img_size={self.img_size}, patch_size={self.patch_size}, "
            f"grid_size={self.grid_size}, num_patches={self.num_patches}"
        )
