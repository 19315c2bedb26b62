"""Exercise 6: read a picture of token-mixing units, and check the answers against the weights.

The quiz model is a small CIFAR-sized Mixer (8x8 grid of N = 64 tokens, C = 32 channels) whose
first block has D_S = 8 token-mixing units with *constructed* weights, each a pattern a student
should learn to recognise in the paper's Figure 5 (row k of W1, `(D_S, N)`, drawn on the grid):

    smooth     one cosine wave across the grid: the lowest spatial frequency
    fine       the sign flips from one column to the next: the highest frequency
    stripes +  two horizontal stripes ...
    stripes -  ... and the same pattern with the sign flipped: a pair of opposite phase
    diagonal   a diagonal wave
    local      equal weights on a 3x3 neighbourhood, 0 elsewhere: a local unit
    single     one non-zero weight: the unit copies one patch
    random     small random weights, as before training: no structure

They are stored in a shuffled order, so the student has to read the picture. The checker measures
the answers on the weights themselves where a measure exists: the spatial frequency and cosine
similarity of `mixer_edu.weights`, and the count of non-zero weights (the untrained-looking unit
is the one built from noise). It explains a wrong answer by what the chosen unit actually shows.
"""

from __future__ import annotations

import operator

import torch

from .. import weights
from ..mixer import MlpMixer
from ..models import create_model
from .feedback import Feedback

GRID = 8  # mixer_cifar_tiny: 32x32 images, 4x4 patches
CHANNELS = 32
# The stored order of the units in block 0 (a fixed shuffle).
KINDS = ("local", "fine", "stripes +", "smooth", "random", "single", "stripes -", "diagonal")
LOCAL_CENTRE = (2, 5)  # (row, column) of the local unit's 3x3 neighbourhood
SINGLE_TOKEN = (6, 1)

DESCRIPTIONS = {
    "smooth": "a single slow wave across the grid (one cycle from left to right)",
    "fine": "flips sign from one column to the next, the finest stripes the grid can show",
    "stripes +": "horizontal stripes, two cycles from top to bottom",
    "stripes -": "horizontal stripes, two cycles from top to bottom",
    "diagonal": "a diagonal wave",
    "local": "a small block of equal weights with 0 everywhere else",
    "single": "a single non-zero tile",
    "random": "small weights with no pattern at all",
}

QUESTIONS = {
    "smoothest_unit": "the unit with the lowest spatial frequency",
    "opposite_pair": "the two units of opposite phase",
    "local_unit": "the unit that reads a small neighbourhood",
    "local_unit_tokens": "how many tokens the local unit reads",
    "random_unit": "the unit that looks untrained",
    "channels_per_picture": "how many channels each picture is applied to",
}


def _pattern(kind: str) -> torch.Tensor:
    if kind == "smooth":
        return weights.grating(GRID, GRID, 0, 1)
    if kind == "fine":
        return weights.grating(GRID, GRID, 0, GRID // 2)
    if kind in ("stripes +", "stripes -"):
        sign = 1.0 if kind == "stripes +" else -1.0
        return sign * weights.grating(GRID, GRID, 2, 0)
    if kind == "diagonal":
        return weights.grating(GRID, GRID, 1, 1)
    picture = torch.zeros(GRID, GRID)
    if kind == "local":
        row, column = LOCAL_CENTRE
        picture[row - 1 : row + 2, column - 1 : column + 2] = 0.8
    elif kind == "single":
        picture[SINGLE_TOKEN] = 1.0
    else:  # random: as an untrained unit, much weaker than the learned patterns
        generator = torch.Generator().manual_seed(0)
        picture = 0.25 * torch.randn(GRID, GRID, generator=generator)
    return picture


def quiz_model() -> MlpMixer:
    """The quiz's Mixer: block 0's token-mixing units are the constructed pictures in `KINDS`."""
    model = create_model("mixer_cifar_tiny", embed_dim=CHANNELS, mlp_ratio=(0.25, 4.0))
    weight = weights.token_mixing_weight(model, 0)  # (D_S, N) = (8, 64)
    pictures = torch.stack([_pattern(kind) for kind in KINDS])  # (8, 8, 8)
    with torch.no_grad():
        weight.copy_(pictures.flatten(1))  # each picture row by row, as patches are numbered
    return model.eval()


def plot_quiz_units(model: MlpMixer | None = None):
    """The quiz model's block-0 units in stored order (`mixer_edu.viz`), each tile numbered.

    Tile k (its number in the top-left corner) is row k of W1 drawn on the 8x8 patch grid.
    """
    from .. import viz  # matplotlib is only needed for the picture

    model = model if model is not None else quiz_model()
    figure = viz.plot_token_mixing(
        model,
        0,
        mode="plain",
        columns=4,
        title="Token-mixing units of the quiz model (constructed weights, block 0)",
    )
    axes = figure.axes[0]
    axes.set_title("")  # the tiles carry their numbers instead
    panel = figure.shown["blocks"][0]
    for unit, (top, left) in zip(panel["order"], panel["positions"], strict=True):
        axes.text(
            left - 0.3,
            top - 0.3,
            str(unit),
            fontsize=9,
            va="top",
            bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="0.5"),
        )
    return figure


def _as_int(value) -> int | None:
    """An integer answer in any usual form (int, NumPy integer, 0-d integer tensor), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _unit_index(value, count: int) -> int | None:
    index = _as_int(value)
    return index if index is not None and 0 <= index < count else None


def _what_unit_is(k: int) -> str:
    return f"unit {k} shows {DESCRIPTIONS[KINDS[k]]}"


def _check_smoothest(feedback: Feedback, units: torch.Tensor, answer) -> None:
    frequency = weights.spatial_frequency(units)
    k = _unit_index(answer, len(units))
    if k is None:
        feedback.fail(f"smoothest_unit must be a unit number from 0 to {len(units) - 1}.")
    elif k == int(frequency.argmin()):
        feedback.ok(f"unit {k} is the smoothest: {frequency[k]:.3f} cycles per patch")
    else:
        feedback.fail(
            f"smoothest_unit: {_what_unit_is(k)} ({frequency[k]:.3f} cycles per patch). "
            "Look for the unit whose colour changes most slowly as you move across the grid."
        )


def _check_pair(feedback: Feedback, units: torch.Tensor, answer) -> None:
    cosine = weights.cosine_similarities(units)
    try:
        i, j = (_unit_index(value, len(units)) for value in answer)
    except (TypeError, ValueError):
        i = j = None
    if i is None or j is None or i == j:
        feedback.fail("opposite_pair must be two different unit numbers, e.g. (0, 1).")
    elif cosine[i, j] < -0.99:
        feedback.ok(
            f"units {i} and {j} are opposites: red where the other is blue "
            f"(cosine similarity {cosine[i, j]:.2f})"
        )
    else:
        feedback.fail(
            f"opposite_pair: units {i} and {j} are not opposites (cosine similarity "
            f"{cosine[i, j]:+.2f}; exact opposites have -1). Look for two tiles that are "
            "colour negatives of each other: the same pattern, red and blue swapped."
        )


def _tokens(count: int) -> str:
    return f"{count} token" if count == 1 else f"{count} tokens"


def _reads(units: torch.Tensor) -> torch.Tensor:
    """How many tokens each unit reads: its non-zero weights."""
    return (units != 0).flatten(1).sum(dim=1)


def _check_local(feedback: Feedback, units: torch.Tensor, unit, tokens) -> None:
    tokens = _as_int(tokens) if _as_int(tokens) is not None else tokens
    reads = _reads(units)
    local = int(((reads > 1) & (reads < 16)).nonzero()[0])
    k = _unit_index(unit, len(units))
    if k == local:
        feedback.ok(f"unit {k} is the local unit: it ignores every token outside a small block")
    elif k is None:
        feedback.fail(f"local_unit must be a unit number from 0 to {len(units) - 1}.")
    else:
        feedback.fail(
            f"local_unit: {_what_unit_is(k)}; it reads {_tokens(int(reads[k]))}. The local "
            "unit is white (weight 0) everywhere except in one small neighbourhood."
        )
    count = int(reads[local])
    side = round(count**0.5)
    if tokens == count:
        feedback.ok(f"the local unit reads {count} tokens ({side}x{side} patches)")
    elif tokens == side:
        feedback.fail(
            f"local_unit_tokens: {tokens} is the side of the neighbourhood; count the tiles "
            "(tokens) it reads, not the width of the block."
        )
    else:
        feedback.fail(
            f"local_unit_tokens: {tokens!r} is not it. Count the tiles of the local unit that "
            "are not white: white means weight 0, a token the unit ignores."
        )


def _check_random(feedback: Feedback, units: torch.Tensor, answer) -> None:
    k = _unit_index(answer, len(units))
    if k is not None and KINDS[k] == "random":
        feedback.ok(f"unit {k} has no structure: it looks like a unit before training")
    elif k is None:
        feedback.fail(f"random_unit must be a unit number from 0 to {len(units) - 1}.")
    else:
        feedback.fail(
            f"random_unit: {_what_unit_is(k)}, a clear pattern. The untrained-looking "
            "unit has weak weights that change from tile to tile with no pattern."
        )


def _check_channels(feedback: Feedback, model: MlpMixer, answer) -> None:
    channels, tokens = model.embed_dim, model.num_tokens
    hidden = weights.token_mixing_weight(model, 0).shape[0]
    answer = _as_int(answer) if _as_int(answer) is not None else answer
    if answer == channels:
        feedback.ok(
            f"each picture is applied to all {channels} channels: token-mixing weights are "
            "shared across channels"
        )
    elif answer == tokens:
        feedback.fail(
            f"channels_per_picture: {tokens} is the number of tokens (the tiles of one picture). "
            "A picture mixes the tokens of one channel; it is reused for every channel of the "
            "table: how many channels does each token have in this model?"
        )
    elif answer == hidden:
        feedback.fail(
            f"channels_per_picture: {hidden} is the number of hidden units (pictures). Each "
            "picture is reused for every channel of the token table: how many are there?"
        )
    else:
        feedback.fail(
            f"channels_per_picture: {answer!r} is not it. The token-mixing MLP reads one channel "
            "(one column of the table) at a time, with the same weights for every channel; the "
            "model's embed_dim says how many channels there are."
        )


def check_picture_answers(answers) -> bool:
    """Check the answers to the questions about the quiz model's token-mixing picture.

    Args:
        answers: a dict with the keys of `QUESTIONS`: unit numbers for `smoothest_unit`,
            `local_unit` and `random_unit`, a pair of unit numbers for `opposite_pair`, and
            numbers for `local_unit_tokens` and `channels_per_picture`.

    Prints one line per question; returns True if all are right.
    """
    feedback = Feedback("reading of the picture")
    if not isinstance(answers, dict):
        feedback.fail(f"the answers must be a dict with the keys {', '.join(QUESTIONS)}.")
        return feedback.stop()
    missing = [key for key in QUESTIONS if key not in answers]
    if missing:
        feedback.fail(
            "missing answers: " + "; ".join(f"{key} ({QUESTIONS[key]})" for key in missing) + "."
        )
        return feedback.stop()
    model = quiz_model()
    units = weights.token_mixing_units(model, 0)
    _check_smoothest(feedback, units, answers["smoothest_unit"])
    _check_pair(feedback, units, answers["opposite_pair"])
    _check_local(feedback, units, answers["local_unit"], answers["local_unit_tokens"])
    _check_random(feedback, units, answers["random_unit"])
    _check_channels(feedback, model, answers["channels_per_picture"])
    return feedback.done()
