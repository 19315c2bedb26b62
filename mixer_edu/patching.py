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

Images and patches are square in the course, but both may be rectangles, as in timm: every size
below is an int `S` (meaning `S x S`) or a pair `(height, width)`.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from .support.validation import (
    check_divisible,
    check_image_batch,
    check_positive_int,
    check_tensor,
    to_pair,
    tracing,
)

Size = int | tuple[int, int]  # S for S x S, or (height, width)


def check_size(size: Size, name: str) -> tuple[int, int]:
    """`S -> (S, S)`; a pair `(height, width)` is checked and returned as a tuple."""
    pair = to_pair(size)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair (height, width), got {size!r}.")
    for value in pair:
        check_positive_int(value, name)
    return pair


def _as_given(pair: tuple[int, int]) -> Size:
    """A square size as one int (the course's usual case), a rectangle as (height, width)."""
    return pair[0] if pair[0] == pair[1] else pair


def patchify(images: torch.Tensor, patch_size: Size) -> torch.Tensor:
    """Cut images into non-overlapping patches and unroll each patch into a vector.

    Args:
        images: `(B, C, H, W)`; H and W must be multiples of the patch height and width.
        patch_size: side P of square patches, or `(P_h, P_w)`.

    Returns:
        `(B, N, P_h*P_w*C)` with `N = (H/P_h) * (W/P_w)`; patches in row-major order (left to
        right, then top to bottom), each unrolled as `(p1 p2 c)`.
    """
    patch_h, patch_w = check_size(patch_size, "patch_size")
    check_image_batch(images)
    check_divisible(images.shape[-2], patch_h)
    check_divisible(images.shape[-1], patch_w)
    # (B, C, h*P_h, w*P_w) -> (B, h*w, P_h*P_w*C)
    return rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_h, p2=patch_w)


def unpatchify(
    patches: torch.Tensor,
    patch_size: Size,
    grid_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Put unrolled patches back together into images: the exact inverse of `patchify`.

    Args:
        patches: `(B, N, P_h*P_w*C)` as returned by `patchify`.
        patch_size: side P of square patches, or `(P_h, P_w)`.
        grid_size: `(rows, columns)` of the patch grid; by default the grid is square, `sqrt(N)`.

    Returns:
        `(B, C, rows*P_h, columns*P_w)`.
    """
    patch_h, patch_w = check_size(patch_size, "patch_size")
    check_tensor(patches, "patches")
    if patches.ndim != 3:
        raise ValueError(
            f"patches must have shape (B, N, P*P*C), got {tuple(patches.shape)}; "
            "for a single image add the batch axis with patches.unsqueeze(0)."
        )
    _, num_patches, patch_dim = patches.shape
    if patch_dim % (patch_h * patch_w) != 0:
        raise ValueError(
            f"the last axis ({patch_dim}) must be P_h*P_w*C for patch_size {patch_size}, "
            f"but {patch_dim} is not a multiple of {patch_h * patch_w}; "
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
    # (B, h*w, P_h*P_w*C) -> (B, C, h*P_h, w*P_w)
    return rearrange(
        patches,
        "b (h w) (p1 p2 c) -> b c (h p1) (w p2)",
        h=rows,
        w=columns,
        p1=patch_h,
        p2=patch_w,
    )


def conv_to_linear(conv: nn.Conv2d) -> nn.Linear:
    """Return the `nn.Linear` on unrolled patches that computes exactly what `conv` computes.

    The conv filters `(D, C, P_h, P_w)` are reordered to `(D, P_h, P_w, C)` to match `patchify`'s
    `(p1 p2 c)` order, then flattened to the Linear's `(D, P_h*P_w*C)` weight matrix.
    """
    _check_patch_conv(conv)
    out_channels, in_channels, patch_h, patch_w = conv.weight.shape
    linear = nn.Linear(
        patch_h * patch_w * in_channels,
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


def linear_to_conv(linear: nn.Linear, patch_size: Size, in_chans: int = 3) -> nn.Conv2d:
    """Return the strided `nn.Conv2d` that computes exactly what `linear` does on patches.

    Args:
        linear: `nn.Linear(P_h * P_w * in_chans, C)` acting on `patchify`'s patch vectors.
        patch_size: the patches' side P, or `(P_h, P_w)`.
        in_chans: channels of the images.
    """
    patch_h, patch_w = check_size(patch_size, "patch_size")
    expected = patch_h * patch_w * in_chans
    if linear.in_features != expected:
        raise ValueError(
            f"linear.in_features is {linear.in_features}, but patches of size {patch_size} with "
            f"{in_chans} channels have {expected} numbers; pass the patch_size and in_chans "
            "the Linear was built for."
        )
    conv = nn.Conv2d(
        in_chans,
        linear.out_features,
        kernel_size=(patch_h, patch_w),
        stride=(patch_h, patch_w),
        bias=linear.bias is not None,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(
            rearrange(linear.weight, "d (p1 p2 c) -> d c p1 p2", p1=patch_h, p2=patch_w)
        )
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def _check_patch_conv(conv: nn.Conv2d) -> None:
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"expected an nn.Conv2d, got {type(conv).__name__}.")
    k, s = conv.kernel_size, conv.stride
    if tuple(s) != tuple(k) or conv.padding not in ((0, 0), "valid") or conv.dilation != (1, 1):
        raise ValueError(
            f"only a patch convolution (stride = kernel size, no padding or dilation) is a "
            f"Linear on patches; got kernel_size={k}, stride={s}, padding={conv.padding}."
        )


def check_images(
    images, *, in_chans: int, img_size: Size, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Check a batch for a model: `(B, in_chans, H, W)`, the model's size and number type.

    The common mistakes get their own message with the fix: integer pixels (0-255), float64
    arrays from NumPy, a channels-last `(B, H, W, C)` batch from PIL or matplotlib, a single
    image without its batch axis, and the wrong size.
    """
    check_image_batch(images)  # a tensor with 4 axes, with a hint for a single image
    if not images.is_floating_point():
        raise TypeError(
            f"images are {images.dtype}, but the model computes with floats; convert them with "
            "images.float() / 255 (for 0-255 pixels), then normalise as in training."
        )
    if dtype is not None and images.dtype != dtype and not _autocasting(images):
        fix = "images.float()" if dtype == torch.float32 else f"images.to({dtype})"
        model_fix = {torch.float64: "model.double()", torch.float16: "model.half()"}
        other = model_fix.get(images.dtype, f"model.to({images.dtype})")
        raise TypeError(
            f"images are {images.dtype} but the model's weights are {dtype}; convert the images "
            f"with {fix}, or the model with {other}."
        )
    _, channels, height, width = images.shape
    if channels != in_chans and width == in_chans:
        raise ValueError(
            f"images have shape {tuple(images.shape)}, which looks channels-last (B, H, W, C) "
            f"with C={in_chans}; the model expects (B, C, H, W): use "
            "images.permute(0, 3, 1, 2)."
        )
    check_image_batch(images, channels=in_chans, image_size=img_size)
    return images


def _autocasting(images: torch.Tensor) -> bool:
    """Under autocast, the layers cast their inputs themselves: any float dtype is fine."""
    return torch.is_autocast_enabled(images.device.type)


class PatchEmbedding(nn.Module):
    """The Mixer's stem: one shared linear projection of every patch, as a strided convolution.

    Args (those of timm's `PatchEmbed` that a Mixer uses):
        img_size: side of square input images, or `(height, width)`.
        patch_size: side P of square patches, or `(P_h, P_w)`; must divide `img_size`.
        in_chans: channels C of the input images.
        embed_dim: channels of each output token (the paper's hidden size C).
        norm_layer: a normalisation applied to the tokens, called as `norm_layer(embed_dim)`;
            None (the paper) for none.
        device, dtype: where and in what precision to create the parameters.

    Shapes:
        `(B, in_chans, H, W) -> (B, N, embed_dim)`, `N = (H / P_h) * (W / P_w)`.

    `img_size` and `patch_size` are kept as an int when square, else as `(height, width)`.
    The parameters are called `proj` and `norm` (as in timm), so checkpoints have the keys
    `stem.proj.weight` and, with a norm, `stem.norm.weight`.
    """

    def __init__(
        self,
        img_size: Size = 224,
        patch_size: Size = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        norm_layer: type[nn.Module] | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        image_hw = check_size(img_size, "img_size")
        patch_hw = check_size(patch_size, "patch_size")
        check_positive_int(in_chans, "in_chans")
        check_positive_int(embed_dim, "embed_dim")
        for image_side, patch_side in zip(image_hw, patch_hw, strict=True):
            check_divisible(image_side, patch_side)
        self.img_size = _as_given(image_hw)
        self.patch_size = _as_given(patch_hw)
        self.in_chans = in_chans
        self.grid_size = (image_hw[0] // patch_hw[0], image_hw[1] // patch_hw[1])
        self.num_tokens = self.grid_size[0] * self.grid_size[1]  # N: one token per patch
        self.proj = nn.Conv2d(
            in_chans, embed_dim, patch_hw, stride=patch_hw, device=device, dtype=dtype
        )
        self.norm = (
            norm_layer(embed_dim, device=device, dtype=dtype) if norm_layer else nn.Identity()
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # The checks run in eager mode; TorchScript skips this block, fx and jit.trace skip them.
        if not torch.jit.is_scripting():
            if not tracing():
                self.check_input(images)  # one-line errors that name the fix
        x = self.proj(images)  # (B, D, h, w): one D-vector per patch
        x = x.flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, N, D), patches read row by row
        return self.norm(x)

    @torch.jit.unused
    def check_input(self, images: torch.Tensor) -> None:
        """`check_images` for this stem: its channels, image size and weights' dtype.

        Run in eager mode only (see `support.validation.tracing`): TorchScript, `torch.fx` and
        `torch.jit.trace` see a forward without it, as they see timm's.
        """
        check_images(
            images, in_chans=self.in_chans, img_size=self.img_size, dtype=self.proj.weight.dtype
        )

    def feat_ratio(self, as_scalar: bool = True) -> int | tuple[int, int]:
        """How many pixels one token steps over (timm's feature-map "reduction")."""
        patch_hw = check_size(self.patch_size, "patch_size")
        return max(patch_hw) if as_scalar else patch_hw

    @property
    def num_patches(self) -> int:
        """timm's name for `num_tokens` (its `PatchEmbed.num_patches`), for timm's code."""
        return self.num_tokens

    def extra_repr(self) -> str:
        return (
            f"img_size={self.img_size}, patch_size={self.patch_size}, "
            f"grid_size={self.grid_size}, num_tokens={self.num_tokens}"
        )
