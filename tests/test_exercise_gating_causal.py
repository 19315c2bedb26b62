"""Exercises 7 and 8: the spatial gating unit and causal token mixing, right and wrong answers."""

import pytest
import torch
import torch.nn.functional as F

from mixer_edu.exercises import check_causal_token_mixing, check_spatial_gating
from tests.exercise_feedback import assert_accepted, assert_rejected

# --- Exercise 7: the spatial gating unit ----------------------------------------------------


def across_tokens(linear, x):
    return linear(x.transpose(1, 2)).transpose(1, 2)


def gating(split=lambda x: x.chunk(2, dim=-1), gate=None, combine=lambda z1, g: z1 * g):
    def spatial_gating(unit, x):
        z1, z2 = split(x)
        g = gate(unit, z2) if gate else across_tokens(unit.proj, unit.norm(z2))
        return combine(z1, g)

    return spatial_gating


def sgu_by_einsum(unit, x):
    z1, z2 = x.chunk(2, dim=-1)
    g = torch.einsum("ij,bjc->bic", unit.proj.weight, unit.norm(z2)) + unit.proj.bias[:, None]
    return z1 * g


@pytest.mark.parametrize(
    "answer",
    [gating(), sgu_by_einsum, lambda unit, x: unit(x)],
    ids=["transpose", "einsum", "package"],
)
def test_spatial_gating_checker_accepts_correct_answers(answer, capsys):
    assert_accepted(check_spatial_gating, answer, 4, capsys)


def half(x):
    return x.shape[-1] // 2


@pytest.mark.parametrize(
    "answer, hint",
    [
        (gating(split=lambda x: x.chunk(2, dim=-1)[::-1]), "the halves are swapped"),
        (gating(gate=lambda u, z2: across_tokens(u.proj, z2)), "LayerNorm is missing"),
        (gating(gate=lambda u, z2: u.norm(across_tokens(u.proj, z2))), "comes after the token"),
        (gating(combine=lambda z1, g: z1 + g), "the gate is added"),
        (gating(combine=lambda z1, g: g), "the gate G alone"),
        (gating(gate=lambda u, z2: u.norm(z2)), "never mixes the tokens"),
        (gating(split=lambda x: (x[..., ::2], x[..., 1::2])), "split alternately"),
        (
            gating(gate=lambda u, z2: across_tokens(u.proj, u.norm(z2)) - u.proj.bias[:, None]),
            "bias b is missing",
        ),
        (gating(combine=lambda z1, g: z1 * F.gelu(g)), "an activation is applied to the gate"),
        (
            gating(
                gate=lambda u, z2: (
                    torch.einsum("ji,bjc->bic", u.proj.weight, u.norm(z2)) + u.proj.bias[:, None]
                )
            ),
            "applied transposed",
        ),
        (gating(gate=lambda u, z2: u.proj(u.norm(z2))), "proj reads N=6 numbers"),
        (lambda unit, x: unit(x).detach(), "has no gradient"),
        (lambda unit, x: x, "the unit halves the channels"),
        (lambda unit, x: unit(x).double(), "dtype torch.float64"),
    ],
)
def test_spatial_gating_checker_names_each_mistake(answer, hint, capsys):
    assert_rejected(check_spatial_gating, answer, hint, capsys)


def test_spatial_gating_checker_catches_the_channel_axis_when_n_equals_half_d(capsys):
    def channels_when_it_can(unit, x):
        z1, z2 = x.chunk(2, dim=-1)
        if z2.shape[1] == z2.shape[2]:
            return z1 * unit.proj(unit.norm(z2))
        return gating()(unit, x)

    assert_rejected(check_spatial_gating, channels_when_it_can, "along the channels", capsys)


def test_spatial_gating_checker_catches_a_gate_changed_in_place(capsys):
    def resets_the_gate(unit, x):
        with torch.no_grad():
            unit.proj.bias.fill_(1.0)  # the paper's initialisation, but not this unit's weights
        return unit(x)

    assert_rejected(
        check_spatial_gating, resets_the_gate, "changed the weights of the unit", capsys
    )


# --- Exercise 8: causal token mixing --------------------------------------------------------


def masked_mixing(mask1, mask2):
    def causal_token_mixing(mlp, x):
        n = x.shape[1]
        w1 = mlp.fc1.weight * mask1(n) if mask1 else mlp.fc1.weight
        w2 = mlp.fc2.weight * mask2(n) if mask2 else mlp.fc2.weight
        hidden = mlp.act(torch.einsum("kn,bnc->bkc", w1, x) + mlp.fc1.bias[:, None])
        return torch.einsum("tk,bkc->btc", w2, hidden) + mlp.fc2.bias[:, None]

    return causal_token_mixing


def lower(n):
    return torch.ones(n, n).tril()


def by_masked_linears(mlp, x):
    """Another correct form: F.linear with masked weights on the transposed table."""
    n = x.shape[1]
    turned = x.transpose(1, 2)  # (B, C, N)
    hidden = mlp.act(F.linear(turned, mlp.fc1.weight.tril(), mlp.fc1.bias))
    return F.linear(hidden, mlp.fc2.weight * torch.ones(n, n).tril(), mlp.fc2.bias).transpose(1, 2)


def masked_fill_minus_inf(mlp, x):
    n = x.shape[1]
    future = torch.ones(n, n).triu(1).bool()
    w1 = mlp.fc1.weight.masked_fill(future, float("-inf"))
    w2 = mlp.fc2.weight.masked_fill(future, float("-inf"))
    hidden = mlp.act(torch.einsum("kn,bnc->bkc", w1, x) + mlp.fc1.bias[:, None])
    return torch.einsum("tk,bkc->btc", w2, hidden) + mlp.fc2.bias[:, None]


def masks_in_place(mlp, x):
    with torch.no_grad():
        mlp.fc1.weight.mul_(lower(x.shape[1]))
        mlp.fc2.weight.mul_(lower(x.shape[1]))
    return across_tokens(mlp, x)


@pytest.mark.parametrize(
    "answer", [masked_mixing(lower, lower), by_masked_linears], ids=["einsum", "linear"]
)
def test_causal_mixing_checker_accepts_correct_answers(answer, capsys):
    assert_accepted(check_causal_token_mixing, answer, 5, capsys)


@pytest.mark.parametrize(
    "answer, hint",
    [
        (masked_mixing(None, None), "neither weight is masked"),
        (lambda mlp, x: across_tokens(mlp, x), "neither weight is masked"),
        (masked_mixing(lower, None), "only fc1 is masked"),
        (masked_mixing(None, lower), "only fc2 is masked"),
        (
            masked_mixing(lambda n: torch.ones(n, n).triu(), lambda n: torch.ones(n, n).triu()),
            "keep the upper triangle",
        ),
        (
            masked_mixing(lambda n: torch.ones(n, n).tril(-1), lambda n: torch.ones(n, n).tril(-1)),
            "also remove the diagonal",
        ),
        (masked_fill_minus_inf, "0 * -inf is NaN"),
        (masks_in_place, "changed the weights of the MLP"),
        (lambda mlp, x: mlp(x), "mix across positions (axis 1)"),
        (lambda mlp, x: masked_mixing(lower, lower)(mlp, x).detach(), "has no gradient"),
        (
            lambda mlp, x: masked_mixing(lower, lower)(mlp, x) + 0.1 * x.flip(1),
            "an earlier position sees a later one",
        ),
    ],
)
def test_causal_mixing_checker_names_each_mistake(answer, hint, capsys):
    assert_rejected(check_causal_token_mixing, answer, hint, capsys)
