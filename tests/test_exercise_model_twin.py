"""Exercises 9 and 10: the whole Mixer and the ViT twin, right and wrong answers."""

import copy

import pytest
import torch

from mixer_edu.exercises import check_mixer_forward, check_vit_twin
from tests.exercise_feedback import assert_accepted, assert_rejected

# --- Exercise 9: the whole Mixer ---------------------------------------------------------------


def forward(pool=lambda x: x.mean(dim=1), norm_first=True, blocks=lambda b: b, detach=False):
    def mixer_forward(model, images):
        x = model.stem(images)
        x = x.detach() if detach else x
        for block in blocks(list(model.blocks)):
            x = block(x)
        return model.head(pool(model.norm(x)) if norm_first else model.norm(pool(x)))

    return mixer_forward


def head_then_pool(model, images):
    x = model.stem(images)
    for block in model.blocks:
        x = block(x)
    return model.head(model.norm(x)).mean(dim=1)  # the head is linear: it commutes with the mean


@pytest.mark.parametrize(
    "answer",
    [forward(), head_then_pool, lambda model, images: model(images)],
    ids=["by-hand", "head-then-pool", "package"],
)
def test_mixer_forward_checker_accepts_correct_answers(answer, capsys):
    assert_accepted(check_mixer_forward, answer, 4, capsys)


def without_final_norm(model, images):
    x = model.stem(images)
    for block in model.blocks:
        x = block(x)
    return model.head(x.mean(dim=1))


def no_pooling(model, images):
    x = model.stem(images)
    for block in model.blocks:
        x = block(x)
    return model.head(model.norm(x))


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (without_final_norm, "the final LayerNorm (model.norm) is missing"),
        (forward(norm_first=False), "model.norm is applied after pooling"),
        (forward(pool=lambda x: x.mean(dim=2)), "averages over the channels"),
        (forward(pool=lambda x: x.amax(dim=1)), "takes the maximum over the tokens"),
        (forward(pool=lambda x: x.sum(dim=1)), "sums the tokens"),
        (forward(pool=lambda x: x[:, 0]), "reads the first token only"),
        (forward(blocks=lambda b: b[:1]), "only the first block runs"),
        (forward(blocks=lambda b: b[-1:]), "only the last block runs"),
        (forward(blocks=lambda b: b[::-1]), "the blocks run in reverse order"),
        (lambda m, i: forward()(m, i).softmax(dim=-1), "the output is probabilities"),
        (no_pooling, "one row of logits per token"),
        (forward(detach=True), "no gradient reaches the stem"),
    ],
    ids=[
        "no-final-norm", "norm-after-pool", "pool-channels", "max-pool", "sum-pool",
        "first-token", "first-block", "last-block", "reversed", "softmax", "no-pool", "detach",
    ],
)  # fmt: skip
def test_mixer_forward_checker_names_each_mistake(answer, hint, capsys):
    assert_rejected(check_mixer_forward, answer, hint, capsys)


# --- Exercise 10: the ViT twin -----------------------------------------------------------------


def twin(stem="order", positions="order", in_place=False, also=None):
    def vit_twin(vit, shuffle):
        result = vit if in_place else copy.deepcopy(vit)
        orders = {"order": lambda o: o, "inverse": torch.argsort, "none": None}
        with torch.no_grad():
            if orders[stem] is not None:
                weight = result.stem.proj.weight
                pixels = orders[stem](shuffle.pixel_order)
                weight.copy_(weight.flatten(2)[:, :, pixels].reshape(weight.shape))
            if orders[positions] is not None:
                embedding = result.position_embedding
                embedding.copy_(embedding[:, orders[positions](shuffle.patch_order)])
            if also is not None:
                also(result)
        return result

    return vit_twin


def test_vit_twin_checker_accepts_the_rearranged_copy(capsys):
    assert_accepted(check_vit_twin, twin(), 2, capsys)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (twin(stem="none"), "the stem's filters are unchanged"),
        (twin(positions="none"), "the position embedding is unchanged"),
        (twin(stem="inverse"), "the stem's filters are rearranged the inverse way"),
        (twin(positions="inverse"), "the position embedding is rearranged the inverse way"),
        (twin(in_place=True), "changed the weights of the vit it was given"),
        (lambda vit, shuffle: vit, "returned the vit it was given"),
        (twin(also=lambda m: m.head.bias.add_(1.0)), "leave every other weight"),
    ],
    ids=["stem-unmoved", "positions-unmoved", "stem-inverse", "positions-inverse", "in-place",
         "same-object", "head-changed"],
)  # fmt: skip
def test_vit_twin_checker_names_each_mistake(answer, hint, capsys):
    assert_rejected(check_vit_twin, answer, hint, capsys)
