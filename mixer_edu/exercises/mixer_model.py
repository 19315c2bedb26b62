"""Checker for exercise 9: the whole Mixer, from images to logits, matching timm's.

The student writes `mixer_forward(model, images)` with the parts of a given
`mixer_edu.MlpMixer`, `(B, 3, H, W) -> (B, classes)`:

    x = model.stem(images)          (B, N, C): one token per patch
    x = block(x) for each block     (B, N, C), in order
    x = model.norm(x)               (B, N, C): the final LayerNorm, over each token's channels
    x = x.mean(dim=1)               (B, C): global average pooling over the N tokens
    logits = model.head(x)          (B, classes)

The checker loads the model's weights (random, so nothing hides behind zeros) into timm's
`MlpMixer` and compares the student's logits with timm's, on three model sizes. One of them has
as many tokens as channels (N == C), where pooling over the wrong axis still gives the right
shape and must be caught by its values. A wrong answer is recomputed in the typical wrong ways
(no final LayerNorm, the LayerNorm after pooling, max or sum pooling, one token instead of the
mean, blocks skipped or reversed, probabilities instead of logits) and the matching one named.
"""

from __future__ import annotations

import timm
import torch

from ..mixer import MlpMixer
from .checks import call_and_check, check_gradients, frozen_copy
from .feedback import Feedback, close, isolated, max_difference, randomize_, shape

# (batch, image size, patch size, blocks, channels C, classes). The first case has N == C
# (16 patches, 16 channels), so pooling over the channels runs and must be caught by its values;
# in the others it raises a shape error, which the checker explains.
CASES = [
    (3, 16, 4, 3, 16, 7),
    (2, 32, 8, 2, 24, 10),
    (1, 24, 8, 1, 12, 5),
]


def _config(case: tuple) -> dict:
    _, size, patch, blocks, channels, classes = case
    return dict(
        img_size=size, patch_size=patch, num_blocks=blocks, embed_dim=channels, num_classes=classes
    )


def _mistakes(model: MlpMixer, images: torch.Tensor):
    """The forward pass computed in typical wrong ways, and their hints."""
    blocks = list(model.blocks)

    def through(order):
        x = model.stem(images)
        for block in order:
            x = block(x)
        return x

    tokens = through(blocks)
    normed = model.norm(tokens)
    yield (
        lambda: model.head(tokens.mean(dim=1)),
        "the final LayerNorm (model.norm) is missing: normalise the tokens after the last block",
    )
    yield (
        lambda: model.head(model.norm(tokens.mean(dim=1))),
        "model.norm is applied after pooling; the Mixer normalises every token, then averages",
    )
    yield (
        lambda: model.head(normed.mean(dim=2)),
        "the pooling averages over the channels (the last axis); the Mixer averages over the N "
        "tokens (dim=1), so that one C-vector per image reaches the head",
    )
    yield (
        lambda: model.head(normed.amax(dim=1)),
        "the pooling takes the maximum over the tokens; the Mixer takes their mean",
    )
    yield (
        lambda: model.head(normed.sum(dim=1)),
        "the pooling sums the tokens; the Mixer averages them (divide by N)",
    )
    yield (
        lambda: model.head(normed[:, 0]),
        "the head reads the first token only (ViT's class token); the Mixer has no class token "
        "and averages all N tokens",
    )
    if len(blocks) > 1:
        yield (
            lambda: model.head(model.norm(through(blocks[:1])).mean(dim=1)),
            "only the first block runs: apply every block of model.blocks, one after the other",
        )
        yield (
            lambda: model.head(model.norm(through(blocks[-1:])).mean(dim=1)),
            "only the last block runs: apply every block of model.blocks, one after the other",
        )
        yield (
            lambda: model.head(model.norm(through(blocks[::-1])).mean(dim=1)),
            "the blocks run in reverse order; apply model.blocks from first to last",
        )
    yield (
        lambda: model.head(normed.mean(dim=1)).softmax(dim=-1),
        "the output is probabilities (a softmax); the model returns logits, and the loss "
        "(cross-entropy) applies the softmax itself",
    )


def _diagnose(out: torch.Tensor, model: MlpMixer, images: torch.Tensor, expected) -> str:
    with torch.no_grad():
        for compute, hint in _mistakes(model, images):
            mistaken = compute()
            if mistaken.shape == out.shape and close(out, mistaken):
                return hint
    difference, where = max_difference(out, expected)
    return (
        f"the logits differ from timm's (largest difference {difference:.3g} at image "
        f"{where[0]}, class {where[1]}): follow the five steps of the docstring one at a time"
    )


def _shape_hint(out: torch.Tensor, case: tuple) -> str:
    b, size, patch, _, channels, classes = case
    tokens = (size // patch) ** 2
    if out.shape == (b, tokens, classes):
        return "there is one row of logits per token: average the tokens (pooling) before the head"
    if out.shape == (b, channels) or out.shape == (b, tokens, channels):
        return "the head is missing: model.head maps the pooled C channels to the classes"
    return "the model returns one row of logits per image, (B, classes)"


def _exception_hint(error: BaseException) -> str | None:
    text = str(error)
    if "images are" in text or "expected 4D" in text or "Expected 3D" in text:
        return "model.stem takes the images (B, 3, H, W) and returns the tokens (B, N, C)"
    if isinstance(error, RuntimeError) and "cannot be multiplied" in text:
        return (
            "a layer was given vectors of the wrong length: the blocks and model.norm read "
            "(B, N, C) tokens, model.head one pooled C-vector per image"
        )
    return None


def _part(name: str) -> str:
    """'blocks.1.norm1.weight' -> 'block 1', 'stem.proj.weight' -> 'the stem', ..."""
    layer = name.split(".")
    return f"block {layer[1]}" if layer[0] == "blocks" else f"the {layer[0]}"


def check_mixer_forward(mixer_forward) -> bool:
    """Check a student's `mixer_forward(model, images)`, `(B, 3, H, W) -> (B, classes)`.

    Builds Mixers of three sizes (including N == C) with random weights, compares the logits with
    timm's `MlpMixer` given the same weights, checks that neither the images nor the weights
    change, and that every part of the model gets a gradient. Prints one line per check; returns
    True if all pass.
    """
    feedback = Feedback("Mixer forward pass")
    with isolated():
        for case in CASES:
            b, size, *_ = case
            config = _config(case)
            model = randomize_(MlpMixer(**config)).eval()
            reference = timm.models.mlp_mixer.MlpMixer(**config).eval()
            reference.load_state_dict(model.state_dict())
            images = torch.randn(b, 3, size, size)
            with torch.no_grad():
                expected = reference(images)
            label = (
                f"images {tuple(images.shape)}, blocks={config['num_blocks']}, "
                f"C={config['embed_dim']}, N={model.num_patches}"
            )
            ok, out = call_and_check(
                feedback,
                f"mixer_forward on {label}",
                mixer_forward,
                model,
                images,
                expected=expected,
                inputs={"images": images},
                modules={"model": model},
                hint=_exception_hint,
                shape_hint=lambda out, case=case: _shape_hint(out, case),
            )
            if not ok:
                return feedback.stop()
            if not close(out.detach(), expected):
                model = frozen_copy(model)
                feedback.fail(f"{label}: {_diagnose(out.detach(), model, images, expected)}.")
                return feedback.stop()
            feedback.ok(f"{label} -> {shape(out)}, equal to timm's MlpMixer logits")
        b, size, *_ = CASES[0]
        model = randomize_(MlpMixer(**_config(CASES[0])))
        images = torch.randn(b, 3, size, size)
        check_gradients(
            feedback,
            "mixer_forward",
            lambda: mixer_forward(model, images),
            dict(model.named_parameters()),
            "gradients reach the stem, every block, the final LayerNorm and the head",
            group=_part,
        )
    return feedback.done()
