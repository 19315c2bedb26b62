"""Pictures of what a Mixer sees and learns, from a model or from a training run's checkpoint.

Every function returns a matplotlib `Figure` and never calls `plt.show()` (a notebook cell ends
with `plt.show()` itself; a script saves the figure with `fig.savefig(path)`). Each figure carries
the numbers it draws as `figure.shown`, a dict of numpy arrays and lists, so a test (or a curious
student) can check that a picture shows exactly the weights it claims to show.

What the pictures show, in the order of the course:

- `plot_patches`: an image cut into its patch grid, the same patches as a *sequence* of tokens
  (numbered row by row, the order `patchify` uses), and the token table `(N, P*P*C)` that the
  stem projects. Image -> patches -> table.
- `plot_token_mixing`: the paper's Figure 5. Each hidden unit of a block's token-mixing MLP
  (a row of W1, `(D_S, N)`) drawn on the patch grid: red where the unit adds up the patches, blue
  where it subtracts them, white where it ignores them. Units of opposite phase (w_i ≈ -w_j) are
  paired side by side and the pairs sorted from smooth to fine patterns (`mixer_edu.weights`
  defines both precisely); `mode="plain"` shows the units in their stored order instead, and
  `initial=` (the run's epoch-0 snapshot) shows what training changed instead of the weights.
- `plot_paper_token_mixing`: the same for Google's pretrained Mixer-B/16 (`mixer_edu.pretrained`),
  the closest public model to the one in the paper's figure; it returns None offline.
- `plot_stem_filters`: the patch-embedding filters as RGB images (grey = 0).
- `plot_channel_mixing`: the channel-mixing MLP's hidden units evaluated at every patch of one
  image. Unlike a token-mixing unit, a channel-mixing unit has no picture in its weights: it looks
  at one patch's channels at a time, with the same weights at every patch.
- `plot_token_mixing_over_training` and `save_token_mixing_animation`: the same token-mixing
  units in every snapshot of a training run, as a grid (rows = epochs) or a GIF; `change=True`
  shows each epoch minus the random start.
- `plot_training_curves`, `plot_confusion_matrix`, `plot_misclassified`: how training went.

Colours. Weights use one diverging colour map, 'RdBu_r', with limits symmetric around 0, so white
is always 0, red positive and blue negative, and a unit and its opposite-phase partner look like
colour negatives of each other. Grey separates the tiles.

Stand-in data. When the data behind a picture is the synthetic stand-in rather than CIFAR-10
(`mixer_edu.data`), its title says "synthetic stand-in".

Command line: `python -m mixer_edu.viz CHECKPOINT --out DIR` writes every picture of a trained
checkpoint as PNG (and a GIF when the run saved snapshots) and prints their paths;
`render_checkpoint(checkpoint, out)` does the same from Python.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import nn

from . import weights
from .patching import patchify
from .validation import check_positive_int, check_tensor

WEIGHT_CMAP = "RdBu_r"
GAP_COLOUR = "0.82"  # light grey between tiles: distinct from white (= weight 0)
STANDIN_LABEL = "synthetic stand-in"
MODES = ("pairs", "plain")


# --------------------------------------------------------------------------------------------
# Small helpers: labels, colour limits, tiling many small pictures into one image.
# --------------------------------------------------------------------------------------------


def dataset_title(dataset: str | None) -> str | None:
    """'cifar10' -> 'CIFAR-10', 'standin' -> 'synthetic stand-in'; labels pass through."""
    if dataset is None:
        return None
    from . import data

    if dataset in data.DATASET_LABELS:
        return data.dataset_label(dataset)
    return str(dataset)


def _title(what: str, model_name: str | None = None, dataset: str | None = None) -> str:
    """'what', then a second line naming the model and the data it was trained on."""
    context = [model_name] if model_name else []
    label = dataset_title(dataset)
    if label == STANDIN_LABEL:
        context.append(f"trained on the {STANDIN_LABEL}, not CIFAR-10")
    elif label:
        context.append(f"trained on {label}")
    return f"{what}\n{', '.join(context)}" if context else what


def _wrap(text: str, figure_width: float, fontsize: float = 11) -> str:
    """Break each line of a title so it fits a figure `figure_width` inches wide."""
    characters = max(30, int(figure_width * 130 / fontsize))  # about 0.55 em per character
    return "\n".join(textwrap.fill(line, characters) for line in text.split("\n"))


def _suptitle(fig: Figure, text: str, fontsize: float = 11) -> None:
    fig.suptitle(_wrap(text, fig.get_figwidth(), fontsize), fontsize=fontsize)


def _weight_cmap():
    return plt.get_cmap(WEIGHT_CMAP).with_extremes(bad=GAP_COLOUR)


def _symmetric_limit(*arrays: np.ndarray) -> float:
    """max |value| over the arrays (NaN gaps ignored): limits that put 0 in the map's centre."""
    largest = max(float(np.nanmax(np.abs(a))) if np.size(a) else 0.0 for a in arrays)
    return largest if largest > 0 else 1.0


def _columns_for(count: int, pairs: bool) -> int:
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


def _stack_rows(
    canvases: list[np.ndarray], gap: int = 2, fill: float = np.nan
) -> tuple[np.ndarray, list[int]]:
    """Stack canvases of equal width on top of each other; return it and each one's top row."""
    width = canvases[0].shape[1]
    tops = [k * (canvases[0].shape[0] + gap) for k in range(len(canvases))]
    stacked = np.full((tops[-1] + canvases[-1].shape[0], width), fill, dtype=np.float64)
    for top, canvas in zip(tops, canvases, strict=True):
        stacked[top : top + canvas.shape[0]] = canvas
    return stacked, tops


def _image_hwc(image, name: str = "image") -> np.ndarray:
    """A `(C, H, W)` or `(1, C, H, W)` tensor in [0, 1] -> numpy `(H, W, C)`, clipped to [0, 1]."""
    check_tensor(image, name)
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(
            f"{name} must be one image (C, H, W) with 1 or 3 channels, got shape "
            f"{tuple(image.shape)}; pick one image of a batch with images[0]."
        )
    return image.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def _show_rgb(ax, image_hwc: np.ndarray, **kwargs):
    if image_hwc.shape[-1] == 1:
        return ax.imshow(image_hwc[..., 0], cmap="gray", vmin=0, vmax=1, **kwargs)
    return ax.imshow(image_hwc, **kwargs)


def _draw_grid(ax, height: int, width: int, patch_size: int, colour="white") -> None:
    for y in range(0, height + 1, patch_size):
        ax.axhline(y - 0.5, color=colour, linewidth=0.8)
    for x in range(0, width + 1, patch_size):
        ax.axvline(x - 0.5, color=colour, linewidth=0.8)


def _no_ticks(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _model_label(model: nn.Module, model_name: str | None) -> str:
    return model_name or type(model).__name__


# --------------------------------------------------------------------------------------------
# 1. Patches: image -> patches -> token table.
# --------------------------------------------------------------------------------------------


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
            `mixer_edu.data.denormalize` on a normalised one).
        patch_size: side P of the patches; must divide H and W.
        dataset: where the image comes from (`'cifar10'`, `'standin'` or a label), for the title.
        title: replaces the default title.

    `figure.shown`: `image` `(H, W, C)`, `tokens` `(N, P*P*C)` (exactly `patchify`'s output),
    `patches` `(N, P, P, C)`, `sequence` (the patches tiled in reading order) and `positions`
    (the corner of each patch on it).
    """
    check_positive_int(patch_size, "patch_size")
    pixels = _image_hwc(image)  # (H, W, C)
    batch = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)  # (1, C, H, W)
    tokens = patchify(batch, patch_size)[0].numpy()  # (N, P*P*C), rows in reading order
    height, width, channels = pixels.shape
    rows, columns = height // patch_size, width // patch_size
    patches = tokens.reshape(-1, patch_size, patch_size, channels)  # (p1 p2 c) -> (P, P, C)
    count = len(tokens)

    # Two image rows per line for small grids, so the sequence visibly differs from the grid;
    # gaps between the tokens, and room above each line for the token numbers.
    per_line = min(count, 2 * columns if count <= 64 else columns)
    sequence, positions = tile(
        patches, per_line, gap=max(1, patch_size // 4), row_gap=max(3, patch_size), fill=1.0
    )

    fig, (ax_image, ax_sequence, ax_table) = plt.subplots(
        1, 3, figsize=(15, 5.2), width_ratios=[1, 1.7, 1.2], layout="constrained"
    )
    _show_rgb(ax_image, pixels, interpolation="nearest")
    _draw_grid(ax_image, height, width, patch_size)
    if count <= 100:  # beyond that the numbers would cover the image
        for n in range(count):
            y, x = divmod(n, columns)
            ax_image.text(
                (x + 0.5) * patch_size - 0.5,
                (y + 0.5) * patch_size - 0.5,
                str(n),
                ha="center",
                va="center",
                fontsize=7,
                color="white",
                bbox=dict(boxstyle="round,pad=0.1", facecolor="black", alpha=0.45, lw=0),
            )
    ax_image.set_title(
        f"1. a {height}x{width} image cut into {rows}x{columns} patches of "
        f"{patch_size}x{patch_size}",
        fontsize=10,
    )
    _no_ticks(ax_image)

    _show_rgb(ax_sequence, sequence, interpolation="nearest")
    for n in range(count) if count <= 64 else range(0, count, per_line):
        top, left = positions[n]
        ax_sequence.text(
            left + patch_size / 2 - 0.5, top - 0.7, str(n), ha="center", va="bottom", fontsize=6
        )
    ax_sequence.set_title(
        f"2. the same patches as a sequence of N = {count} tokens, read row by row",
        fontsize=10,
        pad=14,  # room for the first line's token numbers, which sit above the image
    )
    ax_sequence.axis("off")

    picture = ax_table.imshow(
        tokens, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest"
    )
    ax_table.set_title(
        f"3. the token table: {count} tokens x {tokens.shape[1]} numbers each", fontsize=10
    )
    ax_table.set_xlabel(
        f"pixel values of one patch, unrolled\n(P*P*C = {patch_size}*{patch_size}*{channels}: "
        "row, column, channel)"
    )
    ax_table.set_ylabel("token = patch number")
    fig.colorbar(picture, ax=ax_table, fraction=0.05, label="pixel value")

    source = dataset_title(dataset)
    if source == STANDIN_LABEL:
        source = f"an image of the {STANDIN_LABEL}, not CIFAR-10"
    elif source:
        source = f"an image of {source}"
    heading = "From an image to a table of tokens" + (f": {source}" if source else "")
    _suptitle(fig, title or heading, 12)
    fig.shown = dict(
        image=pixels, tokens=tokens, patches=patches, sequence=sequence, positions=positions
    )
    return fig


# --------------------------------------------------------------------------------------------
# 2. Token-mixing units (the paper's Figure 5).
# --------------------------------------------------------------------------------------------


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(
            f"mode must be 'pairs' (opposite-phase pairs sorted by frequency, as in the paper) "
            f"or 'plain' (units in their stored order), got {mode!r}."
        )
    return mode


def _select_units(units: torch.Tensor, mode: str, num_units: int | None, max_cosine: float):
    """Order (and cut) the units for display: `(units (k, h, w), order, UnitOrder | None)`."""
    if mode == "pairs":
        arranged = weights.figure5_order(units, max_cosine)
        order = arranged.order
    else:
        arranged, order = None, list(range(len(units)))
    if num_units is not None:
        check_positive_int(num_units, "num_units")
        order = order[:num_units]
    return units[order], order, arranged


def _token_mixing_panel(units, block, mode, num_units, max_cosine, scale, columns) -> dict:
    """Everything one panel shows: the units in display order, tiled on one canvas."""
    shown_units, order, arranged = _select_units(units, mode, num_units, max_cosine)
    displayed = shown_units.numpy().astype(np.float64)
    if scale == "unit":  # each unit to [-1, 1]: the patterns of weak units become visible
        peaks = np.abs(displayed).reshape(len(displayed), -1).max(axis=1)
        displayed = displayed / np.where(peaks > 0, peaks, 1.0)[:, None, None]
    paired = min(2 * len(arranged.pairs), len(order)) if arranged is not None else 0
    canvas, positions = tile(
        displayed,
        columns,
        pairs=paired // 2 if mode == "pairs" else None,
        new_row_at=paired if 0 < paired < len(order) else None,
    )
    return dict(
        block=block,
        units=shown_units.numpy(),
        displayed=displayed,
        order=order,
        canvas=canvas,
        positions=positions,
        frequency=weights.spatial_frequency(shown_units).numpy(),
        pairs=arranged.pairs if arranged is not None else [],
        unpaired=arranged.unpaired if arranged is not None else [],
        pair_cosine=arranged.pair_cosine if arranged is not None else [],
        shown_pairs=paired // 2,
    )


def _describe_panel(ax, panel: dict, mode: str, max_cosine: float) -> None:
    order = panel["order"]
    if mode == "plain":
        ax.set_title(f"block {panel['block']}: units {order[0]} to {order[-1]}", fontsize=10)
        ax.set_xlabel("in their stored order, row by row", fontsize=8)
        return
    pairs, rest = panel["shown_pairs"], len(order) - 2 * panel["shown_pairs"]
    ax.set_title(
        f"block {panel['block']}: {_count(pairs, 'pair')} of opposite phase, {rest} unpaired",
        fontsize=10,
    )
    if pairs:
        note = "pairs side by side, then the unpaired units;\neach low → high spatial frequency"
    else:
        note = f"no unit has an opposite (cosine ≤ {max_cosine});\nlow → high spatial frequency"
    ax.set_xlabel(note, fontsize=8)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def plot_token_mixing(
    model: nn.Module,
    block: int | Sequence[int] = 0,
    *,
    mode: str = "pairs",
    num_units: int | None = None,
    max_cosine: float = weights.DEFAULT_MAX_COSINE,
    scale: str = "shared",
    columns: int | None = None,
    initial: nn.Module | None = None,
    model_name: str | None = None,
    dataset: str | None = None,
    title: str | None = None,
) -> Figure:
    """The token-mixing units of one block (or several, side by side), as in the paper's Figure 5.

    Each tile is one hidden unit of the block's token-mixing MLP: its row of W1 `(D_S, N)`
    drawn on the `h x w` patch grid (`mixer_edu.weights.token_mixing_units`). For a gMLP block,
    the rows of the spatial gating projection.

    Args:
        model: a Mixer (ours, or a timm one converted with `mixer_edu.pretrained.from_timm`).
        block: a block index, or several (`(0, 1, 2)` as in the paper's figure).
        mode: `'pairs'`: units of opposite phase side by side, pairs sorted by spatial frequency
            (low to high), then the unpaired units (also low to high); `'plain'`: units
            0, 1, 2, ... in their stored order.
        num_units: show only the first units of that order (e.g. 64 of a Mixer-B's 384).
        max_cosine: the largest cosine similarity that counts as opposite phase (`'pairs'`).
        scale: `'shared'`: one colour scale for all tiles (the weights as they are);
            `'unit'`: every unit divided by its largest |weight|, to see weak units' patterns.
        columns: tiles per row (default: about 1.5 times wider than tall).
        initial: the same model before training (e.g. `load_model("DIR/snapshots/epoch_000.pt")`);
            if given, each tile shows what training changed, weights now minus initial weights.
            After a short run the random start still dominates the weights themselves; the
            change shows what has been learned so far.
        model_name, dataset: for the title (`dataset`: what the model was trained on).
        title: replaces the default title.

    `figure.shown["blocks"]`: one dict per block with `units` `(k, h, w)` (the weights shown, in
    display order), `order` (their unit indices), `canvas` (the array drawn) and `positions`
    (the corner of each tile on it), `displayed` (the tiles after `scale`), `pairs`,
    `unpaired`, `pair_cosine` (for all units) and `frequency` (of the units shown).
    """
    _check_mode(mode)
    if scale not in ("shared", "unit"):
        raise ValueError(f"scale must be 'shared' or 'unit', got {scale!r}.")
    blocks = [block] if isinstance(block, int) else list(block)
    if not blocks:
        raise ValueError("block must be an index or a non-empty list of indices.")
    all_units = [weights.token_mixing_units(model, b) for b in blocks]  # checks the indices
    if initial is not None:
        all_units = [
            units - weights.token_mixing_units(initial, b)
            for b, units in zip(blocks, all_units, strict=True)
        ]
    if num_units is not None:
        check_positive_int(num_units, "num_units")
    count = min(num_units or len(all_units[0]), len(all_units[0]))
    columns = columns or _columns_for(count, pairs=mode == "pairs")
    panels = [
        _token_mixing_panel(units, b, mode, num_units, max_cosine, scale, columns)
        for b, units in zip(blocks, all_units, strict=True)
    ]
    limit = 1.0 if scale == "unit" else _symmetric_limit(*(p["displayed"] for p in panels))

    # The size depends on the number of units only, never on how many pairs were found, so a
    # notebook's figure (and its "<Figure size ...>" text, which nbval compares) is the same on
    # every machine.
    height, width = model.grid_size
    tile_rows = math.ceil(count / columns) + (mode == "pairs")  # + a row where unpaired begin
    aspect = tile_rows * (height + 2) / (columns * (width + 2))
    panel_width = min(7.0, max(5.6, 0.45 * columns))
    figsize = (panel_width * len(panels) + 1.2, panel_width * aspect + 1.9)
    fig, axes = plt.subplots(1, len(panels), figsize=figsize, squeeze=False, layout="constrained")
    for ax, panel in zip(axes[0], panels, strict=True):
        picture = ax.imshow(
            panel["canvas"], cmap=_weight_cmap(), vmin=-limit, vmax=limit, interpolation="nearest"
        )
        _no_ticks(ax)
        for side in ax.spines.values():
            side.set_visible(False)
        _describe_panel(ax, panel, mode, max_cosine)
    label = "weight change" if initial is not None else "weight"
    if scale == "unit":
        label = f"{label} / largest |{label}| of its unit"
    fig.colorbar(picture, ax=axes[0].tolist(), shrink=0.85, label=f"{label}\n(red +, blue −)")
    rows, cols = model.grid_size
    if initial is not None:
        what = (
            f"What training changed in the token-mixing units (now − initial), {rows}x{cols} grid"
        )
    elif all(hasattr(model.blocks[b], "mlp_tokens") for b in blocks):
        what = f"Token-mixing units: one tile = one hidden unit's weights on the {rows}x{cols} grid"
    else:  # gMLP: the spatial gating projection (N, N) plays the token-mixing part
        what = (
            f"Spatial gating weights: one tile = what one token gathers from the {rows}x{cols} grid"
        )
    _suptitle(fig, title or _title(what, _model_label(model, model_name), dataset), 11)
    fig.shown = dict(blocks=panels, mode=mode, scale=scale, limit=limit)
    return fig


def plot_paper_token_mixing(
    name: str | None = None,
    block: int | Sequence[int] = 0,
    **kwargs,
) -> Figure | None:
    """`plot_token_mixing` for the paper's pretrained weights, or None (with a message) offline.

    Args:
        name: a timm pretrained Mixer (default `mixer_edu.pretrained.DEFAULT_WEIGHTS`,
            Mixer-B/16 pre-trained on ImageNet-21k by the paper's authors, fine-tuned on
            ImageNet-1k; its 14x14 grid and 384 units per block are those of the paper's figure).
        block: block index or indices; `(0, 1, 2)` gives the paper's three columns.
        **kwargs: passed to `plot_token_mixing` (e.g. `num_units=64`).
    """
    from . import pretrained

    name = name or pretrained.DEFAULT_WEIGHTS
    model = pretrained.load_pretrained(name)
    if model is None:
        return None
    kwargs.setdefault("model_name", pretrained.describe_weights(name))
    return plot_token_mixing(model, block, **kwargs)


# --------------------------------------------------------------------------------------------
# 3. Stem filters.
# --------------------------------------------------------------------------------------------


def plot_stem_filters(
    model: nn.Module,
    *,
    num_filters: int | None = None,
    columns: int | None = None,
    model_name: str | None = None,
    dataset: str | None = None,
    title: str | None = None,
) -> Figure:
    """The stem's patch-embedding filters as small RGB images.

    Each filter `(P, P, C)` is scaled on its own to 0.5 + 0.5 * w / max|w|: grey is 0, and the
    colour of a pixel is the colour that filter responds to most (its opposite makes it most
    negative). Single-channel models are drawn with the red-blue weight map instead.

    `figure.shown`: `filters` `(D, P, P, C)` (the weights, `stem.proj.weight` channels-last),
    `displayed` (after scaling), `positions` and `canvas`.
    """
    filters = weights.stem_filters(model)  # (D, P, P, C)
    if num_filters is not None:
        check_positive_int(num_filters, "num_filters")
        filters = filters[:num_filters]
    values = filters.numpy().astype(np.float64)
    count, patch, _, channels = values.shape
    columns = columns or _columns_for(count, pairs=False)
    width = min(9.0, max(4.0, 0.5 * columns))  # inches for the tiles
    height = width * math.ceil(count / columns) / columns
    fig, ax = plt.subplots(figsize=(width + 1.0, height + 1.4), layout="constrained")
    if channels == 3:
        peaks = np.abs(values).reshape(count, -1).max(axis=1)
        displayed = 0.5 + 0.5 * values / np.where(peaks > 0, peaks, 1.0)[:, None, None, None]
        canvas, positions = tile(displayed, columns, fill=1.0)
        ax.imshow(canvas, interpolation="nearest")
        note = "each filter scaled on its own: grey = 0, colour = what it responds to most"
    else:
        displayed = values[..., 0]
        canvas, positions = tile(displayed, columns)
        limit = _symmetric_limit(displayed)
        picture = ax.imshow(
            canvas, cmap=_weight_cmap(), vmin=-limit, vmax=limit, interpolation="nearest"
        )
        fig.colorbar(picture, ax=ax, shrink=0.8, label="weight (red +, blue −, white 0)")
        note = "one channel: red +, blue −, white 0"
    _no_ticks(ax)
    ax.set_xlabel(note, fontsize=9)
    what = f"Stem filters: {count} patch-embedding filters of {patch}x{patch}x{channels}"
    _suptitle(fig, title or _title(what, _model_label(model, model_name), dataset), 11)
    fig.shown = dict(
        filters=filters.numpy(), displayed=displayed, positions=positions, canvas=canvas
    )
    return fig


# --------------------------------------------------------------------------------------------
# 4. Channel mixing: the same MLP at every patch.
# --------------------------------------------------------------------------------------------


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

    The channel-mixing MLP reads the C channels of one patch at a time, with the same weights at
    every patch (like a 1x1 convolution). So each of its D_C hidden units can be drawn as a map
    on the patch grid: its activation GELU(fc1(LayerNorm(token))) at every patch of this image.
    The maps show *what* each unit detects and *where* in the image it found it; no information
    moves between patches (compare the token-mixing units, which are fixed spatial patterns).

    The units shown are the `num_units` whose activation varies most across this image's
    patches (the most selective ones).

    Args:
        model: a Mixer.
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
    maps = responses[chosen].numpy()
    if image_for_display is None:
        low, high = batch.min(), batch.max()
        image_for_display = (batch - low) / (high - low if high > low else 1.0)
    pixels = _image_hwc(image_for_display, "image_for_display")
    patch_size = model.stem.patch_size

    columns = min(4, len(chosen))
    map_rows = math.ceil(len(chosen) / columns)
    fig = plt.figure(
        figsize=(3.2 + 2.3 * columns, 1.0 + 2.3 * max(map_rows, 1.5)), layout="constrained"
    )
    grid = fig.add_gridspec(map_rows, columns + 1, width_ratios=[1.6] + [1] * columns)
    ax_image = fig.add_subplot(grid[:, 0])
    _show_rgb(ax_image, pixels, interpolation="nearest")
    _draw_grid(ax_image, pixels.shape[0], pixels.shape[1], patch_size)
    ax_image.set_title("input image and its patches", fontsize=10)
    _no_ticks(ax_image)
    low, high = min(0.0, float(maps.min())), max(float(maps.max()), 1e-6)  # one scale for all
    for i, unit in enumerate(chosen):
        ax = fig.add_subplot(grid[i // columns, 1 + i % columns])
        picture = ax.imshow(maps[i], cmap="magma", vmin=low, vmax=high, interpolation="nearest")
        ax.set_title(f"hidden unit {unit}", fontsize=9)
        _no_ticks(ax)
    fig.colorbar(
        picture, ax=fig.axes[1:], shrink=0.8, label="activation after GELU (one value per patch)"
    )
    hidden = len(responses)
    what = (
        f"Channel mixing, block {block}: {len(chosen)} of {hidden} hidden units, each "
        "evaluated at every patch\n(same weights at every patch; the most selective units "
        "for this image)"
    )
    _suptitle(fig, title or _title(what, _model_label(model, model_name), dataset), 11)
    fig.shown = dict(responses=responses.numpy(), units=chosen, maps=maps, image=pixels)
    return fig


# --------------------------------------------------------------------------------------------
# 5. Over training: the same units in every snapshot.
# --------------------------------------------------------------------------------------------


def _load_snapshots(snapshots, max_snapshots: int | None = None) -> list[tuple[nn.Module, dict]]:
    """`(model, checkpoint)` in epoch order, for a run folder, a snapshots folder or files.

    With `max_snapshots`, only that many, evenly spread, always with the first and the last.
    """
    from .checkpoint import list_snapshots, load_model

    if isinstance(snapshots, (str, Path)):
        folder = Path(snapshots)
        paths = list_snapshots(folder) or sorted(folder.glob("epoch_*.pt"))
    else:
        folder, paths = None, [Path(p) for p in snapshots]
    if not paths:
        where = f" in {folder}" if folder is not None else ""
        raise FileNotFoundError(
            f"no snapshots{where} (expected DIR/snapshots/epoch_000.pt, epoch_001.pt, ...); "
            "python -m mixer_edu.train ... --out DIR writes them."
        )
    loaded = sorted((load_model(path) for path in paths), key=lambda item: item[1]["epoch"])
    if max_snapshots is not None and len(loaded) > max_snapshots:
        if check_positive_int(max_snapshots, "max_rows") < 2:
            raise ValueError(f"max_rows must be at least 2 (first and last), got {max_snapshots}.")
        keep = np.unique(np.linspace(0, len(loaded) - 1, max_snapshots).round().astype(int))
        loaded = [loaded[i] for i in keep]
    return loaded


def _history(snapshots, block, mode, num_units, max_cosine, change, max_snapshots=None) -> dict:
    """The chosen units in every snapshot; which units, and their order, come from the last.

    With `change`, every snapshot's units minus those of the first snapshot.
    """
    loaded = _load_snapshots(snapshots, max_snapshots)
    stacks = [weights.token_mixing_units(model, block) for model, _ in loaded]
    if change:
        stacks = [units - stacks[0] for units in stacks]
    _, order, arranged = _select_units(stacks[-1], mode, num_units, max_cosine)
    return dict(
        history=np.stack([units[order].numpy() for units in stacks]),  # (epochs, k, h, w)
        epochs=[int(checkpoint["epoch"]) for _, checkpoint in loaded],
        order=order,
        paired=min(2 * len(arranged.pairs), len(order)) if arranged is not None else 0,
        last=loaded[-1][1],
    )


def plot_token_mixing_over_training(
    snapshots,
    block: int = 0,
    *,
    num_units: int | None = 16,
    mode: str = "pairs",
    max_cosine: float = weights.DEFAULT_MAX_COSINE,
    change: bool = False,
    max_rows: int = 8,
    title: str | None = None,
) -> Figure:
    """The same token-mixing units after every epoch: rows = epochs, columns = units.

    The units and their order (pairs of opposite phase, by frequency) are chosen on the last
    snapshot, so each column follows one unit from its random start to what it learned. One
    colour scale for the whole grid, so growing weights show as stronger colours.

    Args:
        snapshots: a training run's folder (`DIR`, with `DIR/snapshots/epoch_NNN.pt`), the
            snapshots folder itself, or a list of snapshot/checkpoint files.
        block: which block.
        num_units: how many units (columns); None for all.
        mode, max_cosine: as in `plot_token_mixing`.
        change: show each epoch's weights minus the first snapshot's (epoch 0, the random
            start): what training has added so far. The first row is then all white.
        max_rows: show at most this many epochs, evenly spread, always the first and the last
            (a 30-epoch run would otherwise make a very tall figure).

    `figure.shown`: `history` `(epochs, k, h, w)`, `epochs`, `order` (unit indices), `canvas`
    (the array drawn) and `positions` (tile corners on it, epoch-major: `positions[e * k + j]`
    is unit `order[j]` after epoch `epochs[e]`).
    """
    _check_mode(mode)
    found = _history(snapshots, block, mode, num_units, max_cosine, change, max_rows)
    history, epochs, order, paired, last = (
        found[key] for key in ("history", "epochs", "order", "paired", "last")
    )
    count = len(order)
    pairs = paired // 2 if mode == "pairs" else None
    rows = [tile(units.astype(np.float64), count, pairs=pairs) for units in history]
    canvas, tops = _stack_rows([row for row, _ in rows], gap=2)
    positions = [(top + t, x) for top, (_, row) in zip(tops, rows, strict=True) for t, x in row]
    limit = _symmetric_limit(canvas)
    height = history.shape[2]
    fig, ax = plt.subplots(
        figsize=(
            min(14.0, 1.5 + 0.55 * count),
            1.6 + 0.55 * len(epochs) * height / history.shape[3],
        ),
        layout="constrained",
    )
    picture = ax.imshow(
        canvas, cmap=_weight_cmap(), vmin=-limit, vmax=limit, interpolation="nearest"
    )
    row_tops = [positions[e * count][0] for e in range(len(epochs))]
    ax.set_yticks(
        [top + height / 2 - 0.5 for top in row_tops], [f"epoch {epoch}" for epoch in epochs]
    )
    ax.set_xticks(
        [positions[j][1] + history.shape[3] / 2 - 0.5 for j in range(count)],
        [str(unit) for unit in order],
        fontsize=7,
    )
    if mode == "pairs":
        note = (
            f"token-mixing unit: {_count(paired // 2, 'pair')} of opposite phase, then unpaired "
            f"units, low → high frequency (as in epoch {epochs[-1]})"
        )
    else:
        note = "token-mixing unit"
    ax.set_xlabel(note, fontsize=9)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    quantity = f"change since epoch {epochs[0]}" if change else "weight"
    fig.colorbar(picture, ax=ax, shrink=0.8, label=f"{quantity} (red +, blue −, white 0)")
    what = f"Token-mixing units of block {block} over training" + (
        f": what each epoch changed since epoch {epochs[0]}" if change else ""
    )
    _suptitle(fig, title or _title(what, last.get("model_name"), last.get("dataset")), 11)
    fig.shown = dict(
        history=history,
        epochs=epochs,
        order=order,
        canvas=canvas,
        positions=positions,
        paired=paired,
    )
    return fig


def save_token_mixing_animation(
    snapshots,
    path: str | Path,
    block: int = 0,
    *,
    num_units: int | None = None,
    mode: str = "pairs",
    max_cosine: float = weights.DEFAULT_MAX_COSINE,
    change: bool = False,
    fps: float = 2.0,
) -> Path:
    """Save a GIF with one frame per snapshot: the token-mixing units of `block`, as they learn.

    Units and order are chosen on the last snapshot (as in `plot_token_mixing_over_training`,
    also for `change`), with one colour scale for all frames. Written with matplotlib's
    `PillowWriter`.

    Returns:
        The path of the GIF.
    """
    _check_mode(mode)
    found = _history(snapshots, block, mode, num_units, max_cosine, change)
    history, epochs, order, paired, last = (
        found[key] for key in ("history", "epochs", "order", "paired", "last")
    )
    count = len(order)
    columns = _columns_for(count, pairs=mode == "pairs")
    new_row_at = paired if mode == "pairs" and 0 < paired < count else None
    pairs = paired // 2 if mode == "pairs" else None
    frames = [
        tile(units.astype(np.float64), columns, pairs=pairs, new_row_at=new_row_at)[0]
        for units in history
    ]
    limit = _symmetric_limit(*frames)
    fig, ax = plt.subplots(
        figsize=(6.5, 6.5 * frames[0].shape[0] / frames[0].shape[1] + 1.2), layout="constrained"
    )
    picture = ax.imshow(
        frames[0], cmap=_weight_cmap(), vmin=-limit, vmax=limit, interpolation="nearest"
    )
    _no_ticks(ax)
    quantity = f"change since epoch {epochs[0]}" if change else "weight"
    fig.colorbar(picture, ax=ax, shrink=0.8, label=f"{quantity} (red +, blue −, white 0)")
    what = f"Token-mixing units of block {block}" + (
        f", change since epoch {epochs[0]}" if change else ""
    )
    heading = _title(what, last.get("model_name"), last.get("dataset"))
    label = ax.set_title(f"{heading}\nepoch {epochs[0]}", fontsize=10)

    def show(frame: int):
        picture.set_data(frames[frame])
        label.set_text(f"{heading}\nepoch {epochs[frame]}")
        return picture, label

    animation = FuncAnimation(fig, show, frames=len(frames), blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    animation.save(path, writer=PillowWriter(fps=fps))
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# 6. Training: curves, confusion matrix, mistakes.
# --------------------------------------------------------------------------------------------


def plot_training_curves(metrics, *, title: str | None = None) -> Figure:
    """Loss, accuracy and learning rate per epoch, for the training and the test set.

    Args:
        metrics: `DIR/metrics.jsonl` (or `DIR`), or the list of per-epoch dicts, each with
            `epoch`, `train_loss`, `test_loss`, `train_acc`, `test_acc` and optionally `lr`,
            `model` and `dataset` (its label, e.g. "synthetic stand-in").

    `figure.shown`: `epoch` and one array per plotted field.
    """
    if isinstance(metrics, (str, Path)):
        from .train import read_metrics

        records = read_metrics(metrics)
        if not records:
            raise FileNotFoundError(
                f"no metrics in {metrics}; python -m mixer_edu.train ... --out DIR writes one "
                "line per epoch to DIR/metrics.jsonl."
            )
    else:
        records = list(metrics)
    if not records:
        raise ValueError("the metrics are empty: train for at least one epoch first.")
    epochs = np.array([r["epoch"] for r in records])
    panels = [("loss", ["train_loss", "test_loss"]), ("accuracy", ["train_acc", "test_acc"])]
    if all("lr" in r for r in records):
        panels.append(("learning rate", ["lr"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.9), layout="constrained")
    shown = dict(epoch=epochs)
    for ax, (label, keys) in zip(axes, panels, strict=True):
        for key in keys:
            values = np.array([r.get(key, np.nan) for r in records], dtype=float)
            shown[key] = values
            ax.plot(
                epochs,
                values,
                marker="o",
                markersize=3,
                label=key.split("_")[0] if label != "learning rate" else None,
            )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        # metrics.jsonl records the learning rate the epoch started with
        ax.set_ylabel(label if label != "learning rate" else "learning rate at the epoch's start")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        if label != "learning rate":
            ax.legend()
    model = records[-1].get("model")
    dataset = records[-1].get("dataset")
    what = f"Training curves ({len(records)} epochs)"
    _suptitle(fig, title or _title(what, model, dataset), 11)
    fig.shown = shown
    return fig


def confusion_counts(targets, predictions, num_classes: int) -> np.ndarray:
    """`(num_classes, num_classes)` counts: row = true class, column = predicted class."""
    targets = torch.as_tensor(targets).long().flatten()
    predictions = torch.as_tensor(predictions).long().flatten()
    if targets.shape != predictions.shape:
        raise ValueError(
            f"targets ({len(targets)}) and predictions ({len(predictions)}) must have the same "
            "length."
        )
    index = targets * num_classes + predictions
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes).numpy()


def plot_confusion_matrix(
    targets,
    predictions,
    classes: Sequence[str],
    *,
    model_name: str | None = None,
    dataset: str | None = None,
    title: str | None = None,
) -> Figure:
    """Which classes the model confuses: row = true class, column = predicted class.

    Cells show the share of each true class (rows add up to 100%), with the counts in
    `figure.shown["counts"]` (and `figure.shown["percent"]`, the numbers written in the cells).
    """
    classes = list(classes)
    counts = confusion_counts(targets, predictions, len(classes))
    totals = counts.sum(axis=1, keepdims=True)
    percent = 100 * counts / np.where(totals > 0, totals, 1)
    size = 1.8 + 0.55 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.5, size), layout="constrained")
    picture = ax.imshow(percent, cmap="Blues", vmin=0, vmax=100)
    for (row, column), value in np.ndenumerate(percent):
        ax.text(
            column,
            row,
            f"{value:.0f}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if value > 55 else "black",
        )
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(picture, ax=ax, shrink=0.8, label="% of the true class")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    what = f"Confusion matrix on {counts.sum()} images (accuracy {100 * accuracy:.1f}%)"
    _suptitle(fig, title or _title(what, model_name, dataset), 11)
    fig.shown = dict(counts=counts, percent=percent)
    return fig


def plot_misclassified(
    images: torch.Tensor,
    targets,
    predictions,
    classes: Sequence[str],
    *,
    probabilities: torch.Tensor | None = None,
    num_images: int = 16,
    model_name: str | None = None,
    dataset: str | None = None,
    title: str | None = None,
) -> Figure:
    """The first `num_images` test images the model got wrong, with true and predicted class.

    Args:
        images: `(B, C, H, W)` with values in [0, 1] (use `mixer_edu.data.denormalize`).
        targets, predictions: `(B,)` class indices.
        classes: class names.
        probabilities: optional `(B, num_classes)` softmax outputs, to show the model's
            confidence in its wrong answer.

    `figure.shown`: `indices` (positions in the batch of the images shown).
    """
    check_tensor(images, "images")
    check_positive_int(num_images, "num_images")
    targets = torch.as_tensor(targets).long().flatten().cpu()
    predictions = torch.as_tensor(predictions).long().flatten().cpu()
    wrong = torch.nonzero(targets != predictions).flatten()[:num_images].tolist()
    # A fixed grid for num_images, however many mistakes there are: the same figure size always.
    columns = min(4, num_images)
    rows = math.ceil(num_images / columns)
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(2.0 * columns, 2.15 * rows + 0.8),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, wrong, strict=False):
        _show_rgb(ax, _image_hwc(images[index]), interpolation="nearest")
        guess = classes[predictions[index]]
        confidence = ""
        if probabilities is not None:
            confidence = f" ({100 * float(probabilities[index, predictions[index]]):.0f}%)"
        ax.set_title(f"true: {classes[targets[index]]}\npredicted: {guess}{confidence}", fontsize=8)
    if not wrong:
        axes[0, 0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    total = int((targets != predictions).sum())
    what = f"Misclassified test images: {len(wrong)} of {total} mistakes in {len(targets)} images"
    _suptitle(fig, title or _title(what, model_name, dataset), 11)
    fig.shown = dict(indices=wrong)
    return fig


# --------------------------------------------------------------------------------------------
# Every picture of a trained checkpoint, and the command line.
# --------------------------------------------------------------------------------------------


def _run_folder(checkpoint_path: Path) -> Path:
    """The training run a checkpoint or snapshot file belongs to."""
    if checkpoint_path.is_dir():
        return checkpoint_path
    parent = checkpoint_path.parent
    return parent.parent if parent.name == "snapshots" else parent


def _test_data(dataset: str, data_root, test_images: int | None, say):
    """The test split (normalised, first `test_images` images), or None with a message."""
    from . import data

    try:
        test_set = data.load_dataset(
            dataset,
            train=False,
            root=data_root,
            transform=data.test_transform(),
            download=dataset == "standin",  # generate the stand-in; never fetch 170 MB here
        )
    except data.DatasetUnavailableError as error:
        say(f"skipped the pictures that need test images: {str(error).splitlines()[0]}")
        return None
    if test_images is not None:
        check_positive_int(test_images, "test_images")
        test_set = torch.utils.data.Subset(test_set, range(min(test_images, len(test_set))))
    return test_set


def render_checkpoint(
    checkpoint,
    out,
    *,
    data_root=None,
    test_images: int | None = None,
    gif: bool = True,
    say=print,
) -> list[Path]:
    """Write every picture of a trained checkpoint into `out` as PNG files; return their paths.

    From the model: the token-mixing units of every block (pairs by frequency) and of block 0 in
    plain order, the stem filters. From the run folder (when present): the training curves
    (`metrics.jsonl`); with its snapshots, what training changed in every block's token-mixing
    units (now minus epoch 0), and block 0's units over training, as weights and as changes
    (PNG), and the changes as an animation (GIF).
    From the test set (when it can be loaded; the stand-in is generated if missing, CIFAR-10 is
    never downloaded here): the patches of one image, the channel-mixing responses to it in the
    first and the last block, the confusion matrix and misclassified images.

    Args:
        checkpoint: `DIR/checkpoint.pt`, a snapshot `DIR/snapshots/epoch_NNN.pt`, or `DIR`.
        out: folder for the pictures (created if needed).
        data_root: the data folder (default `mixer_edu.data.default_data_root()`).
        test_images: use only the first n test images (default: all).
        gif: also write the animation over training.
        say: where the one-line notes on skipped pictures go.
    """
    from . import data
    from .checkpoint import list_snapshots, load_model
    from .train import predict, read_metrics

    checkpoint = Path(checkpoint)
    model, state = load_model(checkpoint)
    run = _run_folder(checkpoint)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset, classes = state["dataset"], list(state["classes"])
    name = f"{state['model_name']}, epoch {state['epoch']}"
    written: list[Path] = []

    def save(fig: Figure, filename: str) -> None:
        path = out / filename
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)

    blocks = len(model.blocks)
    for block in range(blocks):
        figure = plot_token_mixing(model, block, model_name=name, dataset=dataset)
        save(figure, f"token_mixing_block_{block:02d}.png")
    figure = plot_token_mixing(model, 0, mode="plain", model_name=name, dataset=dataset)
    save(figure, "token_mixing_block_00_plain.png")
    save(plot_stem_filters(model, model_name=name, dataset=dataset), "stem_filters.png")

    metrics = read_metrics(run)
    if metrics:
        save(plot_training_curves(metrics), "training_curves.png")
    else:
        say(f"skipped the training curves: no metrics.jsonl in {run}")
    snapshots = list_snapshots(run)
    if len(snapshots) >= 2:
        initial, _ = load_model(snapshots[0])
        for block in range(blocks):
            figure = plot_token_mixing(
                model, block, initial=initial, model_name=name, dataset=dataset
            )
            save(figure, f"token_mixing_change_block_{block:02d}.png")
        save(plot_token_mixing_over_training(snapshots), "token_mixing_over_training.png")
        figure = plot_token_mixing_over_training(snapshots, change=True)
        save(figure, "token_mixing_change_over_training.png")
        if gif:
            path = out / "token_mixing_change_over_training.gif"
            written.append(save_token_mixing_animation(snapshots, path, change=True))
    else:
        say(f"skipped the pictures over training: fewer than 2 snapshots in {run / 'snapshots'}")

    test_set = _test_data(dataset, data_root, test_images, say)
    if test_set is not None:
        image, _ = test_set[0]  # normalised (3, H, W)
        shown = data.denormalize(image)
        save(plot_patches(shown, model.stem.patch_size, dataset=dataset), "patches.png")
        for block in sorted({0, blocks - 1}):
            figure = plot_channel_mixing(
                model, image, block, image_for_display=shown, model_name=name, dataset=dataset
            )
            save(figure, f"channel_mixing_block_{block:02d}.png")
        loader = torch.utils.data.DataLoader(test_set, batch_size=256)
        logits, labels = predict(model, loader, precision="fp32")
        predictions = logits.argmax(1)
        figure = plot_confusion_matrix(
            labels, predictions, classes, model_name=name, dataset=dataset
        )
        save(figure, "confusion_matrix.png")
        wrong = torch.nonzero(predictions != labels).flatten()[:16].tolist()
        images = torch.zeros(len(labels), *shown.shape)
        for index in wrong:  # only the images that are shown need to be read again
            images[index] = data.denormalize(test_set[index][0])
        figure = plot_misclassified(
            images,
            labels,
            predictions,
            classes,
            probabilities=logits.softmax(1),
            model_name=name,
            dataset=dataset,
        )
        save(figure, "misclassified.png")
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mixer_edu.viz",
        description="Write every picture of a trained Mixer checkpoint as PNG files.",
        epilog="Example: python -m mixer_edu.viz runs/mixer_cifar_small-standin/checkpoint.pt "
        "--out runs/mixer_cifar_small-standin/pictures",
    )
    parser.add_argument("checkpoint", type=Path, help="DIR/checkpoint.pt (or a snapshot, or DIR)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the pictures")
    parser.add_argument("--data-root", type=Path, help="data folder (default data/)")
    parser.add_argument("--test-images", type=int, help="use only the first N test images")
    parser.add_argument("--no-gif", action="store_true", help="skip the animation over training")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    matplotlib.use("Agg")  # files only: no window, works without a display
    try:
        paths = render_checkpoint(
            args.checkpoint,
            args.out,
            data_root=args.data_root,
            test_images=args.test_images,
            gif=not args.no_gif,
        )
    except (FileNotFoundError, ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
