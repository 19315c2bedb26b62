"""Channel mixing: the same MLP at every patch.

Unlike a token-mixing unit, a channel-mixing unit has no picture in its weights: it looks at one
patch's channels at a time, with the same weights at every patch (like a 1x1 convolution). But
each hidden unit can be *evaluated* at every patch of one image (`mixer_edu.weights.
channel_mixing_responses`), which gives a map on the patch grid: what the unit detects, and where
in the image it found it.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from .. import weights
from ..support.validation import check_positive_int, check_tensor
from .layout import draw_grid, image_hwc, model_label, no_ticks, set_title, show_rgb, to_numpy


def plot_channel_mixing(
    model: nn.Module,
    image: torch.Tensor,
    block: int = 0,
    *,
    num_units: int = 8,
    image_for_display: torch.Tensor | None = None,
    model_name: str | None = None,
    dataset: str | None = None,
    title: str | None = None,
) -> Figure:
    """What the channel-mixing MLP of one block does with one image.

    Each of the MLP's D_C hidden units is drawn as its activation GELU(fc1(LayerNorm(token))) at
    every patch of this image. No information moves between patches (compare the token-mixing
    units, which are fixed spatial patterns). The units shown are the `num_units` whose
    activation varies most across this image's patches (the most selective ones).

    Args:
        model: a Mixer, on any device (the image is moved to it).
        image: one normalised image `(C, H, W)` or `(1, C, H, W)`, as the model takes it.
        block: which block's channel-mixing MLP.
        num_units: how many hidden units to show.
        image_for_display: the same image in [0, 1] (e.g. `denormalize(image)`); by default the
            input is rescaled to [0, 1].
        model_name, dataset: for the title.

    `figure.shown`: `responses` `(D_C, h, w)` for all units, `units` (the indices shown, most
    selective first), `maps` `(num_units, h, w)`, `image` `(H, W, C)`.
    """
    check_tensor(image, "image")
    batch = image.unsqueeze(0) if image.ndim == 3 else image
    if batch.ndim != 4 or batch.shape[0] != 1:
        raise ValueError(f"image must be one image (C, H, W), got shape {tuple(image.shape)}.")
    check_positive_int(num_units, "num_units")
    device = next(model.parameters()).device
    responses = weights.channel_mixing_responses(model, batch.to(device), block)[0]  # (D_C, h, w)
    spread = responses.flatten(1).std(dim=1)  # (D_C,): how much each unit varies over patches
    chosen = torch.argsort(spread, descending=True, stable=True)[:num_units].tolist()
    maps = to_numpy(responses[chosen])
    if image_for_display is None:
        low, high = batch.min(), batch.max()
        image_for_display = (batch - low) / (high - low if high > low else 1.0)
    pixels = image_hwc(image_for_display, "image_for_display")

    fig = _draw(pixels, maps, chosen, model.stem.patch_size)
    what = (
        f"Channel mixing, block {block}: {len(chosen)} of {len(responses)} hidden units, each "
        "evaluated at every patch\n(same weights at every patch; the most selective units "
        "for this image)"
    )
    set_title(fig, what, title=title, model_name=model_label(model, model_name), dataset=dataset)
    fig.shown = dict(responses=to_numpy(responses), units=chosen, maps=maps, image=pixels)
    return fig


def _draw(pixels: np.ndarray, maps: np.ndarray, units: list[int], patch_size: int) -> Figure:
    """The image with its patches on the left, one activation map per unit on the right."""
    columns = min(4, len(units))
    map_rows = math.ceil(len(units) / columns)
    fig = plt.figure(
        figsize=(3.2 + 2.3 * columns, 1.0 + 2.3 * max(map_rows, 1.5)), layout="constrained"
    )
    grid = fig.add_gridspec(map_rows, columns + 1, width_ratios=[1.6] + [1] * columns)
    ax_image = fig.add_subplot(grid[:, 0])
    show_rgb(ax_image, pixels, interpolation="nearest")
    draw_grid(ax_image, pixels.shape[0], pixels.shape[1], patch_size)
    ax_image.set_title("input image and its patches", fontsize=10)
    no_ticks(ax_image)
    low, high = min(0.0, float(maps.min())), max(float(maps.max()), 1e-6)  # one scale for all
    for i, unit in enumerate(units):
        ax = fig.add_subplot(grid[i // columns, 1 + i % columns])
        picture = ax.imshow(maps[i], cmap="magma", vmin=low, vmax=high, interpolation="nearest")
        ax.set_title(f"hidden unit {unit}", fontsize=9)
        no_ticks(ax)
    fig.colorbar(
        picture, ax=fig.axes[1:], shrink=0.8, label="activation after GELU (one value per patch)"
    )
    return fig
