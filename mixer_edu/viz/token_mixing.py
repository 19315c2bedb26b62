"""Token-mixing units, the paper's Figure 5.

Each hidden unit of a block's token-mixing MLP (a row of W1, `(D_S, N)`) is drawn on the patch
grid: red where the unit adds up the patches, blue where it subtracts them, white where it ignores
them. Units of opposite phase (w_i ≈ -w_j) are paired side by side and the pairs sorted from
smooth to fine patterns (`mixer_edu.weights` defines both precisely); `mode="plain"` shows the
units in their stored order instead, and `initial=` (the run's epoch-0 snapshot) shows what
training changed instead of the weights. For a gMLP block the tiles are the rows of the spatial
gating projection (`mixer_edu.gmlp`).

`plot_paper_token_mixing` draws the same for Google's pretrained Mixer-B/16
(`mixer_edu.tools.pretrained`), the closest public model to the one in the paper's figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from .. import weights
from ..gmlp import SpatialGatingBlock
from ..support.validation import check_positive_int
from ..tools import pretrained
from .layout import (
    columns_for,
    count_of,
    model_label,
    no_frame,
    no_ticks,
    set_title,
    show_weights,
    symmetric_limit,
    tile,
    to_numpy,
)

MODES = ("pairs", "plain")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(
            f"mode must be 'pairs' (opposite-phase pairs sorted by frequency, as in the paper) "
            f"or 'plain' (units in their stored order), got {mode!r}."
        )
    return mode


def select_units(units: torch.Tensor, mode: str, num_units: int | None, max_cosine: float):
    """Order (and cut) the units for display: `(units (k, h, w), order, UnitOrder | None)`.

    Args:
        units: the hidden units as pictures `(D_S, h, w)`.
        mode: `"pairs"` (the paper's opposite-phase pairs, by frequency) or `"plain"`.
        num_units: keep the first this many after ordering; None keeps all.
        max_cosine: how close to opposite two units must be to count as a pair.
    """
    if mode == "pairs":
        arranged = weights.figure5_order(units, max_cosine)
        order = arranged.order
    else:
        arranged, order = None, list(range(len(units)))
    if num_units is not None:
        check_positive_int(num_units, "num_units")
        order = order[:num_units]
    return units[order], order, arranged


def _panel(units, block, mode, num_units, max_cosine, scale, columns) -> dict:
    """Everything one panel shows: the units in display order, tiled on one canvas."""
    shown_units, order, arranged = select_units(units, mode, num_units, max_cosine)
    displayed = to_numpy(shown_units).astype(np.float64)
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
        units=to_numpy(shown_units),
        displayed=displayed,
        order=order,
        canvas=canvas,
        positions=positions,
        frequency=to_numpy(weights.spatial_frequency(shown_units)),
        pairs=arranged.pairs if arranged is not None else [],
        unpaired=arranged.unpaired if arranged is not None else [],
        pair_cosine=arranged.pair_cosine if arranged is not None else [],
        shown_pairs=paired // 2,
    )


def _describe_panel(ax, panel: dict, mode: str, max_cosine: float, tiles: str = "units") -> None:
    """Title and note of one block's panel; `tiles` names what a tile is ('units', 'tokens')."""
    order = panel["order"]
    if mode == "plain":
        ax.set_title(f"block {panel['block']}: {tiles} {order[0]} to {order[-1]}", fontsize=10)
        ax.set_xlabel("in their stored order, row by row", fontsize=8)
        return
    pairs, rest = panel["shown_pairs"], len(order) - 2 * panel["shown_pairs"]
    ax.set_title(
        f"block {panel['block']}: {count_of(pairs, 'pair')} of opposite phase, {rest} unpaired",
        fontsize=10,
    )
    if pairs:
        note = "pairs side by side, then the unpaired units;\neach low → high spatial frequency"
    else:
        note = f"no unit has an opposite (cosine ≤ {max_cosine});\nlow → high spatial frequency"
    ax.set_xlabel(note, fontsize=8)


def _units(model: nn.Module, blocks: list[int], initial: nn.Module | None) -> list[torch.Tensor]:
    """Each block's units `(D_S, h, w)` on the CPU, or with `initial` what training changed."""
    units = [weights.token_mixing_units(model, b) for b in blocks]  # checks the indices
    if initial is None:
        return units
    return [
        now - weights.token_mixing_units(initial, b) for b, now in zip(blocks, units, strict=True)
    ]


def _figure_size(model, panels: int, count: int, columns: int, mode: str) -> tuple[float, float]:
    """Depends on the number of units only, never on how many pairs were found, so a notebook's
    figure (and its "<Figure size ...>" text, which nbval compares) is the same on every machine.
    """
    height, width = model.grid_size
    tile_rows = math.ceil(count / columns) + (mode == "pairs")  # + a row where unpaired begin
    aspect = tile_rows * (height + 2) / (columns * (width + 2))
    panel_width = min(7.0, max(5.6, 0.45 * columns))
    return panel_width * panels + 1.2, panel_width * aspect + 1.9


def _gating(model: nn.Module, blocks: list[int]) -> bool:
    """gMLP: the spatial gating projection (N, N) plays the token-mixing part of these blocks."""
    return all(isinstance(model.blocks[b], SpatialGatingBlock) for b in blocks)


def _tiles(model: nn.Module, blocks: list[int], initial: nn.Module | None) -> str:
    """What one tile is: a hidden unit of the token MLP, or (gMLP) one token's gating row."""
    return "tokens" if _gating(model, blocks) and initial is None else "units"


def _heading(model: nn.Module, blocks: list[int], initial: nn.Module | None) -> str:
    rows, cols = model.grid_size
    if initial is not None:
        return (
            f"What training changed in the token-mixing units (now − initial), {rows}x{cols} grid"
        )
    if _gating(model, blocks):
        return (
            f"Spatial gating weights: one tile = what one token gathers from the {rows}x{cols} grid"
        )
    return f"Token-mixing units: one tile = one hidden unit's weights on the {rows}x{cols} grid"


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
        model: a Mixer (ours, or a timm one converted with `tools.pretrained.from_timm`),
            on any device.
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
    check_mode(mode)
    if scale not in ("shared", "unit"):
        raise ValueError(f"scale must be 'shared' or 'unit', got {scale!r}.")
    blocks = [block] if isinstance(block, int) else list(block)
    if not blocks:
        raise ValueError("block must be an index or a non-empty list of indices.")
    all_units = _units(model, blocks, initial)
    if num_units is not None:
        check_positive_int(num_units, "num_units")
    count = min(num_units or len(all_units[0]), len(all_units[0]))
    columns = columns or columns_for(count, pairs=mode == "pairs")
    panels = [
        _panel(units, b, mode, num_units, max_cosine, scale, columns)
        for b, units in zip(blocks, all_units, strict=True)
    ]
    limit = 1.0 if scale == "unit" else symmetric_limit(*(p["displayed"] for p in panels))

    figsize = _figure_size(model, len(panels), count, columns, mode)
    fig, axes = plt.subplots(1, len(panels), figsize=figsize, squeeze=False, layout="constrained")
    for ax, panel in zip(axes[0], panels, strict=True):
        picture = show_weights(ax, panel["canvas"], limit)
        no_ticks(ax)
        no_frame(ax)
        _describe_panel(ax, panel, mode, max_cosine, _tiles(model, blocks, initial))
    label = "weight change" if initial is not None else "weight"
    if scale == "unit":
        label = f"{label} / largest |{label}| of its unit"
    fig.colorbar(picture, ax=axes[0].tolist(), shrink=0.85, label=f"{label}\n(red +, blue −)")
    what = _heading(model, blocks, initial)
    set_title(fig, what, title=title, model_name=model_label(model, model_name), dataset=dataset)
    fig.shown = dict(blocks=panels, mode=mode, scale=scale, limit=limit)
    return fig


def plot_paper_token_mixing(
    name: str | None = None,
    block: int | Sequence[int] = 0,
    **kwargs,
) -> Figure | None:
    """`plot_token_mixing` for the paper's pretrained weights, or None (with a message) offline.

    Args:
        name: a timm pretrained Mixer (default `mixer_edu.tools.pretrained.DEFAULT_WEIGHTS`,
            Mixer-B/16 pre-trained on ImageNet-21k by the paper's authors, fine-tuned on
            ImageNet-1k; its 14x14 grid and 384 units per block are those of the paper's figure).
        block: block index or indices; `(0, 1, 2)` gives the paper's three columns.
        **kwargs: passed to `plot_token_mixing` (e.g. `num_units=64`).
    """
    name = name or pretrained.DEFAULT_WEIGHTS
    model = pretrained.load_pretrained(name)
    if model is None:
        return None
    kwargs.setdefault("model_name", pretrained.describe_weights(name))
    return plot_token_mixing(model, block, **kwargs)
