"""Each exercise checker accepts correct code and rejects typical wrong answers with the right hint.

Every wrong answer below is a mistake students make; each test asserts that the checker returns
False *and* that its feedback names that mistake (the hint), so a checker that rejects for the
wrong reason fails here too.
"""

import math

import pytest
import torch
from einops import rearrange
from timm.layers import DropPath as TimmDropPath
from torch import nn

from mixer_edu import DropPath as PackageDropPath
from mixer_edu import Mlp, mix_tokens, patchify, weights
from mixer_edu.exercises import (
    check_drop_path,
    check_mixer_block,
    check_patchify,
    check_picture_answers,
    check_smoothed_cross_entropy,
    check_smoothing_predictions,
    check_token_mixing,
)
from mixer_edu.exercises import token_mixing_picture as picture
from mixer_edu.exercises.label_smoothing import (
    confidence_ceiling,
    mean_confidence,
    smallest_loss,
    smoothed_targets,
)
from tests.exercise_feedback import assert_accepted, assert_rejected, run

# --- Exercise 1: patchify -------------------------------------------------------------------


def patchify_by_hand(images, patch_size):
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p)  # (b, c, h, p1, w, p2)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (b, h, w, p1, p2, c)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def patchify_with(pattern):
    def wrong(images, patch_size):
        return rearrange(images, f"b c (h p1) (w p2) -> {pattern}", p1=patch_size, p2=patch_size)

    return wrong


def patchify_unfold(images, patch_size):
    # nn.functional.unfold gives (B, C*P*P, N): channel-first patches
    patches = nn.functional.unfold(images, patch_size, stride=patch_size)
    return patches.transpose(1, 2)


def patchify_square_only(images, patch_size):
    b, c, h, _ = images.shape
    n = (h // patch_size) ** 2
    return patchify(images, patch_size).reshape(b, n, -1)


def patchify_plain_reshape(images, patch_size):
    b, _, h, w = images.shape
    return images.reshape(b, (h // patch_size) * (w // patch_size), -1)


def patchify_strips(images, patch_size):
    b, _, h, w = images.shape
    return images.permute(0, 2, 3, 1).reshape(b, (h // patch_size) * (w // patch_size), -1)


def patchify_stub(images, patch_size):
    raise NotImplementedError("Exercise: write patchify")


@pytest.mark.parametrize("answer", [patchify, patchify_by_hand], ids=["package", "by_hand"])
def test_patchify_checker_accepts_correct_answers(answer, capsys):
    out = assert_accepted(check_patchify, answer, 7, capsys)
    assert out.count("✓") == 7


@pytest.mark.parametrize(
    "answer, hint",
    [
        (patchify_with("b (h w) (c p1 p2)"), "unrolled channel by channel"),
        (patchify_unfold, "unrolled channel by channel"),
        (patchify_with("b (h w) (p2 p1 c)"), "pixels are read column by column"),
        (patchify_with("b (h w) (c p2 p1)"), "channel first and column by column"),
        (patchify_with("b (w h) (p1 p2 c)"), "patches are numbered column by column"),
        (patchify_with("b (w h) (c p1 p2)"), "two orders differ from the stem's"),
        (patchify_plain_reshape, "a plain reshape (or view)"),
        (patchify_strips, "(a strip)"),
        (patchify_with("b (p1 p2 c) (h w)"), "the last two axes are swapped"),
        (patchify_with("b h w (p1 p2 c)"), "it has 4 axes"),
        (patchify_with("(b h w) (p1 p2 c)"), "the batch and patch axes are merged"),
        (patchify_square_only, "split the wrong way"),
        (lambda images, p: patchify(images, p) * 2, "patchify only moves pixels"),
        (lambda images, p: patchify(images.flip(0), p), "holds the pixel (image 1,"),
        (lambda images, p: patchify(images, p)[:, :, :-1], "the images hold"),
        (lambda images, p: patchify(images, p).numpy(), "not a torch.Tensor"),
        (lambda images, p: None, "returned a NoneType"),
        (lambda images, p: patchify(images, p + 1), "raised ValueError"),
        (patchify_stub, "not written yet"),
    ],
)
def test_patchify_checker_rejects_typical_mistakes_with_the_right_hint(answer, hint, capsys):
    assert_rejected(check_patchify, answer, hint, capsys)


def test_patchify_checker_names_the_expected_shape(capsys):
    _, out = run(check_patchify, patchify_with("b (p1 p2 c) (h w)"), capsys)
    assert "output shape (2, 48, 4), expected (2, 4, 48)" in out


def test_checkers_leave_the_random_state_and_thread_count_alone(capsys):
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_token_mixing(lambda mlp, x: mlp(x.transpose(1, 2)).transpose(1, 2))
    check_drop_path(PackageDropPath)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


# --- Exercise 2: token mixing ---------------------------------------------------------------


def mixing_by_transpose(mlp, x):
    return mlp(x.transpose(1, 2)).transpose(1, 2)


def mixing_by_einsum(mlp, x):
    hidden = torch.einsum("sn,bnc->bsc", mlp.fc1.weight, x) + mlp.fc1.bias[:, None]
    hidden = mlp.act(hidden)
    return torch.einsum("ns,bsc->bnc", mlp.fc2.weight, hidden) + mlp.fc2.bias[:, None]


def mixing_by_package_kernel(mlp, x):  # gMLP's `mix_tokens` (a baddbmm), on the student's Mlp
    return mix_tokens(mlp.fc2, mlp.act(mix_tokens(mlp.fc1, x)))


def mixing_with_reshape(mlp, x):
    b, n, c = x.shape
    return mlp(x.reshape(b, c, n)).reshape(b, n, c)


def mixing_across_samples(mlp, x):
    b, n, c = x.shape
    turned = x.permute(2, 0, 1).reshape(b, c, n)  # (C, B, N) read as (B, C, N)
    return mlp(turned).transpose(1, 2)


def mixing_no_grad(mlp, x):
    with torch.no_grad():
        return mixing_by_transpose(mlp, x)


@pytest.mark.parametrize(
    "answer",
    [
        mixing_by_transpose,
        mixing_by_einsum,
        mixing_by_package_kernel,
    ],
    ids=["transpose", "einsum", "package"],
)
def test_token_mixing_checker_accepts_correct_answers(answer, capsys):
    assert_accepted(check_token_mixing, answer, 5, capsys)


@pytest.mark.parametrize(
    "answer, hint",
    [
        (lambda mlp, x: mlp(x), "so the MLP would mix channels, not tokens"),
        (lambda mlp, x: mlp(x.transpose(1, 2)), "never turned back"),
        (lambda mlp, x: mlp(x.transpose(0, 2)).transpose(0, 2), "a transpose moved the batch"),
        (mixing_with_reshape, "reinterpreted (reshape or view) instead of turned"),
        (mixing_across_samples, "samples in a batch must stay independent"),
        (lambda mlp, x: x + mixing_by_transpose(mlp, x), "belongs to the Mixer block"),
        (lambda mlp, x: mlp.fc1(x.transpose(1, 2)).transpose(1, 2), "the hidden size D_S=8"),
        (lambda mlp, x: 2 * mixing_by_transpose(mlp, x), "depends on the right numbers"),
        (lambda mlp, x: mixing_by_transpose(mlp, x).detach(), "has no gradient"),
        (mixing_no_grad, "has no gradient"),
        (lambda mlp, x: mixing_by_transpose(mlp, x).tolist(), "not a torch.Tensor"),
    ],
)
def test_token_mixing_checker_rejects_typical_mistakes_with_the_right_hint(answer, hint, capsys):
    assert_rejected(check_token_mixing, answer, hint, capsys)


def test_token_mixing_checker_catches_mixing_channels_when_n_equals_c(capsys):
    """Mixing the last axis only runs when N == C; the checker must then spot it by its values."""

    def mixes_channels_when_it_can(mlp, x):
        if x.shape[1] == x.shape[2]:
            return mlp(x)
        return mixing_by_transpose(mlp, x)

    assert_rejected(
        check_token_mixing, mixes_channels_when_it_can, "mixes along the channel axis", capsys
    )


# --- Exercise 3: the Mixer block ------------------------------------------------------------


class Block(nn.Module):
    """A correct block; the wrong ones below change one thing each."""

    def __init__(self, dim, num_tokens, tokens_hidden, channels_hidden, eps=1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.mlp_tokens = Mlp(num_tokens, tokens_hidden)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp_channels = Mlp(dim, channels_hidden)

    def tokens(self, x):
        return self.mlp_tokens(x.transpose(1, 2)).transpose(1, 2)

    def forward(self, x):
        x = x + self.tokens(self.norm1(x))
        return x + self.mlp_channels(self.norm2(x))


class DefaultEpsBlock(Block):
    def __init__(self, dim, num_tokens, tokens_hidden, channels_hidden):
        super().__init__(dim, num_tokens, tokens_hidden, channels_hidden, eps=1e-5)


def block_with(forward):
    return type("WrongBlock", (Block,), {"forward": forward})


class RenamedBlock(nn.Module):
    def __init__(self, dim, num_tokens, tokens_hidden, channels_hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mlp = Mlp(num_tokens, tokens_hidden)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp_channels = Mlp(dim, channels_hidden)


def block_built_with(**layers):
    def __init__(self, dim, num_tokens, tokens_hidden, channels_hidden):
        Block.__init__(self, dim, num_tokens, tokens_hidden, channels_hidden)
        sizes = dict(dim=dim, num_tokens=num_tokens, d_s=tokens_hidden, d_c=channels_hidden)
        for name, make in layers.items():
            setattr(self, name, make(**sizes))

    return type("WrongBlock", (Block,), {"__init__": __init__})


class FixedSizeBlock(Block):
    def __init__(self, dim, num_tokens, tokens_hidden, channels_hidden):
        super().__init__(8, 16, 4, 32)  # ignores its arguments


class InPlaceBlock(Block):
    def forward(self, x):
        x += self.tokens(self.norm1(x))
        x += self.mlp_channels(self.norm2(x))
        return x


class DetachedTokensBlock(Block):
    def forward(self, x):
        x = x + self.tokens(self.norm1(x)).detach()
        return x + self.mlp_channels(self.norm2(x))


def test_mixer_block_checker_accepts_correct_blocks_with_any_layer_norm_eps(capsys):
    for answer in (Block, DefaultEpsBlock):
        assert_accepted(check_mixer_block, answer, 6, capsys)


@pytest.mark.parametrize(
    "answer, hint",
    [
        (
            block_with(lambda s, x: (y := s.tokens(s.norm1(x))) + s.mlp_channels(s.norm2(y))),
            "the residual connection around token mixing is missing",
        ),
        (
            block_with(lambda s, x: s.mlp_channels(s.norm2(x + s.tokens(s.norm1(x))))),
            "the residual connection around channel mixing is missing",
        ),
        (
            block_with(lambda s, x: s.mlp_channels(s.norm2(s.tokens(s.norm1(x))))),
            "both residual connections are missing",
        ),
        (
            block_with(lambda s, x: (y := x + s.norm1(s.tokens(x))) + s.norm2(s.mlp_channels(y))),
            "(post-norm)",
        ),
        (
            block_with(lambda s, x: (y := s.norm1(x)) + s.tokens(y)),
            "a residual that adds the normalised table",
        ),
        (
            block_with(lambda s, x: (y := x + s.tokens(x)) + s.mlp_channels(y)),
            "neither LayerNorm is used",
        ),
        (
            block_with(lambda s, x: (y := x + s.tokens(x)) + s.mlp_channels(s.norm2(y))),
            "norm1 is not used",
        ),
        (
            block_with(lambda s, x: (y := x + s.tokens(s.norm1(x))) + s.mlp_channels(y)),
            "norm2 is not used",
        ),
        (
            block_with(lambda s, x: x + s.tokens(s.norm1(x)) + s.mlp_channels(s.norm2(x))),
            "not side by side",
        ),
        (
            block_with(lambda s, x: (y := x + s.mlp_channels(s.norm2(x))) + s.tokens(s.norm1(y))),
            "channel mixing runs before token mixing",
        ),
        (
            block_with(lambda s, x: (y := x + s.tokens(s.norm1(x))) + s.mlp_channels(s.norm1(y))),
            "both branches use norm1",
        ),
        (
            block_with(lambda s, x: (y := x + s.mlp_tokens(s.norm1(x))) + s.mlp_channels(y)),
            "nn.Linear acts on the last axis",
        ),
        (
            block_with(lambda s, x: x + s.mlp_tokens(s.norm1(x.transpose(1, 2))).transpose(1, 2)),
            "A LayerNorm was given a table whose last axis is not the channels",
        ),
        (
            block_with(lambda s, x: x + 0.5 * s.tokens(s.norm1(x))),
            "the output differs from the reference block's (largest difference",
        ),
        (RenamedBlock, "the block has no layer named mlp_tokens"),
        (
            block_built_with(mlp_tokens=lambda dim, d_s, **_: Mlp(dim, d_s)),
            "mlp_tokens reads 8 numbers (dim, the channels of one token)",
        ),
        (
            block_built_with(mlp_channels=lambda num_tokens, d_c, **_: Mlp(num_tokens, d_c)),
            "mlp_channels reads 16 numbers (num_tokens, the tokens)",
        ),
        (
            block_built_with(norm1=lambda num_tokens, **_: nn.LayerNorm(num_tokens)),
            "norm1 normalises over 16 numbers",
        ),
        (
            block_built_with(mlp_tokens=lambda num_tokens, d_c, **_: Mlp(num_tokens, d_c)),
            "mlp_tokens should have tokens_hidden=4 hidden units",
        ),
        (
            block_built_with(extra=lambda dim, **_: nn.Linear(dim, dim)),
            "unexpected parameters ['extra.bias', 'extra.weight']",
        ),
        (FixedSizeBlock, "its layers have the wrong sizes"),
        (InPlaceBlock, "changed its input x in place"),
        (DetachedTokensBlock, "no gradient reaches norm1, mlp_tokens: something"),
        (block_with(lambda s, x: None), "not a torch.Tensor"),
        (lambda *sizes: "not a module", "not an nn.Module"),
    ],
)
def test_mixer_block_checker_rejects_typical_mistakes_with_the_right_hint(answer, hint, capsys):
    assert_rejected(check_mixer_block, answer, hint, capsys)


def test_mixer_block_checker_reports_an_unwritten_block(capsys):
    class Stub(nn.Module):
        def __init__(self, dim, num_tokens, tokens_hidden, channels_hidden):
            super().__init__()
            raise NotImplementedError("Exercise: write MixerBlock.__init__")

    assert_rejected(check_mixer_block, Stub, "not written yet", capsys)


# --- Exercise 4: DropPath -------------------------------------------------------------------


def drop_path_module(make_output, eval_output=None):
    """A DropPath class whose train-mode forward is `make_output(x, drop_prob)`."""

    def forward(self, x):
        if not self.training:
            return x if eval_output is None else eval_output(x, self.drop_prob)
        return make_output(x, self.drop_prob)

    def __init__(self, drop_prob):
        nn.Module.__init__(self)
        self.drop_prob = drop_prob

    return type("StudentDropPath", (nn.Module,), {"__init__": __init__, "forward": forward})


def per_sample_mask(x, keep_prob):
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    return (torch.rand(shape) < keep_prob).to(x.dtype)


def correct(x, p):
    return x * per_sample_mask(x, 1 - p) / (1 - p)


def fixed_mask(x, p):
    generator = torch.Generator().manual_seed(0)
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    return x * (torch.rand(shape, generator=generator) < 1 - p) / (1 - p)


def in_place(x, p):
    return x.mul_(per_sample_mask(x, 1 - p)).div_(1 - p)


def mask_per_token(x, p):
    return x * (torch.rand(x.shape[:2] + (1,) * (x.ndim - 2)) < 1 - p) / (1 - p)


def one_coin_per_batch(x, p):
    return x * (torch.rand(()) < 1 - p) / (1 - p)


def fixed_3d_mask(x, p):
    return x * (torch.rand(x.shape[0], 1, 1) < 1 - p) / (1 - p)


def breaks_at_zero(x, p):
    if p == 0:
        return torch.zeros_like(x)
    return correct(x, p)


@pytest.mark.parametrize(
    "answer",
    [PackageDropPath, TimmDropPath, drop_path_module(correct)],
    ids=["package", "timm", "rand_below_keep"],
)
def test_drop_path_checker_accepts_correct_answers(answer, capsys):
    assert_accepted(check_drop_path, answer, 10, capsys)


@pytest.mark.parametrize(
    "answer, hint",
    [
        (drop_path_module(lambda x, p: x * per_sample_mask(x, 1 - p)), "not rescaled"),
        (
            drop_path_module(lambda x, p: x * per_sample_mask(x, 1 - p) * (1 - p)),
            "multiplied by keep_prob",
        ),
        (drop_path_module(lambda x, p: x * per_sample_mask(x, 1 - p) / p), "1/drop_prob = 4"),
        (
            drop_path_module(lambda x, p: x * per_sample_mask(x, 1 - p) / (1 - p) ** 0.5),
            "the kept samples are scaled by 1.155",
        ),
        (
            drop_path_module(lambda x, p: x * per_sample_mask(x, 1 - p) * torch.rand_like(x)),
            "not a fixed multiple of the input",
        ),
        (
            drop_path_module(lambda x, p: x * (torch.rand_like(x) < 1 - p) / (1 - p)),
            "single numbers are zeroed inside a sample",
        ),
        (drop_path_module(mask_per_token), "the mask varies along axis 1"),
        (drop_path_module(lambda x, p: x * per_sample_mask(x, p) / p), "that is keep_prob"),
        (drop_path_module(lambda x, p: x), "no sample was dropped"),
        (drop_path_module(lambda x, p: x * per_sample_mask(x, 0.5) / 0.5), "50% of the samples"),
        (drop_path_module(one_coin_per_batch), "the whole batch is dropped or kept together"),
        (drop_path_module(fixed_mask), "the same samples are dropped on every call"),
        (drop_path_module(in_place), "changed its input x in place"),
        (drop_path_module(fixed_3d_mask), "however many there are"),
        (drop_path_module(correct, eval_output=correct), "still active in eval mode"),
        (drop_path_module(correct, eval_output=lambda x, p: x * (1 - p)), "scale at test time"),
        (drop_path_module(breaks_at_zero), "with drop_prob = 0 nothing may be dropped"),
        (drop_path_module(lambda x, p: x.numpy()), "not a torch.Tensor"),
        (drop_path_module(lambda x, p: x[:, :1]), "(4000, 1, 6), expected (4000, 4, 6)"),
        (drop_path_module(lambda x, p: undefined_name), "raised NameError"),  # noqa: F821
    ],
)
def test_drop_path_checker_rejects_typical_mistakes_with_the_right_hint(answer, hint, capsys):
    assert_rejected(check_drop_path, answer, hint, capsys)


def test_checkers_give_the_same_feedback_every_time(capsys):
    wrong = drop_path_module(lambda x, p: x * per_sample_mask(x, 0.5) / 0.5)
    first = run(check_drop_path, wrong, capsys)
    torch.manual_seed(5)
    assert run(check_drop_path, wrong, capsys) == first


# --- Exercise 5: label smoothing ------------------------------------------------------------


def smoothed_loss(logits, labels, smoothing, reduce=torch.mean):
    k = logits.shape[1]
    targets = (1 - smoothing) * nn.functional.one_hot(labels, k) + smoothing / k
    return reduce(-(targets * logits.log_softmax(dim=1)).sum(dim=1))


def smoothed_loss_as_a_mixture(logits, labels, smoothing):
    """(1 - ε) CE + ε (mean over classes of -log p): the same loss, written differently."""
    plain = nn.functional.cross_entropy(logits, labels)
    uniform = -logits.log_softmax(dim=1).mean(dim=1).mean()
    return (1 - smoothing) * plain + smoothing * uniform


def with_targets(make_targets, log_probabilities=lambda z: z.log_softmax(dim=1)):
    def loss(logits, labels, smoothing):
        one_hot = nn.functional.one_hot(labels, logits.shape[1]).float()
        targets = make_targets(one_hot, smoothing, logits.shape[1])
        return -(targets * log_probabilities(logits)).sum(dim=1).mean()

    return loss


def smoothed(one_hot, e, k):
    return (1 - e) * one_hot + e / k


@pytest.mark.parametrize(
    "answer",
    [
        smoothed_loss,
        smoothed_loss_as_a_mixture,
        lambda z, y, e: nn.functional.cross_entropy(z, y, label_smoothing=e),
    ],
    ids=["targets", "mixture", "torch"],
)
def test_label_smoothing_checker_accepts_correct_answers(answer, capsys):
    assert_accepted(check_smoothed_cross_entropy, answer, 7, capsys)


@pytest.mark.parametrize(
    "answer, hint",
    [
        (lambda z, y, e: nn.functional.cross_entropy(z, y), "the smoothing is ignored"),
        (
            with_targets(lambda oh, e, k: (1 - e) * oh + e / (k - 1) * (1 - oh)),
            "spread over the K - 1 wrong classes only",
        ),
        (with_targets(lambda oh, e, k: oh + e / k), "the targets sum to 1 + ε"),
        (lambda z, y, e: smoothed_loss(z, y, e, torch.sum), "the losses of the samples are summed"),
        (
            with_targets(smoothed, lambda z: z.softmax(dim=1)),
            "the targets are multiplied by probabilities",
        ),
        (with_targets(smoothed, lambda z: z), "multiplied by the raw logits"),
        (lambda z, y, e: -smoothed_loss(z, y, e), "the sign is flipped"),
        (
            with_targets(smoothed, lambda z: z.softmax(dim=1).log()),
            "softmax underflows to exactly 0",
        ),
        (lambda z, y, e: smoothed_loss(z, y, e, lambda x: x), "one loss per sample"),
        (lambda z, y, e: smoothed_loss(z, y, 2 * e), "PyTorch's label-smoothed cross-entropy"),
        (lambda z, y, e: smoothed_loss(z, y, e).item(), "not a torch.Tensor"),
        (lambda z, y, e: smoothed_loss(z, y, e).detach(), "the result has no gradient"),
    ],
)
def test_label_smoothing_checker_rejects_typical_mistakes_with_the_right_hint(answer, hint, capsys):
    assert_rejected(check_smoothed_cross_entropy, answer, hint, capsys)


def test_smallest_smoothed_loss_is_the_entropy_of_the_target_and_torch_agrees():
    # 0.91 on the true class, 0.01 on each of the 9 others
    expected = -(0.91 * math.log(0.91) + 9 * 0.01 * math.log(0.01))
    assert smallest_loss(10, 0.1) == pytest.approx(expected, rel=1e-6)
    best_logits = smoothed_targets(torch.tensor([3]), 10, 0.1).log()  # p = q exactly
    torch_loss = nn.functional.cross_entropy(best_logits, torch.tensor([3]), label_smoothing=0.1)
    assert torch_loss.item() == pytest.approx(expected, rel=1e-5)
    assert confidence_ceiling(10, 0.1) == pytest.approx(0.91)


MEASURED_WITHOUT = {"confidence": 0.80, "train_loss": 0.70}
MEASURED_WITH = {"confidence": 0.60, "train_loss": 1.10}


def test_prediction_checker_accepts_predictions_that_match_the_measurements(capsys):
    predictions = {"confidence": "lower", "train_loss": "higher"}
    verdict, out = run(
        lambda p: check_smoothing_predictions(p, MEASURED_WITHOUT, MEASURED_WITH),
        predictions,
        capsys,
    )
    assert verdict is True, out
    assert "confidence: lower with label smoothing, as you predicted" in out


@pytest.mark.parametrize(
    "predictions, hint",
    [
        (
            {"confidence": "higher", "train_loss": "higher"},
            "you predicted higher, but the mean confidence",
        ),
        ({"confidence": "lower", "train_loss": "lower"}, "cannot go below the entropy"),
        ({"confidence": "down", "train_loss": "higher"}, "predict 'lower' or 'higher'"),
        ({"confidence": "lower"}, "must be a dict with the keys"),
        ("lower", "must be a dict with the keys"),
    ],
)
def test_prediction_checker_rejects_wrong_predictions_with_the_reason(predictions, hint, capsys):
    assert_rejected(
        lambda p: check_smoothing_predictions(p, MEASURED_WITHOUT, MEASURED_WITH),
        predictions,
        hint,
        capsys,
    )


def test_prediction_checker_refuses_a_direction_the_runs_do_not_show(capsys):
    barely = {"confidence": 0.798, "train_loss": 1.10}
    assert_rejected(
        lambda p: check_smoothing_predictions(p, MEASURED_WITHOUT, barely),
        {"confidence": "lower", "train_loss": "higher"},
        "too little to tell a direction",
        capsys,
    )


def test_mean_confidence_is_the_mean_largest_probability():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # probabilities 1/2 and 3/4
    assert mean_confidence(logits) == pytest.approx(0.625)


# --- Exercise 6: reading a token-mixing picture ---------------------------------------------


def unit(kind):
    return picture.KINDS.index(kind)


RIGHT_ANSWERS = {
    "smoothest_unit": unit("smooth"),
    "opposite_pair": (unit("stripes -"), unit("stripes +")),
    "local_unit": unit("local"),
    "local_unit_tokens": 9,
    "random_unit": unit("random"),
    "channels_per_picture": 32,
}


def test_quiz_model_has_the_constructed_units_the_questions_are_about():
    units = weights.token_mixing_units(picture.quiz_model(), 0)
    assert units.shape == (8, 8, 8)
    frequency = weights.spatial_frequency(units)
    assert int(frequency.argmin()) == unit("smooth")
    assert int(frequency.argmax()) == unit("fine")
    pairs, _ = weights.pair_opposite_phase(units)
    assert [set(pair) for pair in pairs] == [{unit("stripes +"), unit("stripes -")}]
    reads = (units != 0).flatten(1).sum(dim=1)
    assert reads[unit("local")] == 9 and reads[unit("single")] == 1


def test_picture_checker_accepts_the_right_answers_in_any_pair_order(capsys):
    for pair in (RIGHT_ANSWERS["opposite_pair"], RIGHT_ANSWERS["opposite_pair"][::-1]):
        assert_accepted(check_picture_answers, {**RIGHT_ANSWERS, "opposite_pair": pair}, 6, capsys)


@pytest.mark.parametrize(
    "key, value, hint",
    [
        ("smoothest_unit", unit("fine"), "flips sign from one column to the next"),
        ("smoothest_unit", unit("diagonal"), "changes most slowly"),
        ("smoothest_unit", 8, "must be a unit number from 0 to 7"),
        ("opposite_pair", (unit("stripes +"), unit("smooth")), "are not opposites"),
        ("opposite_pair", (1, 1), "two different unit numbers"),
        ("opposite_pair", 3, "two different unit numbers"),
        ("local_unit", unit("single"), "it reads 1 token."),
        ("local_unit_tokens", 3, "3 is the side of the neighbourhood"),
        ("local_unit_tokens", 8, "that are not white"),
        ("random_unit", unit("fine"), "a clear pattern"),
        ("channels_per_picture", 64, "64 is the number of tokens"),
        ("channels_per_picture", 8, "8 is the number of hidden units"),
        ("channels_per_picture", 1, "the model's embed_dim says"),
    ],
)
def test_picture_checker_explains_each_wrong_answer(key, value, hint, capsys):
    assert_rejected(check_picture_answers, {**RIGHT_ANSWERS, key: value}, hint, capsys)


def test_picture_checker_asks_for_missing_answers(capsys):
    answers = dict(RIGHT_ANSWERS)
    del answers["random_unit"]
    assert_rejected(check_picture_answers, answers, "missing answers: random_unit", capsys)
    assert_rejected(check_picture_answers, None, "must be a dict", capsys)
