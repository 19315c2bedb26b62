"""Patches: image -> patches -> token table, the first step of every Mixer (`mixer_edu.patching`).

`plot_patches` draws one image three ways, left to right: cut into its patch grid, the same
patches as a *sequence* of tokens (numbered row by row, the order `patchify` uses), and the token
table `(N, P*P*C)` that the stem projects.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..patching import patchify
from ..support.validation import check_positive_int
from .layout import (
    STANDIN_LABEL,
    dataset_title,
    draw_grid,
    image_hwc,
    no_ticks,
    set_title,
    show_rgb,
    tile,
    to_numpy,
)


def plot_patches(
    image: torch.Tensor,
    patch_size: int,
    *,
    dataset: str | None = None,
    title: str | None = None,
) -> Figure:
    """An image, its patch grid, the patches as a numbered token sequence, and the token table.

    Args:
        image: one image `(C, H, W)` (or `(1, C, H, W)`) with values in [0, 1] (use
            `mixer_edu.data.denormalize` on a normalised one), on any device.
        patch_size: side P of the patches; must divide H and W.
        dataset: where the image comes from (`'cifar10'`, `'standin'` or a label), for the title.
        title: replaces the default title.

    `figure.shown`: `image` `(H, W, C)`, `tokens` `(N, P*P*C)` (exactly `patchify`'s output),
    `patches` `(N, P, P, C)`, `sequence` (the patches tiled in reading order) and `positions`
    (the corner of each patch on it).
    """
    check_positive_int(patch_size, "patch_size")
    pixels = image_hwc(image)  # (H, W, C)
    batch = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)  # (1, C, H, W)
    tokens = to_numpy(patchify(batch, patch_size)[0])  # (N, P*P*C), rows in reading order
    channels = pixels.shape[2]
    patches = tokens.reshape(-1, patch_size, patch_size, channels)  # (p1 p2 c) -> (P, P, C)

    fig, (ax_image, ax_sequence, ax_table) = plt.subplots(
        1, 3, figsize=(15, 5.2), width_ratios=[1, 1.7, 1.2], layout="constrained"
    )
    _draw_image(ax_image, pixels, patch_size)
    sequence, positions = _draw_sequence(
        ax_sequence, patches, columns=pixels.shape[1] // patch_size
    )
    _draw_table(fig, ax_table, tokens, patch_size, channels)
    set_title(fig, _heading(dataset), title=title, fontsize=12)
    fig.shown = dict(
        image=pixels, tokens=tokens, patches=patches, sequence=sequence, positions=positions
    )
    return fig


def _draw_image(ax, pixels: np.ndarray, patch_size: int) -> None:
    """Panel 1: the image with its patch grid, each patch numbered (when there are few)."""
    height, width, _ = pixels.shape
    rows, columns = height // patch_size, width // patch_size
    show_rgb(ax, pixels, interpolation="nearest")
    draw_grid(ax, height, width, patch_size)
    if rows * columns <= 100:  # beyond that the numbers would cover the image
        for n in range(rows * columns):
            y, x = divmod(n, columns)
            ax.text(
                (x + 0.5) * patch_size - 0.5,
                (y + 0.5) * patch_size - 0.5,
                str(n),
                ha="center",
                va="center",
                fontsize=7,
                color="white",
                bbox=dict(boxstyle="round,pad=0.1", facecolor="black", alpha=0.45, lw=0),
            )
    ax.set_title(
        f"1. a {height}x{width} image cut into {rows}x{columns} patches of "
        f"{patch_size}x{patch_size}",
        fontsize=10,
    )
    no_ticks(ax)


def _draw_sequence(ax, patches: np.ndarray, columns: int) -> tuple[np.ndarray, list]:
    """Panel 2: the patches `(N, P, P, C)` in reading order, numbered; returns the tiling."""
    count, patch_size = len(patches), patches.shape[1]
    # Two image rows per line for small grids, so the sequence visibly differs from the grid;
    # gaps between the tokens, and room above each line for the token numbers.
    per_line = min(count, 2 * columns if count <= 64 else columns)
    sequence, positions = tile(
        patches, per_line, gap=max(1, patch_size // 4), row_gap=max(3, patch_size), fill=1.0
    )
    show_rgb(ax, sequence, interpolation="nearest")
    for n in range(count) if count <= 64 else range(0, count, per_line):
        top, left = positions[n]
        ax.text(
            left + patch_size / 2 - 0.5, top - 0.7, str(n), ha="center", va="bottom", fontsize=6
        )
    ax.set_title(
        f"2. the same patches as a sequence of N = {count} tokens, read row by row",
        fontsize=10,
        pad=14,  # room for the first line's token numbers, which sit above the image
    )
    ax.axis("off")
    return sequence, positions


def _draw_table(fig: Figure, ax, tokens: np.ndarray, patch_size: int, channels: int) -> None:
    """Panel 3: the token table `(N, P*P*C)`, one row per token."""
    picture = ax.imshow(
        tokens, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest"
    )
    ax.set_title(
        f"3. the token table: {len(tokens)} tokens x {tokens.shape[1]} numbers each", fontsize=10
    )
    ax.set_xlabel(
        f"pixel values of one patch, unrolled\n(P*P*C = {patch_size}*{patch_size}*{channels}: "
        "row, column, channel)"
    )
    ax.set_ylabel("token = patch number")
    fig.colorbar(picture, ax=ax, fraction=0.05, label="pixel value")


def _heading(dataset: str | None) -> str:
    source = dataset_title(dataset)
    if source == STANDIN_LABEL:
        source = f"an image of the {STANDIN_LABEL}, not CIFAR-10"
    elif source:
        source = f"an image of {source}"
    return "From an image to a table of tokens" + (f": {source}" if source else "")
