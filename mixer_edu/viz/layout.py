"""What every picture shares: titles, the weight colour map, tiling small pictures, image helpers.

Titles. A figure's title says what it shows, then on a second line which model and which data
(`set_title`). When the data is the synthetic stand-in rather than CIFAR-10, the title says so.

Colours. Weights use one diverging colour map, 'RdBu_r', with limits symmetric around 0, so white
is always 0, red positive and blue negative, and a unit and its opposite-phase partner look like
colour negatives of each other. Grey separates the tiles.

Devices. A model or tensor may live on any device (CPU, CUDA, Apple MPS); pictures are drawn
from the CPU. Every tensor becomes a numpy array through `to_numpy`, which detaches it and moves
it to the CPU first.
"""

from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from .. import data
from ..support.validation import check_tensor

WEIGHT_CMAP = "RdBu_r"
GAP_COLOUR = "0.82"  # light grey between tiles: distinct from white (= weight 0)
STANDIN_LABEL = "synthetic stand-in"


def to_numpy(values) -> np.ndarray:
    """A tensor on any device (or anything numpy takes) as a numpy array on the CPU.

    `tensor.numpy()` refuses tensors that need a gradient or live on a GPU; this detaches and
    copies to the CPU first, so a picture works the same for a model trained on CUDA or MPS.
    """
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


# --------------------------------------------------------------------------------------------
# Titles.
# --------------------------------------------------------------------------------------------


def dataset_title(dataset: str | None) -> str | None:
    """'cifar10' -> 'CIFAR-10', 'standin' -> 'synthetic stand-in'; labels pass through."""
    if dataset is None:
        return None
    if dataset in data.DATASET_LABELS:
        return data.dataset_label(dataset)
    return str(dataset)


def title_text(what: str, model_name: str | None = None, dataset: str | None = None) -> str:
    """'what', then a second line naming the model and the data it was trained on."""
    context = [model_name] if model_name else []
    label = dataset_title(dataset)
    if label == STANDIN_LABEL:
        context.append(f"trained on the {STANDIN_LABEL}, not CIFAR-10")
    elif label:
        context.append(f"trained on {label}")
    return f"{what}\n{', '.join(context)}" if context else what


def wrap(text: str, figure_width: float, fontsize: float = 11) -> str:
    """Break each line of a title so it fits a figure `figure_width` inches wide."""
    characters = max(30, int(figure_width * 130 / fontsize))  # about 0.55 em per character
    return "\n".join(textwrap.fill(line, characters) for line in text.split("\n"))


def set_title(
    fig: Figure,
    what: str,
    *,
    title: str | None = None,
    model_name: str | None = None,
    dataset: str | None = None,
    fontsize: float = 11,
) -> None:
    """The figure's title: `title` if the caller gave one, else `what` with model and data."""
    text = title or title_text(what, model_name, dataset)
    fig.suptitle(wrap(text, fig.get_figwidth(), fontsize), fontsize=fontsize)


def model_label(model: nn.Module, model_name: str | None) -> str:
    return model_name or type(model).__name__


def count_of(n: int, noun: str) -> str:
    """'1 pair', '3 pairs'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# --------------------------------------------------------------------------------------------
# Weights in colour.
# --------------------------------------------------------------------------------------------


def weight_cmap():
    return plt.get_cmap(WEIGHT_CMAP).with_extremes(bad=GAP_COLOUR)


def symmetric_limit(*arrays: np.ndarray) -> float:
    """max |value| over the arrays (NaN gaps ignored): limits that put 0 in the map's centre."""
    largest = max(float(np.nanmax(np.abs(a))) if np.size(a) else 0.0 for a in arrays)
    return largest if largest > 0 else 1.0


def show_weights(ax, canvas: np.ndarray, limit: float):
    """Draw a canvas of weights: red +, blue -, white 0, grey gaps, limits -limit..limit."""
    return ax.imshow(canvas, cmap=weight_cmap(), vmin=-limit, vmax=limit, interpolation="nearest")


# --------------------------------------------------------------------------------------------
# Many small pictures on one canvas.
# --------------------------------------------------------------------------------------------


def columns_for(count: int, pairs: bool) -> int:
    """A pleasant number of tile columns, about 1.5 times wider than tall; even for pairs."""
    columns = max(1, math.ceil(math.sqrt(1.5 * count)))
    if pairs:
        columns = max(2, columns + columns % 2)
    return min(columns, count + count % 2 if pairs else count)


def tile(
    tiles: np.ndarray,
    columns: int,
    *,
    gap: int = 1,
    row_gap: int | None = None,
    pairs: int | None = None,
    new_row_at: int | None = None,
    fill: float = np.nan,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Lay out small pictures on one canvas, row by row.

    Args:
        tiles: `(K, h, w)` or `(K, h, w, 3)`.
        columns: tiles per row.
        gap: pixels between neighbouring tiles.
        row_gap: pixels between rows (default `gap`, or twice `gap` with `pairs`).
        pairs: group the first `2 * pairs` tiles in twos and set every group (a pair, or one of
            the remaining tiles) apart by a double gap; None keeps all gaps equal.
        new_row_at: start a new row at this tile (e.g. where the unpaired units begin).
        fill: value of the gaps (NaN shows as the colour map's "bad" colour).

    Returns:
        `(canvas, positions)`: the canvas array and the (top, left) pixel of every tile, so that
        `canvas[top:top + h, left:left + w]` is `tiles[k]`.
    """
    count, height, width = tiles.shape[:3]
    if count == 0:
        raise ValueError("there is nothing to draw: no tiles were given.")
    extra = 0 if pairs is None else gap  # the additional space between two groups
    row_gap = gap + extra if row_gap is None else row_gap
    positions, top, left, in_row = [], 0, 0, 0
    for k in range(count):
        if k > 0 and (k == new_row_at or in_row == columns):
            top, left, in_row = top + height + row_gap, 0, 0
        elif k > 0:
            starts_group = k >= 2 * (pairs or 0) or k % 2 == 0
            left += width + gap + (extra if starts_group else 0)
        positions.append((top, left))
        in_row += 1
    canvas_h = max(t for t, _ in positions) + height
    canvas_w = max(x for _, x in positions) + width
    canvas = np.full((canvas_h, canvas_w, *tiles.shape[3:]), fill, dtype=np.float64)
    for (t, x), picture in zip(positions, tiles, strict=True):
        canvas[t : t + height, x : x + width] = picture
    return canvas, positions


def stack_rows(
    canvases: list[np.ndarray], gap: int = 2, fill: float = np.nan
) -> tuple[np.ndarray, list[int]]:
    """Stack canvases of equal width on top of each other; return it and each one's top row."""
    width = canvases[0].shape[1]
    tops = [k * (canvases[0].shape[0] + gap) for k in range(len(canvases))]
    stacked = np.full((tops[-1] + canvases[-1].shape[0], width), fill, dtype=np.float64)
    for top, canvas in zip(tops, canvases, strict=True):
        stacked[top : top + canvas.shape[0]] = canvas
    return stacked, tops


# --------------------------------------------------------------------------------------------
# Images and axes.
# --------------------------------------------------------------------------------------------


def image_hwc(image, name: str = "image") -> np.ndarray:
    """A `(C, H, W)` or `(1, C, H, W)` tensor in [0, 1] -> numpy `(H, W, C)`, clipped to [0, 1]."""
    check_tensor(image, name)
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(
            f"{name} must be one image (C, H, W) with 1 or 3 channels, got shape "
            f"{tuple(image.shape)}; pick one image of a batch with images[0]."
        )
    return to_numpy(image.float().clamp(0, 1).permute(1, 2, 0))


def show_rgb(ax, pixels: np.ndarray, **kwargs):
    """Draw an `(H, W, C)` image in [0, 1]; one channel in grey."""
    if pixels.shape[-1] == 1:
        return ax.imshow(pixels[..., 0], cmap="gray", vmin=0, vmax=1, **kwargs)
    return ax.imshow(pixels, **kwargs)


def draw_grid(ax, height: int, width: int, patch_size: int, colour="white") -> None:
    """The patch grid over an image drawn with `show_rgb`."""
    for y in range(0, height + 1, patch_size):
        ax.axhline(y - 0.5, color=colour, linewidth=0.8)
    for x in range(0, width + 1, patch_size):
        ax.axvline(x - 0.5, color=colour, linewidth=0.8)


def no_ticks(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def no_frame(ax) -> None:
    for side in ax.spines.values():
        side.set_visible(False)
