"""Checker for exercise 7: gMLP's spatial gating unit, tokens that switch each other's features.

The student writes `spatial_gating(unit, x)` with the layers of a given
`mixer_edu.gmlp.SpatialGatingUnit` (`unit.norm`, a LayerNorm over D/2 channels, and `unit.proj`,
an `nn.Linear(N, N)` across the tokens), `(B, N, D) -> (B, N, D/2)`:

    Z1, Z2 = the first and the second half of the D channels
    G      = W · LayerNorm(Z2) + b          across the N tokens, like token mixing
    out    = Z1 ⊙ G                         channel by channel

The checker compares with the package's unit on the same random weights (a bias far from 1, so a
missing bias shows), on sizes where N != D/2 (a Linear on the wrong axis raises an error, which
the checker explains) and N == D/2 (where it runs and must be caught by its values). A wrong
output is recomputed in the typical wrong ways (halves swapped, no LayerNorm, the gate added
instead of multiplied, W transposed, ...) and the matching one named.
"""

from __future__ import annotations

import re
from functools import partial

import torch
import torch.nn.functional as F

from ..gmlp import SpatialGatingUnit, mix_tokens
from .checks import call_and_check, check_gradients, check_values, first_match, frozen_copy
from .feedback import (
    Feedback,
    broadcast_sizes,
    isolated,
    max_difference,
    randomize_,
    shape,
)

# (batch, tokens N, channels D). N == D/2 in the second case, so that a Linear applied to the
# channels runs without a shape error and must be caught by its values.
CASES = [(2, 6, 8), (3, 4, 8), (1, 10, 12)]


def _mistakes(unit: SpatialGatingUnit, x: torch.Tensor):
    """The unit computed in typical wrong ways, with its reference weights, and their hints."""
    z1, z2 = x.chunk(2, dim=-1)
    norm, proj = unit.norm, unit.proj

    def gate(half):
        return mix_tokens(proj, norm(half))

    yield (
        lambda: z2 * gate(z1),
        "the halves are swapped: the first half Z1 is the one that gets gated, and the second "
        "half Z2 makes the gate",
    )
    yield (lambda: z1 * mix_tokens(proj, z2), "the gate's LayerNorm is missing: normalise Z2")
    yield (
        lambda: z1 * norm(mix_tokens(proj, z2)),
        "the LayerNorm comes after the token projection; it normalises Z2 before it",
    )
    yield (lambda: z1 + gate(z2), "the gate is added to Z1; the unit multiplies them")
    yield (lambda: gate(z2), "the output is the gate G alone; the unit returns Z1 ⊙ G")
    yield (
        lambda: z1 * norm(z2),
        "the gate never mixes the tokens: proj, the N x N projection across tokens, is missing",
    )
    yield (
        lambda: x[..., ::2] * gate(x[..., 1::2]),
        "the channels are split alternately (even and odd); the unit splits them into the "
        "first half and the second half",
    )
    yield (
        lambda: z1 * (gate(z2) - proj.bias[:, None]),
        "the projection's bias b is missing (G = W · LayerNorm(Z2) + b): apply the whole "
        "Linear, not only its weight",
    )
    yield (
        lambda: z1 * F.gelu(gate(z2)),
        "an activation is applied to the gate; the gate of a spatial gating unit is linear",
    )
    yield (
        lambda: z1 * (torch.einsum("ji,bjc->bic", proj.weight, norm(z2)) + proj.bias[:, None]),
        "the projection's weight is applied transposed: row i of W (proj.weight[i]) says how "
        "much output token i gathers from each input token",
    )
    yield (
        lambda: z1 * (torch.einsum("ij,bjc->bic", proj.weight, norm(z2)) + proj.bias),
        "proj's bias was added along the last axis, the channels; it has one value per token, "
        "so it must line up with the token axis",
    )
    if z2.shape[1] == z2.shape[2]:
        yield (
            lambda: z1 * proj(norm(z2)),
            "proj is applied along the channels (the last axis); it mixes the tokens: turn the "
            "table so the tokens are last, or multiply from the left",
        )


def _diagnose(out: torch.Tensor, unit: SpatialGatingUnit, x: torch.Tensor) -> str:
    hint = first_match(out, _mistakes(unit, x))
    if hint is not None:
        return hint
    with torch.no_grad():
        difference, where = max_difference(out, unit(x))
    return (
        f"the output differs from mixer_edu.gmlp.SpatialGatingUnit's (largest difference "
        f"{difference:.3g} at sample {where[0]}, token {where[1]}, channel {where[2]}): follow "
        "the three steps of the docstring (split, gate across tokens, multiply) one at a time"
    )


def _exception_hint(x: torch.Tensor):
    def hint(error: BaseException) -> str | None:
        sizes = broadcast_sizes(error)
        n, half = x.shape[1], x.shape[2] // 2
        if sizes is not None and set(sizes) == {n, half}:
            return (
                f"A tensor with one value per token (N={n}), such as proj's bias, met the last "
                f"axis of a (B, N, D/2) table, which holds its D/2={half} channels: broadcasting "
                "lines axes up from the last one, so a per-token value needs a trailing axis of "
                "size 1, (N, 1), to line up with the tokens"
            )
        found = re.search(r"\((\d+)x(\d+) and (\d+)x(\d+)\)", str(error))
        if not isinstance(error, RuntimeError) or found is None:
            return None
        return (
            f"proj reads N={x.shape[1]} numbers (one per token) but was given vectors of length "
            f"{found.group(2)}: an nn.Linear acts on the last axis, which holds the channels; "
            "the gate mixes the tokens"
        )

    return hint


def _shape_hint(out: torch.Tensor, case: tuple) -> str:
    b, n, d = case
    if out.shape == (b, n, d):
        return "the unit halves the channels: it returns the gated half Z1 ⊙ G, (B, N, D/2)"
    if out.shape == (b, d // 2, n):
        return "the table was turned for the projection but never turned back"
    return "the unit returns (B, N, D/2)"


def check_spatial_gating(spatial_gating) -> bool:
    """Check a student's `spatial_gating(unit, x)`, `(B, N, D) -> (B, N, D/2)`.

    Runs it with random `SpatialGatingUnit`s on tables of several shapes (including N == D/2),
    compares with `mixer_edu.gmlp.SpatialGatingUnit`, checks that it changes neither `x` nor the
    unit's weights, and that every weight of the unit gets a gradient. Prints one line per check;
    returns True if all pass.
    """
    feedback = Feedback("spatial gating unit")
    with isolated():
        for case in CASES:
            b, n, d = case
            label = f"x {case} with SpatialGatingUnit({d}, num_tokens={n})"
            unit = randomize_(SpatialGatingUnit(d, n))
            x = torch.randn(b, n, d)
            with torch.no_grad():
                expected = frozen_copy(unit)(x)
            ok, out = call_and_check(
                feedback,
                f"spatial_gating on {label}",
                spatial_gating,
                unit,
                x,
                expected=expected,
                inputs={"x": x},
                modules={"unit": unit},
                hint=_exception_hint(x),
                shape_hint=lambda out, case=case: _shape_hint(out, case),
            )
            if not ok:
                return feedback.stop()
            diagnose = partial(_diagnose, unit=unit, x=x)
            passed = f"{label} -> {shape(out)}, equal to mixer_edu.gmlp.SpatialGatingUnit"
            if not check_values(feedback, label, out, expected, diagnose, passed):
                return feedback.stop()

        unit = randomize_(SpatialGatingUnit(8, 6))
        x = torch.randn(2, 6, 8)
        check_gradients(
            feedback,
            "spatial_gating",
            lambda: spatial_gating(unit, x),
            dict(unit.named_parameters()),
            "gradients reach the gate's LayerNorm and projection, so the unit can learn",
            group=lambda name: f"the unit's {name}",
        )
    return feedback.done()
