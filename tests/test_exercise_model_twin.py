"""Exercises 9 and 10: the capstone Mixer and the ViT twin, right and wrong answers."""

import copy

import pytest
import timm
import torch
from einops import rearrange
from torch import nn

import mixer_edu
from mixer_edu.exercises import check_mixer_model, check_vit_twin
from mixer_edu.exercises.mixer_model import timm_weights_for
from mixer_edu.mlp import Mlp
from mixer_edu.patching import conv_to_linear
from tests.exercise_feedback import assert_accepted, assert_rejected

# --- Exercise 9: the capstone, a Mixer of the student's own parts ------------------------------

CHECKS_9 = 6  # three sizes against timm, DropPath in train mode, gradients, training


def student_mixer(
    patch="b (h w) (p1 p2 c)",
    stem="linear",
    token="",
    channel="",
    only_block=None,
    final="",
    pool="mean",
    drop="",
    container="sequential",
    tokens_hidden="half",
):
    """A student's capstone `Mixer` class, made of exercise-1-4-style parts, with named slips."""

    class DropPath(nn.Module):
        def __init__(self, drop_prob):
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x):
            if drop == "never" or self.drop_prob == 0.0:
                return x
            if not self.training and drop != "in eval":
                return x
            keep_prob = 1.0 - self.drop_prob
            keep = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype) < keep_prob
            return x * keep / keep_prob

    class Stem(nn.Module):
        def __init__(self, patch_size, embed_dim):
            super().__init__()
            self.patch_size = patch_size
            if stem.startswith("conv"):
                self.proj = nn.Conv2d(3, embed_dim, patch_size, stride=patch_size)
            else:
                self.proj = nn.Linear(patch_size * patch_size * 3, embed_dim)

        def forward(self, images):
            if stem.startswith("conv"):
                y = self.proj(images) if stem != "conv no bias" else nn.functional.conv2d(
                    images, self.proj.weight, stride=self.proj.stride)  # fmt: skip
                b, c = y.shape[:2]
                return {
                    "conv": lambda: y.flatten(2).transpose(1, 2),
                    "conv no bias": lambda: y.flatten(2).transpose(1, 2),
                    "conv no transpose": lambda: y.flatten(2),
                    "conv reshape": lambda: y.reshape(b, -1, c),
                }[stem]()
            p = self.patch_size
            tokens = self.proj(rearrange(images, f"b c (h p1) (w p2) -> {patch}", p1=p, p2=p))
            return tokens.detach() if stem == "detach" else tokens

    def mlp(layer, h, slip):
        if slip == "no GELU":
            return layer.fc2(layer.fc1(h))
        if slip == "no fc2 bias":
            return layer.act(layer.fc1(h)) @ layer.fc2.weight.T
        return layer(h)

    class Block(nn.Module):
        def __init__(self, dim, num_tokens, drop_path_rate, index):
            super().__init__()
            self.norm1 = nn.LayerNorm(dim, eps=1e-6)
            self.mlp_tokens = Mlp(num_tokens, num_tokens if tokens_hidden == "N" else dim // 2)
            self.norm2 = nn.LayerNorm(dim, eps=1e-6)
            self.mlp_channels = Mlp(dim, 4 * dim)
            self.drop_path = DropPath(drop_path_rate)
            here = only_block is None or index == only_block
            self.token, self.channel = (token, channel) if here else ("", "")

        def forward(self, x):
            h = x if self.token == "no norm" else self.norm1(x)
            if self.token == "no transpose":
                mixed = self.mlp_tokens(h)
            elif self.token == "reshape":
                b, n, c = h.shape
                mixed = self.mlp_tokens(h.reshape(b, c, n)).reshape(b, n, c)
            else:
                mixed = mlp(self.mlp_tokens, h.transpose(1, 2), self.token).transpose(1, 2)
            mixed = mixed if drop == "around block" else self.drop_path(mixed)
            x = mixed if self.token == "no residual" else x + mixed
            h = x if self.channel == "no norm" else self.norm2(x)
            mixed = mlp(self.mlp_channels, h, self.channel)
            if drop == "around block":  # the whole block dropped: its input too
                return self.drop_path(x + mixed)
            mixed = self.drop_path(mixed)
            return mixed if self.channel == "no residual" else x + mixed

    class Mixer(nn.Module):
        def __init__(self, img_size, patch_size, num_blocks, embed_dim, num_classes,
                     drop_path_rate=0.0):  # fmt: skip
            super().__init__()
            n = (img_size // patch_size) ** 2
            rate = 0.0 if drop == "rate not passed" else drop_path_rate
            blocks = [Block(embed_dim, n, rate, i) for i in range(num_blocks)]
            self.stem = Stem(patch_size, embed_dim)
            self.blocks = blocks if container == "list" else nn.Sequential(*blocks)
            self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
            self.head = nn.Linear(embed_dim, num_classes)

        def features(self, images):
            x = self.stem(images)
            for block in self.blocks:
                x = block(x)
            return x

        def forward(self, images):
            x = self.features(images)
            if final == "after pool":
                return self.head(self.norm(x.mean(dim=1)))
            y = x if final == "no norm" else self.norm(x)
            pooled = {"mean": lambda: y.mean(dim=1), "channels": lambda: y.mean(dim=2),
                      "max": lambda: y.amax(dim=1), "first": lambda: y[:, 0],
                      "sum": lambda: y.sum(dim=1), "none": lambda: y}[pool]()  # fmt: skip
            return self.head(pooled)

    return Mixer


class HeadThenPool(student_mixer()):
    def forward(self, images):  # the head is linear: it commutes with the mean
        return self.head(self.norm(self.features(images))).mean(dim=1)


@pytest.mark.parametrize(
    "answer",
    [student_mixer(), student_mixer(stem="conv"), HeadThenPool, mixer_edu.MlpMixer],
    ids=["linear-stem", "conv-stem", "head-then-pool", "package"],
)
def test_mixer_model_checker_accepts_correct_models(answer, capsys):
    assert_accepted(check_mixer_model, answer, CHECKS_9, capsys)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (student_mixer(patch="b (h w) (c p1 p2)"), "the stem's patches are unrolled channel first"),
        (student_mixer(patch="b (w h) (p1 p2 c)"), "numbers the patches column by column"),
        (student_mixer(token="no residual"), "the residual around token mixing is missing"),
        (student_mixer(token="no transpose"), "mlp_tokens is applied along the last axis"),
        (student_mixer(token="no norm"), "without its LayerNorm (norm1)"),
        (student_mixer(channel="no residual"), "the residual around channel mixing is missing"),
        (student_mixer(final="no norm"), "the final LayerNorm (model.norm) is missing"),
        (student_mixer(final="after pool"), "model.norm is applied after pooling"),
        (student_mixer(pool="channels"), "averages over the channels"),
        (student_mixer(pool="max"), "takes the maximum over the tokens"),
        (student_mixer(pool="sum"), "sums the tokens"),
        (student_mixer(pool="first"), "reads the first token only"),
        (student_mixer(pool="none"), "one row of logits per token"),
        (student_mixer(drop="in eval"), "the logits change from call to call in eval mode"),
        (student_mixer(drop="never"), "DropPath never drops"),
        (student_mixer(drop="rate not passed"), "DropPath never drops"),
        (student_mixer(drop="around block"), "it drops the residual stream itself"),
        (student_mixer(container="list"), "a Python list hides its layers"),
        (student_mixer(tokens_hidden="N"), "mlp_tokens reads the N tokens and has C/2 hidden"),
        (student_mixer(stem="detach"), "no gradient reaches the stem"),
    ],
    ids=[
        "patch-c-first", "patch-columns", "no-token-residual", "no-transpose", "no-norm1",
        "no-channel-residual", "no-final-norm", "norm-after-pool", "pool-channels", "max-pool",
        "sum-pool", "first-token", "no-pool", "droppath-in-eval", "droppath-never",
        "rate-not-passed", "around-block", "python-list", "token-width-N", "detach",
    ],
)  # fmt: skip
def test_mixer_model_checker_names_the_part_that_is_wrong(answer, hint, capsys):
    assert_rejected(check_mixer_model, answer, hint, capsys)


class Unwritten(nn.Module):
    def __init__(self, img_size, patch_size, num_blocks, embed_dim, num_classes, drop_path_rate):
        super().__init__()
        raise NotImplementedError()


class FixedTokenCount(student_mixer()):
    """Right on the first two sizes (N = 16), wrong on the third (N = 9): built for 16 tokens."""

    def __init__(self, img_size, patch_size, *args, **kwargs):
        super().__init__(4 * patch_size, patch_size, *args, **kwargs)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (Unwritten, "not written yet"),
        (lambda **config: None, "returned a NoneType, not an nn.Module"),
        (FixedTokenCount, "mlp_tokens reads the N tokens"),
    ],
    ids=["unwritten", "returns-none", "fixed-token-count"],
)
def test_mixer_model_checker_explains_a_model_it_cannot_compare(answer, hint, capsys):
    assert_rejected(check_mixer_model, answer, hint, capsys)


def test_the_checker_loads_timms_stem_the_way_conv_to_linear_unrolls_it():
    config = dict(img_size=16, patch_size=4, num_blocks=1, embed_dim=8, num_classes=3)
    reference = timm.models.mlp_mixer.MlpMixer(**config)
    weights = timm_weights_for(student_mixer()(**config), reference)
    assert torch.equal(weights["stem.proj.weight"], conv_to_linear(reference.stem.proj).weight)
    assert torch.equal(  # a convolution stem gets timm's filters as they are
        timm_weights_for(student_mixer(stem="conv")(**config), reference)["stem.proj.weight"],
        reference.stem.proj.weight,
    )


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
