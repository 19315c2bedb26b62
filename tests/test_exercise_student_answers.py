"""Answers students write, run through the checkers: right verdicts, no crash, a hint that names it.

Each kind of answer that once fooled a checker or got a generic hint (issue 31) has its test here:
an answer that passes the first case and fails a later one (the explanation must not crash), code
that changes the caller's modules (their mode, their parameters), a copy that shares storage with
the original, inputs other than float32, a DropPath that drops a fixed count, and mistakes inside
a Mixer block or its stem, located part by part. `PLAUSIBLE` below collects the wrong answers
students write, and `test_most_plausible_wrong_answers_get_a_specific_hint` counts how many get a
hint that names the mistake rather than a generic one.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from mixer_edu.exercises import (
    check_causal_token_mixing,
    check_drop_path,
    check_mixer_block,
    check_mixer_model,
    check_patchify,
    check_smoothed_cross_entropy,
    check_spatial_gating,
    check_token_mixing,
    check_vit_twin,
)
from tests.exercise_feedback import assert_accepted, assert_rejected, run
from tests.test_exercise_checkers import drop_path_module
from tests.test_exercise_model_twin import CHECKS_9, student_mixer

# --- Exercise 9: the capstone Mixer of the student's parts, one slip at a time ------------


class DividesBySixteen(student_mixer()):
    """Sums the tokens and divides by 16, the first case's token count."""

    def forward(self, images):
        return self.head(self.norm(self.features(images)).sum(dim=1) / 16)


class NormBeforeTheBlocks(student_mixer()):
    def forward(self, images):
        return self.head(self.blocks(self.norm(self.stem(images))).mean(dim=1))


class FirstBlockAgain(student_mixer()):
    def forward(self, images):
        x = self.stem(images)
        for _ in range(len(self.blocks)):
            x = self.blocks[0](x)
        return self.head(self.norm(x).mean(dim=1))


class SwitchesToTrainMode(student_mixer()):
    def forward(self, images):
        self.train()  # "the model should be ready to learn"
        return super().forward(images)


class SwitchesToEvalMode(student_mixer()):
    def forward(self, images):
        self.eval()
        return super().forward(images)


class SwitchesOffGradients(student_mixer()):
    def forward(self, images):
        self.requires_grad_(False)
        return super().forward(images)


def test_a_correct_mixer_of_the_students_parts_is_accepted(capsys):
    assert_accepted(check_mixer_model, student_mixer(), CHECKS_9, capsys)


EXERCISE_9 = [
    (student_mixer(patch="b (h w) (p2 p1 c)"), "unrolled column by column inside each patch"),
    (student_mixer(stem="conv no transpose"), "channels first, (B, C, N)"),
    (student_mixer(stem="conv reshape"), "flattened or reshaped without being turned"),
    (student_mixer(stem="conv no bias"), "the stem's bias is missing"),
    (student_mixer(token="reshape"), "mlp_tokens is applied along the last axis"),
    (student_mixer(token="no GELU"), "(mlp_tokens) has no GELU"),
    (student_mixer(channel="no norm"), "without its LayerNorm (norm2)"),
    (student_mixer(channel="no fc2 bias"), "leaves out the bias of its second layer (fc2)"),
    (
        student_mixer(channel="no norm", only_block=1),
        "the output of block 1 differs from the reference's: the channel-mixing MLP reads",
    ),
    (
        student_mixer(token="no residual", only_block=2),
        "in block 2, the table after token mixing differs from the reference's: the residual",
    ),
    (DividesBySixteen, "divided by 16, but this model has N = 9 tokens"),
    (NormBeforeTheBlocks, "model.norm is applied to the stem's tokens, before the blocks"),
    (FirstBlockAgain, "the first block runs again and again"),
    (SwitchesToTrainMode, "switched the model to training mode"),
    (SwitchesToEvalMode, "switched the model to evaluation mode"),
    (SwitchesOffGradients, "switched requires_grad off for model.stem.proj.weight"),
]


@pytest.mark.parametrize(("answer", "hint"), EXERCISE_9)
def test_mixer_model_mistakes_inside_a_block_or_the_stem_are_named(answer, hint, capsys):
    out = assert_rejected(check_mixer_model, answer, hint, capsys)
    assert "compare your parts' outputs" not in out


# --- Exercise 10: the ViT twin: a copy of its own, hints that keep the indexing back ----------


def rearranged(twin, shuffle):
    """The right rearrangement of `twin`'s stem and position embedding, in place."""
    with torch.no_grad():
        weight = twin.stem.proj.weight
        weight.copy_(weight.flatten(2)[:, :, shuffle.pixel_order].reshape(weight.shape))
        twin.position_embedding.copy_(twin.position_embedding[:, shuffle.patch_order])
    return twin


def shares_the_blocks(vit, shuffle):
    twin = rearranged(copy.deepcopy(vit), shuffle)
    twin.blocks, twin.norm, twin.head = vit.blocks, vit.norm, vit.head  # "only copy what changes"
    return twin


def without_no_grad(vit, shuffle):
    twin = copy.deepcopy(vit)
    weight = twin.stem.proj.weight
    weight[:] = weight.flatten(2)[:, :, shuffle.pixel_order].reshape(weight.shape)
    twin.position_embedding[:] = twin.position_embedding[:, shuffle.patch_order]
    return twin


def switches_the_vit_to_train_mode(vit, shuffle):
    vit.train()
    return rearranged(copy.deepcopy(vit), shuffle).eval()


def frozen_position_embedding(vit, shuffle):
    twin = rearranged(copy.deepcopy(vit), shuffle)
    twin.position_embedding = torch.nn.Parameter(twin.position_embedding, requires_grad=False)
    return twin


def twin_with(stem=None, positions=None):
    """A twin whose stem filters and position embedding are rearranged by the given functions."""

    def vit_twin(vit, shuffle):
        twin = copy.deepcopy(vit)
        with torch.no_grad():
            weight = twin.stem.proj.weight
            if stem is not None:
                weight.copy_(stem(weight, shuffle))
            else:
                weight.copy_(weight.flatten(2)[:, :, shuffle.pixel_order].reshape(weight.shape))
            embedding = twin.position_embedding
            if positions is not None:
                embedding.copy_(positions(embedding, shuffle))
            else:
                embedding.copy_(embedding[:, shuffle.patch_order])
        return twin

    return vit_twin


def shallow_copy(vit, shuffle):
    twin = copy.copy(vit)
    weight = twin.stem.proj.weight.detach()
    twin.stem.proj.weight = torch.nn.Parameter(
        weight.flatten(2)[:, :, shuffle.pixel_order].reshape(weight.shape)
    )
    embedding = twin.position_embedding.detach()
    twin.position_embedding = torch.nn.Parameter(embedding[:, shuffle.patch_order])
    return twin


EXERCISE_10 = [
    (shallow_copy, "the twin is a shallow copy"),
    (shares_the_blocks, "shares its memory with the original's"),
    (without_no_grad, "inside a torch.no_grad() block"),
    (switches_the_vit_to_train_mode, "switched the vit to training mode"),
    (frozen_position_embedding, "position_embedding does not require grad"),
    (
        twin_with(positions=lambda e, s: e[:, :, s.patch_order]),
        "the channels of the position embedding were reordered",
    ),
    (
        twin_with(positions=lambda e, s: e[:, s.pixel_order]),
        "rearranged with the pixels' order",
    ),
    (
        twin_with(stem=lambda w, s: w.flatten(2)[:, :, s.patch_order].reshape(w.shape)),
        "rearranged with the patches' order",
    ),
    (
        twin_with(
            stem=lambda w, s: (
                w.transpose(2, 3).flatten(2)[:, :, s.pixel_order].reshape(w.shape).transpose(2, 3)
            )
        ),
        "numbered column by column",
    ),
]

# What the old hints gave away: the code of the solution.
GIVEAWAYS = ["index its token axis", "flatten the P x P", "index with the order", "deepcopy"]


@pytest.mark.parametrize(("answer", "hint"), EXERCISE_10)
def test_vit_twin_copies_and_rearrangements_are_checked(answer, hint, capsys):
    out = assert_rejected(check_vit_twin, answer, hint, capsys)
    assert "compute a new tensor instead" not in out


@pytest.mark.parametrize(
    "answer",
    [
        twin_with(stem=lambda w, s: w),
        twin_with(positions=lambda e, s: e),
        twin_with(
            stem=lambda w, s: w.flatten(2)[:, :, torch.argsort(s.pixel_order)].reshape(w.shape)
        ),
        twin_with(positions=lambda e, s: e[:, torch.argsort(s.patch_order)]),
        twin_with(positions=lambda e, s: e.flip(1)),
        twin_with(stem=lambda w, s: w.flip(3)),
        lambda vit, shuffle: vit,
    ],
)
def test_vit_twin_hints_do_not_give_the_indexing_away(answer, capsys):
    _, out = run(check_vit_twin, answer, capsys)
    assert "✗" in out
    assert not [text for text in GIVEAWAYS if text in out], out


def test_a_twin_made_as_a_new_model_with_loaded_weights_is_accepted(capsys):
    from mixer_edu.baselines import SmallViT

    def rebuilt(vit, shuffle):
        twin = SmallViT(
            img_size=vit.stem.img_size, patch_size=vit.stem.patch_size, embed_dim=16, depth=2
        )
        twin.load_state_dict(vit.state_dict())
        return rearranged(twin, shuffle).eval()

    assert_accepted(check_vit_twin, rebuilt, 2, capsys)


# --- Inputs other than float32, and small batches -------------------------------------------


def patchify_into_zeros(images, patch_size):
    """Fills a table made with torch.zeros (float32 whatever the images' dtype)."""
    b, c, h, w = images.shape
    p = patch_size
    out = torch.zeros(b, (h // p) * (w // p), p * p * c)
    out[:] = rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=p, p2=p)
    return out


def patchify_in_float(images, patch_size):
    images = images.float()  # "to be safe"
    return rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_size, p2=patch_size)


def patchify_by_unfold(images, patch_size):
    """Correct, unusual: F.unfold gives (c p1 p2) per patch; reorder to (p1 p2 c)."""
    b, c = images.shape[:2]
    p = patch_size
    patches = F.unfold(images, p, stride=p).transpose(1, 2)  # (B, N, C*P*P)
    return patches.reshape(b, -1, c, p * p).transpose(2, 3).flatten(2)


def test_patchify_by_unfold_is_accepted_although_unfold_has_no_uint8_kernel(capsys):
    assert_accepted(check_patchify, patchify_by_unfold, 7, capsys)


def keeps(x, p):  # a mask made in float32
    mask = (torch.rand((x.shape[0],) + (1,) * (x.ndim - 1)) < 1 - p).float()
    return x * mask / (1 - p)


def fixed_count(x, p):
    """Drops exactly round(p * B) samples: none from a batch of 1 or 2."""
    b = x.shape[0]
    mask = torch.ones(b, dtype=x.dtype)
    mask[torch.randperm(b)[: round(p * b)]] = 0
    return x * mask.view((b,) + (1,) * (x.ndim - 1)) / (1 - p)


def mask_of_one_axis(x, p):
    return x * (torch.rand(x.shape[0]) < 1 - p)[:, None] / (1 - p)  # right for (B, C) only


def bias_on_channels(mlp, x):
    hidden = torch.einsum("sn,bnc->bsc", mlp.fc1.weight, x) + mlp.fc1.bias
    return torch.einsum("ns,bsc->bnc", mlp.fc2.weight, mlp.act(hidden)) + mlp.fc2.bias[:, None]


DTYPES_AND_BATCHES = [
    (check_patchify, patchify_into_zeros, "dtype torch.float32, expected torch.uint8"),
    (check_patchify, patchify_in_float, "patchify only moves pixels, so its result keeps"),
    (check_drop_path, drop_path_module(keeps), "dtype torch.float32, expected torch.bfloat16"),
    (check_drop_path, drop_path_module(fixed_count), "on batches of 1 and 2 samples, 0%"),
]


@pytest.mark.parametrize(("checker", "answer", "hint"), DTYPES_AND_BATCHES)
def test_other_dtypes_and_small_batches_are_tried(checker, answer, hint, capsys):
    assert_rejected(checker, answer, hint, capsys)


# --- Caller's modules: modes and parameters ------------------------------------------------


def mixing(mlp, x):
    return mlp(x.transpose(1, 2)).transpose(1, 2)


def evaluates(mlp, x):
    mlp.eval()  # "no dropout while mixing"
    return mixing(mlp, x)


def in_double(mlp, x):
    return mixing(mlp.double(), x.double()).float()


def replaces_the_bias(unit, x):
    unit.proj.bias = torch.nn.Parameter(unit.proj.bias.detach().clone())
    return unit(x)


CALLERS_MODULES = [
    (check_token_mixing, evaluates, "switched the MLP to evaluation mode"),
    (check_token_mixing, in_double, "converted MLP.fc1.weight from torch.float32"),
    (check_spatial_gating, replaces_the_bias, "replaced the parameter unit.proj.bias"),
    (check_causal_token_mixing, evaluates, "switched the MLP to evaluation mode"),
]


@pytest.mark.parametrize(("checker", "answer", "hint"), CALLERS_MODULES)
def test_code_that_changes_the_callers_module_is_rejected(checker, answer, hint, capsys):
    assert_rejected(checker, answer, hint, capsys)


# --- Broadcasting in the exercise's terms, and no crash while explaining -------------------


def log_softmax_without_keepdim(logits, labels, smoothing):
    k = logits.shape[1]
    log_p = logits - torch.logsumexp(logits, dim=1)  # (B, K) - (B,)
    q = (1 - smoothing) * F.one_hot(labels, k) + smoothing / k
    return -(q * log_p).sum(dim=1).mean()


def one_hot_without_classes(logits, labels, smoothing):
    k = logits.shape[1]
    q = (1 - smoothing) * F.one_hot(labels) + smoothing / k
    return -(q * logits.log_softmax(dim=1)).sum(dim=1).mean()


def picks_columns(logits, labels, smoothing):
    log_p = logits.log_softmax(dim=1)
    return -(1 - smoothing) * log_p[:, labels].mean() - smoothing * log_p.mean(dim=1).mean()


def gate_bias_on_channels(unit, x):
    z1, z2 = x.chunk(2, dim=-1)
    gate = torch.einsum("ij,bjc->bic", unit.proj.weight, unit.norm(z2)) + unit.proj.bias
    return z1 * gate


def causal_bias_on_channels(mlp, x):
    lower = torch.ones(x.shape[1], x.shape[1]).tril()
    hidden = mlp.act(torch.einsum("kn,bnc->bkc", mlp.fc1.weight * lower, x) + mlp.fc1.bias)
    return torch.einsum("tk,bkc->btc", mlp.fc2.weight * lower, hidden) + mlp.fc2.bias


def causal_mask_of_channels(mlp, x):
    mask = torch.ones(x.shape[2], x.shape[2]).tril()  # C x C instead of N x N
    hidden = mlp.act(torch.einsum("kn,bnc->bkc", mlp.fc1.weight * mask, x) + mlp.fc1.bias[:, None])
    return torch.einsum("tk,bkc->btc", mlp.fc2.weight * mask, hidden) + mlp.fc2.bias[:, None]


BROADCASTING = [
    (check_drop_path, drop_path_module(mask_of_one_axis), "size 1 on every other axis"),
    (check_token_mixing, bias_on_channels, "one value per hidden unit (8)"),
    (check_smoothed_cross_entropy, log_softmax_without_keepdim, "a class axis of size 1, (B, 1)"),
    (check_smoothed_cross_entropy, one_hot_without_classes, "the one-hot targets need K columns"),
    (check_smoothed_cross_entropy, picks_columns, "a (B, B) table"),
    (check_spatial_gating, gate_bias_on_channels, "a per-token value needs a trailing axis"),
    (check_causal_token_mixing, causal_bias_on_channels, "unless it gets a trailing axis"),
    (check_causal_token_mixing, causal_mask_of_channels, "the masks are position by position"),
]


@pytest.mark.parametrize(("checker", "answer", "hint"), BROADCASTING)
def test_broadcasting_mistakes_are_explained_in_the_exercises_terms(checker, answer, hint, capsys):
    out = assert_rejected(checker, answer, hint, capsys)
    assert "size of tensor a" not in out.split("raised RuntimeError: ")[-1].split(". ", 1)[-1]


def test_a_bias_added_along_the_channels_is_named_where_it_runs_without_error(capsys):
    def only_when_it_runs(unit, x):
        if x.shape[1] == x.shape[2] // 2:
            return gate_bias_on_channels(unit, x)
        return unit(x)

    assert_rejected(
        check_spatial_gating, only_when_it_runs, "bias was added along the last", capsys
    )

    def causal_only_when_it_runs(mlp, x):
        if x.shape[1] == x.shape[2]:
            return causal_bias_on_channels(mlp, x)
        return masked(mlp, x)

    assert_rejected(
        check_causal_token_mixing, causal_only_when_it_runs, "biases were added along", capsys
    )


def masked(mlp, x):
    lower = torch.ones(x.shape[1], x.shape[1]).tril()
    hidden = mlp.act(torch.einsum("kn,bnc->bkc", mlp.fc1.weight * lower, x) + mlp.fc1.bias[:, None])
    return torch.einsum("tk,bkc->btc", mlp.fc2.weight * lower, hidden) + mlp.fc2.bias[:, None]


# --- How many plausible wrong answers get a hint that names the mistake ---------------------

# Lines that say only that something differs, not what: the fall-backs of each checker.
GENERIC = [
    "compare your parts' outputs",
    "follow the three steps",
    "mask both weights, then apply the whole MLP",
    "apply the whole given MLP",
    "in both branches: check",
    "compare your target q",
    "is not the original's with",
    "the output differs from the reference (largest difference",
    "is the first table that differs",
]


def plausible_wrong_answers():
    """(checker, answer) for every wrong answer in this file's tables."""
    answers = [(check_mixer_model, answer) for answer, _ in EXERCISE_9]
    answers += [(check_vit_twin, answer) for answer, _ in EXERCISE_10]
    for table in (DTYPES_AND_BATCHES, CALLERS_MODULES, BROADCASTING):
        answers += [(checker, answer) for checker, answer, _ in table]
    return answers


def test_most_plausible_wrong_answers_get_a_specific_hint(capsys):
    specific, generic = 0, []
    for checker, answer in plausible_wrong_answers():
        verdict, out = run(checker, answer, capsys)
        assert verdict is False, out
        failed = [line for line in out.splitlines() if line.startswith("✗")]
        if any(text in failed[0] for text in GENERIC):
            generic.append(failed[0])
        else:
            specific += 1
    assert specific >= 2 * (specific + len(generic)) / 3, generic
    assert not generic, generic  # today every one of them is named


def test_a_block_whose_output_changes_form_when_its_mlps_are_off_gets_a_verdict(capsys):
    from tests.test_exercise_checkers import Block

    class ListWhenSilent(Block):
        def forward(self, x):
            out = super().forward(x)
            return out.tolist() if not self.mlp_tokens.fc2.weight.any() else out

    assert_rejected(check_mixer_block, ListWhenSilent, "not a torch.Tensor", capsys)
