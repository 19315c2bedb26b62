"""Checker for exercise 8: causal token mixing, a mask built into the mixing weights.

Attention makes a language model causal by setting the scores of later positions to -inf
before its softmax. MLP token mixing has no scores to hide: its position-to-position weights
are parameters (`mixer_edu.seq_mixing`). So the mask goes into the weights themselves. The
student writes `causal_token_mixing(mlp, x)` for an `Mlp(N, N)` (hidden size N) and a table
`(B, N, C)`, so that output position t depends on the input positions 0..t only:

    h   = GELU(tril(W1) · x + b1)      hidden unit k reads positions <= k
    out = tril(W2) · h + b2            position t reads hidden units <= t, so positions <= t

`tril` keeps the lower triangle, diagonal included (W[t, s] with s <= t). Both layers need it:
a product of lower-triangular matrices is lower triangular, and GELU acts on each hidden unit
alone, so the composition is causal; one unmasked layer lets the future leak in.

The checker compares with its own masked computation, and independently tests causality by a
probe: change the input at one position and see which output positions move (only that position
and later ones may). A wrong output is recomputed with the typical wrong masks (none, one layer
only, the upper triangle, no diagonal) and the matching one named.
"""

from __future__ import annotations

import re
from functools import partial

import torch
import torch.nn.functional as F

from .. import Mlp
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

# (batch, positions N, channels C). N == C in the second case: mixing the channels by mistake
# runs without a shape error there.
CASES = [(2, 6, 4), (3, 5, 5), (1, 12, 3)]

NEG_INF_HINT = (
    "-inf hides a score before a softmax, but these weights are multiplied, not fed to a "
    "softmax: a weight that must not count is 0 (and 0 * -inf is NaN)"
)


def _mixed(mlp: Mlp, x: torch.Tensor, mask1, mask2, bias_on_channels=False) -> torch.Tensor:
    """The MLP across positions with its weights multiplied by the given masks (and, by
    mistake, its biases added along the channels)."""
    w1 = mlp.fc1.weight * mask1 if mask1 is not None else mlp.fc1.weight
    w2 = mlp.fc2.weight * mask2 if mask2 is not None else mlp.fc2.weight
    b1, b2 = (mlp.fc1.bias, mlp.fc2.bias) if bias_on_channels else (
        mlp.fc1.bias[:, None], mlp.fc2.bias[:, None]
    )  # fmt: skip
    hidden = F.gelu(torch.einsum("kn,bnc->bkc", w1, x) + b1)
    return torch.einsum("tk,bkc->btc", w2, hidden) + b2


def reference(mlp: Mlp, x: torch.Tensor) -> torch.Tensor:
    """Causal token mixing: both weights masked to their lower triangle."""
    lower = torch.ones(x.shape[1], x.shape[1]).tril()
    return _mixed(mlp, x, lower, lower)


def _mistakes(n: int):
    ones = torch.ones(n, n)
    lower, upper, strict = ones.tril(), ones.triu(), ones.tril(-1)
    yield (None, None), "neither weight is masked, so every position sees the whole sequence"
    yield (
        (lower, None),
        "only fc1 is masked: hidden unit k has seen positions <= k, but fc2 lets position t "
        "read every hidden unit, the later ones included; mask fc2 too",
    )
    yield (
        (None, lower),
        "only fc2 is masked: position t reads hidden units <= t, but fc1 lets each hidden unit "
        "read the whole sequence; mask fc1 too",
    )
    yield (
        (upper, upper),
        "the masks keep the upper triangle: W[t, s] is how much position t reads from position "
        "s, so keeping s >= t lets each position read the future instead of the past",
    )
    yield (
        (strict, strict),
        "the masks also remove the diagonal: position t may read itself (s <= t), only later "
        "positions are hidden",
    )


def _later_positions_leak(function, mlp: Mlp, x: torch.Tensor) -> str | None:
    """Probe: change position s of sample 0; an earlier output position must not move."""
    s = x.shape[1] // 2
    nudged = x.clone()
    nudged[0, s] += 1.0
    with torch.no_grad():
        before = run_student_code(function, frozen_copy(mlp), x.clone())
        after = run_student_code(function, frozen_copy(mlp), nudged)
    if not (before.ok and after.ok):
        return None
    try:
        moved = ((after.value - before.value).abs() > 1e-6)[0].any(dim=-1)  # (N,)
    except Exception:  # not tensors of one shape: nothing to conclude
        return None
    earlier = moved[:s].nonzero().flatten().tolist()
    if earlier:
        return (
            f"changing input position {s} changed output position {earlier[0]}: an earlier "
            "position sees a later one, so the model could read the next word it has to predict"
        )
    return None


def _diagnose(function, out: torch.Tensor, mlp: Mlp, x: torch.Tensor) -> str:
    with torch.no_grad():
        for (mask1, mask2), hint in _mistakes(x.shape[1]):
            if close(out, _mixed(mlp, x, mask1, mask2)):
                return hint
        lower = torch.ones(x.shape[1], x.shape[1]).tril()
        if x.shape[1] == x.shape[2] and close(out, _mixed(mlp, x, lower, lower, True)):
            return (
                "the masks are right, but the biases were added along the last axis, the "
                "channels; each has one value per hidden unit or position, so it must line up "
                "with the position axis"
            )
        difference, where = max_difference(out, reference(mlp, x))
    leak = _later_positions_leak(function, mlp, x)
    found = (
        f"the output differs from causal token mixing (largest difference {difference:.3g} at "
        f"sample {where[0]}, position {where[1]}, channel {where[2]})"
    )
    if leak is not None:
        return f"{found}; {leak}"
    return f"{found}: mask both weights, then apply the whole MLP (fc1, GELU, fc2) across positions"


def _exception_hint(x: torch.Tensor):
    def hint(error: BaseException) -> str | None:
        sizes = broadcast_sizes(error)
        n, c = x.shape[1], x.shape[2]
        if sizes is not None and set(sizes) == {n, c}:
            return (
                f"A tensor sized by the N={n} positions met one sized by the C={c} channels: "
                "the masks are position by position (N x N, like the weights), and a layer's "
                "bias has one value per position, which lines up with the last axis (the "
                "channels) unless it gets a trailing axis of size 1, (N, 1)"
            )
        if not isinstance(error, RuntimeError) or not re.search(r"\d+x\d+ and \d+x\d+", str(error)):
            return None
        return (
            f"the MLP reads N={x.shape[1]} numbers (one per position), but an nn.Linear acts on "
            "the last axis, which holds the channels: mix across positions (axis 1)"
        )

    return hint


def check_causal_token_mixing(causal_token_mixing) -> bool:
    """Check a student's `causal_token_mixing(mlp, x)`, `(B, N, C) -> (B, N, C)`, causal.

    Runs it with random `Mlp(N, N)`s on tables of several shapes (including N == C), compares
    with both weights masked to their lower triangle, checks that no output position depends on
    a later input position, that `x` and the MLP's weights stay unchanged, and that every weight
    gets a gradient. Prints one line per check; returns True if all pass.
    """
    feedback = Feedback("causal token mixing")
    with isolated():
        for case in CASES:
            b, n, c = case
            label = f"x {case} with Mlp({n}, {n})"
            mlp = randomize_(Mlp(n, n))
            x = torch.randn(b, n, c)
            with torch.no_grad():
                expected = reference(frozen_copy(mlp), x)
            ok, out = call_and_check(
                feedback,
                f"causal_token_mixing on {label}",
                causal_token_mixing,
                mlp,
                x,
                expected=expected,
                inputs={"x": x},
                modules={"MLP": mlp},
                hint=_exception_hint(x),
                shape_hint=lambda out: "token mixing keeps the table's shape (B, N, C)",
                finite_hint=NEG_INF_HINT,
            )
            if not ok:
                return feedback.stop()
            diagnose = partial(_diagnose, causal_token_mixing, mlp=mlp, x=x)
            passed = f"{label} -> {shape(out)}, equal to masked token mixing"
            if not check_values(feedback, label, out, expected, diagnose, passed):
                return feedback.stop()

        mlp, x = randomize_(Mlp(8, 8)), torch.randn(2, 8, 3)
        leak = _later_positions_leak(causal_token_mixing, mlp, x)
        if leak is not None:
            feedback.fail(leak + ".")
            return feedback.stop()
        feedback.ok("no output position moves when a later input position changes")
        check_gradients(
            feedback,
            "causal_token_mixing",
            lambda: causal_token_mixing(mlp, x),
            dict(mlp.named_parameters()),
            "gradients reach both layers of the MLP, so it can be trained",
            group=lambda name: f"the MLP's {name}",
        )
    return feedback.done()
