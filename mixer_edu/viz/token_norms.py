"""Token norms: how long each token is after each block, on the patch grid.

Every Mixer block adds its two MLPs' outputs to the tokens it received (the residual stream), so
a token's length ||x|| can grow or shrink from block to block, and differently at every patch.
`token_norms` reads the tokens after every block through the model's
`forward_intermediates` (timm's interface) and returns those lengths as `(B, blocks, h, w)`;
this draws them for one image, one heatmap per block. Each heatmap has its own colour scale (the
last blocks' tokens are often many times longer than the first ones', and one scale would paint
the early blocks a single colour); each title gives the block's mean length, so the growth from
block to block is read from the titles and the pattern inside a block from the colours.

What it shows: where in the image, and in which block, the residual stream grows. What it does
not show: what the tokens encode. Two tokens of the same length can point in any direction of
the C-dimensional space, so a bright patch is a large token, not a recognised object.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from ..support.validation import check_tensor
from .layout import draw_grid, image_hwc, model_label, no_ticks, set_title, show_rgb, to_numpy


@torch.no_grad()
def token_norms(model: nn.Module, images: Tensor, norm: bool = False) -> Tensor:
    """How large each token is after each block: the length of its C-vector, on the patch grid.

    Args:
        model: an `MlpMixer` (or `GMlp`).
        images: `(B, in_chans, H, W)`, on any device (moved to the model's).
        norm: measure the tokens after the model's final LayerNorm (which rescales every token to
            about the same length, so this mostly shows the LayerNorm's learned weights); by
            default the raw residual stream.

    Returns:
        `(B, num_blocks, h, w)` on the CPU, float32: entry `[b, i, r, c]` is the Euclidean norm
        over the C channels of the token of patch (r, c) of image b after block i. It shows
        where in the image the residual stream grows; it does not show what the tokens encode
        (two tokens of equal length can point in any directions).
    """
    device = next(model.parameters()).device
    maps = model.forward_intermediates(
        images.to(device), norm=norm, output_fmt="NCHW", intermediates_only=True
    )  # num_blocks x (B, C, h, w)
    return torch.stack([m.norm(dim=1) for m in maps], dim=1).float().cpu()  # (B, L, h, w)


def plot_token_norms(
    model: nn.Module,
    image: torch.Tensor,
    *,
    image_for_display: torch.Tensor | None = None,
    model_name: str | None = None,
    dataset: str | None = None,
    title: str | None = None,
) -> Figure:
    """The image with its patches, then the length of every token after each block.

    Args:
        model: an `MlpMixer` (or `GMlp`), on any device (the image is moved to it).
        image: one normalised image `(C, H, W)` or `(1, C, H, W)`, as the model takes it.
        image_for_display: the same image in [0, 1] (e.g. `denormalize(image)`); by default the
            input is rescaled to [0, 1].
        model_name, dataset: for the title.

    `figure.shown`: `norms` `(blocks, h, w)` (from `token_norms`), `image` `(H, W, C)`.
    """
    check_tensor(image, "image")
    batch = image.unsqueeze(0) if image.ndim == 3 else image
    if batch.ndim != 4 or batch.shape[0] != 1:
        raise ValueError(f"image must be one image (C, H, W), got shape {tuple(image.shape)}.")
    with torch.no_grad():
        norms = to_numpy(token_norms(model, batch)[0])  # (blocks, h, w)
    if image_for_display is None:
        low, high = batch.min(), batch.max()
        image_for_display = (batch - low) / (high - low if high > low else 1.0)
    pixels = image_hwc(image_for_display, "image_for_display")

    fig = _draw(pixels, norms, model.stem.patch_size)
    what = (
        f"Token norms: the length of each token after each of the {len(norms)} blocks, "
        "on the patch grid (each block on its own colour scale)"
    )
    set_title(fig, what, title=title, model_name=model_label(model, model_name), dataset=dataset)
    fig.shown = dict(norms=norms, image=pixels)
    return fig


def _draw(pixels: np.ndarray, norms: np.ndarray, patch_size: int) -> Figure:
    """The image with its patches on the left, one heatmap per block to its right."""
    blocks = len(norms)
    fig, axes = plt.subplots(1, blocks + 1, figsize=(2.7 * (blocks + 1), 3.6), layout="constrained")
    show_rgb(axes[0], pixels, interpolation="nearest")
    draw_grid(axes[0], pixels.shape[0], pixels.shape[1], patch_size)
    axes[0].set_title("input image", fontsize=10)
    no_ticks(axes[0])
    for block, ax in enumerate(axes[1:]):
        picture = ax.imshow(norms[block], cmap="viridis")  # its own scale: min to max
        ax.set_title(f"after block {block}\nmean length {norms[block].mean():.3g}", fontsize=10)
        ax.set_xlabel("patch column")
        ax.set_ylabel("patch row" if block == 0 else "")
        fig.colorbar(picture, ax=ax, shrink=0.7, location="bottom", label="||x|| over C channels")
    return fig
