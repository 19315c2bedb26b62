"""Stem filters: the patch-embedding filters (`mixer_edu.patching`) as small RGB images.

Each filter `(P, P, C)` is scaled on its own to 0.5 + 0.5 * w / max|w|: grey is 0, and the colour
of a pixel is the colour that filter responds to most (its opposite makes it most negative).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from torch import nn

from .. import weights
from ..support.validation import check_positive_int
from . import layout


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

    Single-channel models are drawn with the red-blue weight map instead. The model may be on
    any device.

    `figure.shown`: `filters` `(D, P, P, C)` (the weights, `stem.proj.weight` channels-last),
    `displayed` (after scaling), `positions` and `canvas`.
    """
    filters = layout.to_numpy(weights.stem_filters(model))  # (D, P, P, C)
    if num_filters is not None:
        check_positive_int(num_filters, "num_filters")
        filters = filters[:num_filters]
    values = filters.astype(np.float64)
    count, patch, _, channels = values.shape
    columns = columns or layout.columns_for(count, pairs=False)
    width = min(9.0, max(4.0, 0.5 * columns))  # inches for the tiles
    height = width * math.ceil(count / columns) / columns
    fig, ax = plt.subplots(figsize=(width + 1.0, height + 1.4), layout="constrained")
    if channels == 3:
        peaks = np.abs(values).reshape(count, -1).max(axis=1)
        displayed = 0.5 + 0.5 * values / np.where(peaks > 0, peaks, 1.0)[:, None, None, None]
        canvas, positions = layout.tile(displayed, columns, fill=1.0)
        ax.imshow(canvas, interpolation="nearest")
        note = "each filter scaled on its own: grey = 0, colour = what it responds to most"
    else:
        displayed = values[..., 0]
        canvas, positions = layout.tile(displayed, columns)
        picture = layout.show_weights(ax, canvas, layout.symmetric_limit(displayed))
        fig.colorbar(picture, ax=ax, shrink=0.8, label="weight (red +, blue −, white 0)")
        note = "one channel: red +, blue −, white 0"
    layout.no_ticks(ax)
    ax.set_xlabel(note, fontsize=9)
    what = f"Stem filters: {count} patch-embedding filters of {patch}x{patch}x{channels}"
    layout.set_title(
        fig, what, title=title, model_name=layout.model_label(model, model_name), dataset=dataset
    )
    fig.shown = dict(filters=filters, displayed=displayed, positions=positions, canvas=canvas)
    return fig
