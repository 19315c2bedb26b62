"""Over training: the same token-mixing units in every snapshot of a training run.

`plot_token_mixing_over_training` draws them as a grid (rows = epochs, columns = units) and
`save_token_mixing_animation` as a GIF (one frame per epoch); `change=True` shows each epoch minus
the random start. The units and their order are chosen on the last snapshot, so each column (or
tile) follows one unit from its random start to what it learned.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.figure import Figure
from torch import nn

from .. import weights
from ..models import load_model
from ..support.checkpoint import list_snapshots
from ..support.validation import check_positive_int
from .layout import (
    columns_for,
    count_of,
    no_frame,
    no_ticks,
    set_title,
    show_weights,
    stack_rows,
    symmetric_limit,
    tile,
    title_text,
    to_numpy,
)
from .token_mixing import check_mode, select_units


def load_snapshots(snapshots, max_snapshots: int | None = None) -> list[tuple[nn.Module, dict]]:
    """`(model, checkpoint)` in epoch order, for a run folder, a snapshots folder or files.

    With `max_snapshots`, only that many, evenly spread, always with the first and the last.
    """
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
    check_mode(mode)
    loaded = load_snapshots(snapshots, max_snapshots)
    stacks = [weights.token_mixing_units(model, block) for model, _ in loaded]
    if change:
        stacks = [units - stacks[0] for units in stacks]
    _, order, arranged = select_units(stacks[-1], mode, num_units, max_cosine)
    paired = min(2 * len(arranged.pairs), len(order)) if arranged is not None else 0
    return dict(
        history=np.stack([to_numpy(units[order]) for units in stacks]),  # (epochs, k, h, w)
        epochs=[int(checkpoint["epoch"]) for _, checkpoint in loaded],
        order=order,
        paired=paired,
        pairs=paired // 2 if mode == "pairs" else None,  # for `tile`
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

    One colour scale for the whole grid, so growing weights show as stronger colours.

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
    found = _history(snapshots, block, mode, num_units, max_cosine, change, max_rows)
    history, epochs = found["history"], found["epochs"]
    count, height, width = history.shape[1:]
    rows = [tile(units.astype(np.float64), count, pairs=found["pairs"]) for units in history]
    canvas, tops = stack_rows([row for row, _ in rows], gap=2)
    positions = [(top + t, x) for top, (_, row) in zip(tops, rows, strict=True) for t, x in row]
    fig, ax = plt.subplots(
        figsize=(min(14.0, 1.5 + 0.55 * count), 1.6 + 0.55 * len(epochs) * height / width),
        layout="constrained",
    )
    picture = show_weights(ax, canvas, symmetric_limit(canvas))
    ax.set_yticks([top + height / 2 - 0.5 for top in tops], [f"epoch {e}" for e in epochs])
    ax.set_xticks(
        [positions[j][1] + width / 2 - 0.5 for j in range(count)],
        [str(unit) for unit in found["order"]],
        fontsize=7,
    )
    note = "token-mixing unit"
    if mode == "pairs":
        note += (
            f": {count_of(found['paired'] // 2, 'pair')} of opposite phase, then unpaired "
            f"units, low → high frequency (as in epoch {epochs[-1]})"
        )
    ax.set_xlabel(note, fontsize=9)
    ax.tick_params(length=0)
    no_frame(ax)
    quantity = f"change since epoch {epochs[0]}" if change else "weight"
    fig.colorbar(picture, ax=ax, shrink=0.8, label=f"{quantity} (red +, blue −, white 0)")
    what = f"Token-mixing units of block {block} over training" + (
        f": what each epoch changed since epoch {epochs[0]}" if change else ""
    )
    last = found["last"]
    set_title(
        fig, what, title=title, model_name=last.get("model_name"), dataset=last.get("dataset")
    )
    fig.shown = dict(
        history=history,
        epochs=epochs,
        order=found["order"],
        canvas=canvas,
        positions=positions,
        paired=found["paired"],
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
    found = _history(snapshots, block, mode, num_units, max_cosine, change)
    history, epochs, paired = found["history"], found["epochs"], found["paired"]
    count = history.shape[1]
    columns = columns_for(count, pairs=mode == "pairs")
    new_row_at = paired if mode == "pairs" and 0 < paired < count else None
    frames = [
        tile(units.astype(np.float64), columns, pairs=found["pairs"], new_row_at=new_row_at)[0]
        for units in history
    ]
    fig, ax = plt.subplots(
        figsize=(6.5, 6.5 * frames[0].shape[0] / frames[0].shape[1] + 1.2), layout="constrained"
    )
    picture = show_weights(ax, frames[0], symmetric_limit(*frames))
    no_ticks(ax)
    quantity = f"change since epoch {epochs[0]}" if change else "weight"
    fig.colorbar(picture, ax=ax, shrink=0.8, label=f"{quantity} (red +, blue −, white 0)")
    what = f"Token-mixing units of block {block}" + (
        f", change since epoch {epochs[0]}" if change else ""
    )
    heading = title_text(what, found["last"].get("model_name"), found["last"].get("dataset"))
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
