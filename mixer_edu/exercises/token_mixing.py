"""Checker for exercise 2: apply an MLP across the tokens (the transpose).

The student writes `token_mixing(mlp, x)`: `x` is the `(B, N, C)` token table and `mlp` an
`Mlp(N, D_S)`, whose Linear layers act on the last axis. Token mixing must let every token's
value in one channel depend on all N tokens' values *in that channel*, and on nothing else.

The checker compares with its own computation, which multiplies by the weights from the left
with `einsum` (instead of running `nn.Linear` on the transposed table: an independent
computation) and, when the values
differ, finds out which entries of the input each output depends on: change one entry
`x[0, t, c]` and see which outputs move.

    right:             channel c of every token of sample 0 moves (a column of the table)
    along channels:    every channel of token t moves (a row): mixing the wrong axis
    across samples:    outputs of another sample move: the batch axis got mixed in
    scattered:         a reshape reinterpreted the table instead of turning it
"""

from __future__ import annotations

import re
from functools import partial

import torch

from ..mlp import Mlp
from .checks import call_and_check, check_gradients, check_values, frozen_copy
from .feedback import (
    Feedback,
    broadcast_sizes,
    close,
    isolated,
    max_difference,
    randomize_,
    shape,
)
from .sandbox import run_student_code

# (batch, tokens N, channels C, hidden D_S). N == C in the third case, so that an MLP applied
# along the channels runs without a shape error and must be caught by its values.
CASES = [
    (2, 16, 5, 8),
    (3, 9, 12, 4),
    (2, 6, 6, 10),
    (1, 64, 32, 32),
]


def _reference(mlp: Mlp, x: torch.Tensor) -> torch.Tensor:
    """Token mixing with the weights on the left: W2 · GELU(W1 · x + b1) + b2, per channel."""
    mlp = frozen_copy(mlp)
    with torch.no_grad():  # (B, N, C) -> (B, D_S, C) -> (B, N, C)
        hidden = torch.einsum("sn,bnc->bsc", mlp.fc1.weight, x) + mlp.fc1.bias[:, None]
        hidden = torch.nn.functional.gelu(hidden)
        return torch.einsum("ns,bsc->bnc", mlp.fc2.weight, hidden) + mlp.fc2.bias[:, None]


def _exception_hint(x: torch.Tensor, mlp: Mlp):
    def hint(error: BaseException) -> str | None:
        sizes = broadcast_sizes(error)
        if sizes is not None and x.shape[2] in sizes:
            other = sizes[0] if sizes[1] == x.shape[2] else sizes[1]
            held = "hidden unit" if other == mlp.fc1.out_features else "token"
            return (
                f"A tensor with one value per {held} ({other}), such as a layer's bias, met the "
                f"last axis of the table, which holds the C={x.shape[2]} channels: broadcasting "
                f"lines axes up from the last one, so a per-{held} value needs a trailing axis "
                "of size 1 to line up with its own axis"
            )
        found = re.search(r"\((\d+)x(\d+) and (\d+)x(\d+)\)", str(error))
        if not isinstance(error, RuntimeError) or found is None:
            return None
        given = int(found.group(2))  # the length of the vectors the Linear layer was given
        tokens = mlp.fc1.in_features
        if given == x.shape[-1]:
            held = "the channels, so the MLP would mix channels, not tokens"
        elif given == x.shape[0]:
            held = "the batch: a transpose moved the batch axis"
        else:
            held = f"something of size {given}"
        return (
            f"The MLP's first layer reads N={tokens} numbers (one per token), but it was given "
            f"vectors of length {given}: an nn.Linear acts on the last axis, and that axis held "
            + held
        )

    return hint


def _depends_on(function, mlp: Mlp, x: torch.Tensor, token: int, channel: int):
    """Which outputs change when `x[0, token, channel]` changes (a bool tensor), or None."""
    nudged = x.clone()
    nudged[0, token, channel] += 1.0
    with torch.no_grad():
        before = run_student_code(function, frozen_copy(mlp), x.clone())
        after = run_student_code(function, frozen_copy(mlp), nudged)
    if not (before.ok and after.ok):  # it ran once; if a probe breaks it, skip this probe
        return None
    try:
        return (after.value - before.value).abs() > 1e-6
    except Exception:  # not tensors, or shapes that do not match
        return None


def _diagnose(function, mlp: Mlp, x: torch.Tensor, out: torch.Tensor) -> str:
    expected = _reference(mlp, x)
    if close(out - x, expected):
        return (
            "the output is the token mixing plus the input: the residual (adding x back) "
            "belongs to the Mixer block (exercise 3); token mixing itself is only the MLP"
        )
    token, channel = 1, x.shape[2] - 1  # the last channel: a reshape moves it furthest
    moved = _depends_on(function, mlp, x, token, channel)
    if moved is None or moved.shape != x.shape:
        return _values_differ(out, expected)
    if x.shape[0] > 1 and moved[1:].any():
        return (
            f"changing sample 0 changed the output of sample {int(moved[1:].nonzero()[0, 0]) + 1}"
            ": samples in a batch must stay independent, so a transpose or reshape moved the "
            "batch axis"
        )
    column = torch.zeros_like(moved)
    column[0, :, channel] = True
    row = torch.zeros_like(moved)
    row[0, token, :] = True
    if torch.equal(moved, row):
        return (
            f"changing channel {channel} of token {token} changed the other channels of that "
            "token and no other token: the MLP mixes along the channel axis; token mixing "
            "must move information between tokens, within each channel"
        )
    if moved[~column].any():
        return (
            f"changing one number (token {token}, channel {channel}) changed outputs in other "
            "channels: the table was reinterpreted (reshape or view) instead of turned "
            "(transposed); a reshape keeps the memory order and scrambles tokens with channels"
        )
    return _values_differ(out, expected, "the output depends on the right numbers, but it")


def _values_differ(out: torch.Tensor, expected: torch.Tensor, prefix: str = "the output") -> str:
    difference, where = max_difference(out, expected)
    return (
        f"{prefix} differs from the reference (largest difference {difference:.3g} at sample "
        f"{where[0]}, token {where[1]}, channel {where[2]}): apply the whole given MLP (fc1, "
        "GELU, fc2) with its own weights, once"
    )


def _shape_hint(out: torch.Tensor, case: tuple) -> str:
    b, n, c, hidden = case
    if out.shape == (b, c, n) and n != c:
        return "the table was turned for the MLP but never turned back"
    if out.shape[1:] in ((hidden, c), (c, hidden)):
        return f"the hidden size D_S={hidden} is still there: use both layers"
    return "token mixing keeps the table's shape"


def check_token_mixing(token_mixing) -> bool:
    """Check a student's `token_mixing(mlp, x)`, `(B, N, C) -> (B, N, C)` across the tokens.

    Runs it with random MLPs on tables of several shapes (including N == C, where mixing the
    wrong axis raises no error), and compares with a weights-on-the-left einsum; also checks that
    it changes neither `x` nor the MLP's weights, and that every weight of the MLP gets a
    gradient. Prints one line per check; returns True if all pass.
    """
    feedback = Feedback("token mixing")
    with isolated():
        for case in CASES:
            b, n, c, hidden = case
            label = f"x {(b, n, c)} with Mlp({n}, {hidden})"
            mlp = randomize_(Mlp(n, hidden))
            x = torch.randn(b, n, c)
            expected = _reference(mlp, x)  # before the student's code runs, on a copy
            ok, out = call_and_check(
                feedback,
                f"token_mixing on {label}",
                token_mixing,
                mlp,
                x,
                expected=expected,
                inputs={"x": x},
                modules={"MLP": mlp},
                hint=_exception_hint(x, mlp),
                shape_hint=lambda out, case=case: _shape_hint(out, case),
            )
            if not ok:
                return feedback.stop()
            diagnose = partial(_diagnose, token_mixing, mlp, x)
            passed = f"{label} -> {shape(out)}, mixed across the {n} tokens of each channel"
            if not check_values(feedback, label, out, expected, diagnose, passed):
                return feedback.stop()

        mlp = randomize_(Mlp(16, 8))
        x = torch.randn(2, 16, 5)
        check_gradients(
            feedback,
            "token_mixing",
            lambda: token_mixing(mlp, x),
            dict(mlp.named_parameters()),
            "gradients reach every weight of the MLP, so it can be trained",
            group=lambda name: f"the MLP's {name}",
        )
    return feedback.done()
