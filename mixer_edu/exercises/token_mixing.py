"""Checker for exercise 2: apply an MLP across the tokens (the transpose).

The student writes `token_mixing(mlp, x)`: `x` is the `(B, N, C)` token table and `mlp` an
`Mlp(N, D_S)`, whose Linear layers act on the last axis. Token mixing must let every token's
value in one channel depend on all N tokens' values *in that channel*, and on nothing else.

The checker compares with the package's `TokenMixingMlp` (which multiplies from the left instead
of transposing, an independent computation) and, when the values differ, finds out which entries
of the input each output depends on: change one entry `x[0, t, c]` and see which outputs move.

    right:             channel c of every token of sample 0 moves (a column of the table)
    along channels:    every channel of token t moves (a row): mixing the wrong axis
    across samples:    outputs of another sample move: the batch axis got mixed in
    scattered:         a reshape reinterpreted the table instead of turning it
"""

from __future__ import annotations

import re

import torch

from ..mixer import TokenMixingMlp
from ..mlp import Mlp
from .feedback import (
    Feedback,
    check_is_tensor,
    close,
    isolated,
    max_difference,
    randomize_,
    shape,
)

# (batch, tokens N, channels C, hidden D_S). N == C in the third case, so that an MLP applied
# along the channels runs without a shape error and must be caught by its values.
CASES = [
    (2, 16, 5, 8),
    (3, 9, 12, 4),
    (2, 6, 6, 10),
    (1, 64, 32, 32),
]


def _reference(mlp: Mlp, x: torch.Tensor) -> torch.Tensor:
    tokens, hidden = mlp.fc1.in_features, mlp.fc1.out_features
    reference = TokenMixingMlp(tokens, hidden)
    reference.load_state_dict(mlp.state_dict())
    with torch.no_grad():
        return reference(x)


def _exception_hint(x: torch.Tensor, mlp: Mlp):
    def hint(error: BaseException) -> str | None:
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


def _depends_on(function, mlp: Mlp, x: torch.Tensor, token: int, channel: int) -> torch.Tensor:
    """Which outputs change when `x[0, token, channel]` changes (a bool tensor)."""
    nudged = x.clone()
    nudged[0, token, channel] += 1.0
    with torch.no_grad():
        return (function(mlp, nudged) - function(mlp, x)).abs() > 1e-6


def _diagnose(function, mlp: Mlp, x: torch.Tensor, out: torch.Tensor) -> str:
    expected = _reference(mlp, x)
    if close(out - x, expected):
        return (
            "the output is the token mixing plus the input: the residual (adding x back) "
            "belongs to the Mixer block (exercise 3); token mixing itself is only the MLP"
        )
    token, channel = 1, x.shape[2] - 1  # the last channel: a reshape moves it furthest
    try:
        moved = _depends_on(function, mlp, x, token, channel)
    except Exception:  # it ran on x; if a nudged x breaks it, skip this probe
        moved = None
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


def check_token_mixing(token_mixing) -> bool:
    """Check a student's `token_mixing(mlp, x)`, `(B, N, C) -> (B, N, C)` across the tokens.

    Runs it with random MLPs on tables of several shapes (including N == C, where mixing the
    wrong axis raises no error), and compares with `mixer_edu.TokenMixingMlp`; also checks that
    gradients reach the MLP. Prints one line per check; returns True if all pass.
    """
    feedback = Feedback("token mixing")
    with isolated():
        for b, n, c, hidden in CASES:
            label = f"x {(b, n, c)} with Mlp({n}, {hidden})"
            mlp = randomize_(Mlp(n, hidden))
            x = torch.randn(b, n, c)
            ok, out = feedback.call(
                f"token_mixing on {label}",
                token_mixing,
                mlp,
                x.clone(),
                hint=_exception_hint(x, mlp),
            )
            if not ok or not check_is_tensor(feedback, out, f"token_mixing on {label}"):
                return feedback.stop()
            if out.shape != x.shape:
                if out.shape == (b, c, n) and n != c:
                    why = "the table was turned for the MLP but never turned back"
                elif out.shape[1:] in ((hidden, c), (c, hidden)):
                    why = f"the hidden size D_S={hidden} is still there: use both layers"
                else:
                    why = "token mixing keeps the table's shape"
                feedback.fail(f"{label}: output shape {shape(out)}, expected {(b, n, c)}; {why}.")
                return feedback.stop()
            if not close(out.detach(), _reference(mlp, x)):
                feedback.fail(f"{label}: {_diagnose(token_mixing, mlp, x, out.detach())}.")
                return feedback.stop()
            feedback.ok(f"{label} -> {shape(out)}, mixed across the {n} tokens of each channel")

        mlp = randomize_(Mlp(16, 8))
        ok, out = feedback.call("token_mixing", token_mixing, mlp, torch.randn(2, 16, 5))
        if not ok:
            return feedback.stop()
        feedback.check(
            out.requires_grad,
            "gradients flow back to the MLP's weights, so it can be trained",
            "the output is cut off from the MLP's weights (it has no gradient): no .detach(), "
            ".numpy() or torch.no_grad() inside token mixing, or the MLP cannot learn",
        )
    return feedback.done()
