"""Checker for exercise 3: the Mixer block, two pre-norm residual branches one after the other.

The student writes a class `MixerBlock(dim, num_tokens, tokens_hidden, channels_hidden)` with the
layers `norm1`, `mlp_tokens`, `norm2`, `mlp_channels` (timm's names, as in `mixer_edu.MixerBlock`)
and its `forward`, `(B, N, C) -> (B, N, C)`:

    x = x + token_mixing(norm1(x))       mlp_tokens across the N tokens of each channel
    x = x + channel_mixing(norm2(x))     mlp_channels across the C channels of each token

The checker gives the student's block the same random weights as the package's `MixerBlock`
and compares the outputs. Before that, it tests the residuals on their own, by switching the MLPs
off (zero weights in their last layer, so each branch outputs 0):

    both off:            a correct block returns x unchanged
    channel MLP off:     a correct block returns x + token branch; without the token
                         residual it returns the token branch alone
    token MLP off:       the same test for the channel residual

When the values differ, the checker recomputes the block with the reference weights in each of
the typical wrong ways (post-norm, a missing or shared LayerNorm, the branches in parallel or in
the wrong order) and names the one that matches. An MLP or LayerNorm applied along the wrong axis
raises a shape error on the first case (N != C), which the checker explains instead.
"""

from __future__ import annotations

import copy
from functools import partial

import torch
from torch import nn

from ..mixer import MixerBlock as ReferenceBlock
from .checks import call_and_check, check_gradients, check_output, check_values
from .feedback import Feedback, close, isolated, max_difference, randomize_, shape
from .sandbox import run_student_code

# (batch, tokens N, channels C, tokens_hidden D_S, channels_hidden D_C). The first case has
# N != C, so that an MLP or a LayerNorm on the wrong axis raises a shape error at once; the second
# has N == C, where only the values can show such a mistake.
CASES = [
    (2, 16, 8, 4, 32),
    (3, 8, 8, 4, 16),
    (1, 4, 12, 6, 48),
]

LAYERS = ("norm1", "mlp_tokens", "norm2", "mlp_channels")


def _reference_block(case: tuple) -> ReferenceBlock:
    _, n, c, tokens_hidden, channels_hidden = case
    block = ReferenceBlock(c, n, mlp_ratio=(tokens_hidden / c, channels_hidden / c))
    return randomize_(block).eval()


def _shape_hint(key: str, got: tuple, case: tuple) -> str:
    _, n, c, tokens_hidden, channels_hidden = case
    layer = key.split(".")[0]
    if layer in ("norm1", "norm2") and got == (n,):
        return (
            f"{layer} normalises over {n} numbers (num_tokens, the tokens); a Mixer's LayerNorm "
            f"normalises each token over its dim={c} channels"
        )
    if key == "mlp_tokens.fc1.weight" and got[-1] == c:
        return (
            f"mlp_tokens reads {c} numbers (dim, the channels of one token); the token-mixing "
            f"MLP reads one channel across all num_tokens={n} tokens"
        )
    if key == "mlp_channels.fc1.weight" and got[-1] == n:
        return (
            f"mlp_channels reads {n} numbers (num_tokens, the tokens); the channel-mixing MLP "
            f"reads the dim={c} channels of one token"
        )
    if key.startswith("mlp_tokens.fc1"):
        return f"mlp_tokens should have tokens_hidden={tokens_hidden} hidden units"
    if key.startswith("mlp_channels.fc1"):
        return f"mlp_channels should have channels_hidden={channels_hidden} hidden units"
    return "compare the sizes you gave this layer with the docstring"


def _check_layers(feedback: Feedback, block: nn.Module, reference: nn.Module, case) -> bool:
    """The student's parameters have the reference's names and shapes."""
    ours = {k: tuple(v.shape) for k, v in block.state_dict().items()}
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    missing = sorted({k.split(".")[0] for k in expected} - {k.split(".")[0] for k in ours})
    if missing:
        found = sorted({k.split(".")[0] for k in ours})
        return feedback.fail(
            f"the block has no layer named {', '.join(missing)} (it has: "
            f"{', '.join(found) or 'no parameters'}): name the layers {', '.join(LAYERS)} as "
            "in the docstring, so the checker can give them the reference weights."
        )
    for key, got in ours.items():
        if key in expected and got != expected[key]:
            return feedback.fail(
                f"{key} has shape {got}, expected {expected[key]}: {_shape_hint(key, got, case)}."
            )
    extra = sorted(set(ours) - set(expected))
    missing_keys = sorted(set(expected) - set(ours))
    if extra or missing_keys:
        return feedback.fail(
            f"the layers do not match the reference: unexpected parameters {extra}, missing "
            f"{missing_keys}; a Mixer block has exactly two LayerNorms and two Mlps."
        )
    return feedback.ok(
        f"layers {', '.join(LAYERS)} with the right sizes for dim={case[2]}, num_tokens={case[1]}"
    )


def _give_reference_weights(block: nn.Module, reference: nn.Module) -> None:
    block.load_state_dict(reference.state_dict())
    block.eval()
    for name in ("norm1", "norm2"):  # accept any eps: it is a detail, not the idea
        theirs = getattr(block, name)
        if isinstance(theirs, nn.LayerNorm):
            getattr(reference, name).eps = theirs.eps


def _switched_off(block: nn.Module, *layers: str) -> nn.Module:
    """A copy of `block` whose listed MLPs output exactly 0 (last layer's weights zeroed)."""
    block = copy.deepcopy(block)
    with torch.no_grad():
        for layer in layers:
            for parameter in getattr(block, layer).fc2.parameters():
                parameter.zero_()
    return block


def _forward_hint(error: BaseException) -> str | None:
    text = str(error)
    if isinstance(error, RuntimeError) and "normalized_shape" in text:
        return (
            "A LayerNorm was given a table whose last axis is not the channels: in a Mixer, "
            "LayerNorm normalises each token over its channels"
        )
    if isinstance(error, RuntimeError) and "cannot be multiplied" in text:
        return (
            "An MLP was given vectors of the wrong length: nn.Linear acts on the last axis, "
            "which must hold the tokens for mlp_tokens and the channels for mlp_channels"
        )
    return None


def _check_residuals(feedback: Feedback, block, reference, x, out) -> bool:
    """Switch the MLPs off and see what the block returns (`out`: its output with them on)."""
    outputs = {}
    for layers in [("mlp_tokens", "mlp_channels"), ("mlp_channels",), ("mlp_tokens",)]:
        ok, switched_off = feedback.call(
            "the block with " + " and ".join(layers) + " switched off",
            _switched_off(block, *layers),
            x.clone(),
            hint=_forward_hint,
        )
        what = "the block with " + " and ".join(layers) + " switched off"
        if not ok or not check_output(feedback, what, switched_off, x):
            return False
        with torch.no_grad():
            outputs[layers] = (switched_off.detach(), _switched_off(reference, *layers)(x))
    student, _ = outputs[("mlp_tokens", "mlp_channels")]
    if close(student, x):
        return feedback.ok(
            "with both MLPs switched off the block returns its input: both branches are residual"
        )
    student, expected = outputs[("mlp_channels",)]
    if close(student, expected - x):
        return feedback.fail(
            "with the channel MLP switched off, the block returns the token-mixing output "
            "without the block's input: the residual connection around token mixing is missing."
        )
    student, expected = outputs[("mlp_tokens",)]
    if close(student, expected - x):
        return feedback.fail(
            "with the token MLP switched off, the block returns the channel-mixing output "
            "without its input: the residual connection around channel mixing is missing."
        )
    student, _ = outputs[("mlp_tokens", "mlp_channels")]
    if close(student, torch.zeros_like(x)):
        return feedback.fail(
            "with both MLPs switched off (their outputs are 0) the block returns 0 instead of "
            "its input: the input is never added back, both residual connections are missing."
        )
    hint = _matching_mistake(out, reference, x)
    return feedback.fail(
        f"with both MLPs switched off the block changes its input: {hint}."
        if hint is not None
        else "with both MLPs switched off the block should return its input unchanged, but it "
        "changes it: something outside the two branches acts on x, e.g. a residual that adds "
        "the normalised table instead of the block's input, or a LayerNorm on the main path."
    )


def _mistakes(block: ReferenceBlock, x: torch.Tensor):
    """The block computed in typical wrong ways, with the reference's weights, and their hints."""
    channels, norm1, norm2 = block.mlp_channels, block.norm1, block.norm2

    def tokens(y):  # the token-mixing MLP reads the tokens last: (B, N, C) -> (B, C, N) and back
        return block.mlp_tokens(y.transpose(1, 2)).transpose(1, 2)

    def sequential(token_branch, channel_branch):
        y = x + token_branch(x)
        return y + channel_branch(y)

    yield (
        lambda: sequential(lambda y: norm1(tokens(y)), lambda y: norm2(channels(y))),
        "each LayerNorm is applied to an MLP's output (post-norm); in a Mixer it normalises "
        "the MLP's input, at the start of each branch (pre-norm)",
    )
    yield (
        lambda: sequential(tokens, channels),
        "neither LayerNorm is used: each MLP should read a normalised copy of the table",
    )
    yield (
        lambda: sequential(tokens, lambda y: channels(norm2(y))),
        "norm1 is not used: the token-mixing MLP should read the normalised table",
    )
    yield (
        lambda: sequential(lambda y: tokens(norm1(y)), channels),
        "norm2 is not used: the channel-mixing MLP should read the normalised table",
    )
    yield (
        lambda: x + tokens(norm1(x)) + channels(norm2(x)),
        "the channel-mixing branch reads the block's input instead of the result of token "
        "mixing: the two branches run one after the other, not side by side",
    )
    yield (
        lambda: (lambda y: y + tokens(norm1(y)))(x + channels(norm2(x))),
        "channel mixing runs before token mixing; a Mixer block mixes the tokens first",
    )
    yield (
        lambda: sequential(lambda y: tokens(norm1(y)), lambda y: channels(norm1(y))),
        "both branches use norm1; each branch has its own LayerNorm (norm2 for channel mixing)",
    )
    yield (
        lambda: sequential(lambda y: tokens(norm2(y)), lambda y: channels(norm2(y))),
        "both branches use norm2; each branch has its own LayerNorm (norm1 for token mixing)",
    )


def _matching_mistake(out: torch.Tensor, reference: ReferenceBlock, x: torch.Tensor) -> str | None:
    """The hint of the typical mistake whose output equals `out`, if any."""
    with torch.no_grad():
        for compute, hint in _mistakes(reference, x):
            if close(out, compute()):
                return hint
    return None


ACTIVATION_MISTAKES = [
    (
        partial(nn.GELU, approximate="tanh"),
        "the MLPs use GELU's tanh approximation (approximate='tanh'); the Mixer's MLPs use the "
        "exact GELU, x * Phi(x) with the normal distribution's cdf: mixer_edu.Mlp's default",
    ),
    (nn.ReLU, "the MLPs use ReLU between their two layers; the Mixer's MLPs use GELU"),
    (nn.SiLU, "the MLPs use SiLU (swish) between their two layers; the Mixer's MLPs use GELU"),
    (
        nn.Identity,
        "the MLPs have no non-linearity between their two layers, so each is a single linear "
        "map; the Mixer's MLPs apply GELU to the hidden layer",
    ),
]


def _with_activation(block: ReferenceBlock, make_activation) -> ReferenceBlock:
    block = copy.deepcopy(block)
    block.mlp_tokens.act = make_activation()
    block.mlp_channels.act = make_activation()
    return block


def _matching_activation(out: torch.Tensor, reference: ReferenceBlock, x: torch.Tensor):
    with torch.no_grad():
        for make_activation, hint in ACTIVATION_MISTAKES:
            if close(out, _with_activation(reference, make_activation)(x)):
                return hint
    return None


def _wrong_branch(block: nn.Module, reference: ReferenceBlock, x: torch.Tensor) -> str | None:
    """Which branch differs from the reference, found by switching the other one off."""
    verdicts = {}
    for branch, other in (("token-mixing", "mlp_channels"), ("channel-mixing", "mlp_tokens")):
        outcome = run_student_code(_switched_off(block, other), x.clone())
        with torch.no_grad():
            expected = _switched_off(reference, other)(x)
        verdicts[branch] = (
            outcome.ok
            and isinstance(outcome.value, torch.Tensor)
            and close(outcome.value.detach(), expected)
        )
    if verdicts["token-mixing"] and not verdicts["channel-mixing"]:
        return "channel-mixing"
    if verdicts["channel-mixing"] and not verdicts["token-mixing"]:
        return "token-mixing"
    return None


def _diagnose(out, block: nn.Module, reference: ReferenceBlock, x: torch.Tensor) -> str:
    hint = _matching_mistake(out, reference, x) or _matching_activation(out, reference, x)
    if hint is not None:
        return hint
    with torch.no_grad():
        difference, where = max_difference(out, reference(x))
    found = (
        f"the output differs from the reference block's (largest difference {difference:.3g} "
        f"at sample {where[0]}, token {where[1]}, channel {where[2]})"
    )
    branch = _wrong_branch(block, reference, x)
    if branch is not None:
        other = "channel-mixing" if branch == "token-mixing" else "token-mixing"
        return (
            f"{found}. With the {other} MLP switched off your block matches the reference, so "
            f"the difference is in the {branch} branch: check its LayerNorm, its MLP (and the "
            "MLP's activation) and the axis it mixes"
        )
    return f"{found}, in both branches: check each branch's LayerNorm, MLP and activation"


def _check_gradients(feedback: Feedback, block: nn.Module, x: torch.Tensor) -> bool:
    block = copy.deepcopy(block).train()
    return check_gradients(
        feedback,
        "the block in train mode",
        lambda: block(x.clone()),
        dict(block.named_parameters()),
        "gradients reach every layer, so the whole block can learn",
        group=lambda name: name.split(".")[0],
    )


def check_mixer_block(block_class) -> bool:
    """Check a student's `MixerBlock(dim, num_tokens, tokens_hidden, channels_hidden)` class.

    Builds it for several sizes (including num_tokens == dim), checks the layer names and sizes,
    tests both residual connections by switching the MLPs off, compares the output with
    `mixer_edu.MixerBlock` given the same random weights, and checks that every layer gets a
    gradient. Prints one line per check; returns True if all pass.
    """
    feedback = Feedback("Mixer block")
    with isolated():
        for index, case in enumerate(CASES):
            b, n, c, tokens_hidden, channels_hidden = case
            arguments = f"dim={c}, num_tokens={n}, tokens_hidden={tokens_hidden}, " + (
                f"channels_hidden={channels_hidden}"
            )
            ok, block = feedback.call(
                f"MixerBlock({arguments})", block_class, c, n, tokens_hidden, channels_hidden
            )
            if not ok:
                return feedback.stop()
            if not isinstance(block, nn.Module):
                feedback.fail(f"MixerBlock(...) made {shape(block)}, not an nn.Module.")
                return feedback.stop()
            reference = _reference_block(case)
            if index == 0 and not _check_layers(feedback, block, reference, case):
                return feedback.stop()
            try:
                _give_reference_weights(block, reference)
            except Exception as error:  # e.g. sizes right in case 0 only
                feedback.fail(f"MixerBlock({arguments}): its layers have the wrong sizes ({error})")
                return feedback.stop()

            x = torch.randn(b, n, c)
            label = f"x {(b, n, c)}"
            with torch.no_grad():
                expected = reference(x)  # before the student's code runs
            ok, out = call_and_check(
                feedback,
                f"the block on {label}",
                block,
                x,
                expected=expected,
                inputs={"x": x},
                modules={"block (its own layers)": block},
                hint=_forward_hint,
                shape_hint=lambda out: (
                    "a Mixer block keeps the table's shape (check that every transpose is undone)"
                ),
            )
            if not ok:
                return feedback.stop()
            if index == 0 and not _check_residuals(feedback, block, reference, x, out.detach()):
                return feedback.stop()
            diagnose = partial(_diagnose, block=block, reference=reference, x=x)
            passed = f"{label} -> {shape(out)}, equal to mixer_edu.MixerBlock"
            if not check_values(feedback, label, out, expected, diagnose, passed):
                return feedback.stop()
        if not _check_gradients(feedback, block, x):
            return feedback.stop()
    return feedback.done()
