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
shape and must be caught by its values; one model is in train mode, the others in eval mode, and
the student's code must leave each as it found it (`checks.Snapshot`). A wrong answer is first
recomputed in the typical wrong ways, each made in every block (`mixer_parts.everywhere`: a
missing LayerNorm, residual, transpose, GELU or bias, the stem's patch order, the pooling, the
blocks skipped or reversed, probabilities instead of logits); if none matches, the tables the
student's code hands to the model's layers are compared with the reference's, part by part
(`mixer_parts.locate`), and the first one that differs names the step that made it.
"""

from __future__ import annotations

from functools import partial

import timm
import torch

from ..mixer import MlpMixer
from . import mixer_parts
from .checks import call_and_check, check_gradients, check_values, first_match, frozen_copy
from .feedback import Feedback, isolated, max_difference, randomize_, shape

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


def _diagnose(function, out: torch.Tensor, model: MlpMixer, images: torch.Tensor, expected) -> str:
    """Name the mistake: made everywhere (every block), or located part by part (`mixer_parts`)."""
    with torch.no_grad():
        hint = first_match(out, mixer_parts.everywhere(model, images))
    if hint is not None:
        return hint
    seen = mixer_parts.record_tables(function, frozen_copy(model), images)
    hint = mixer_parts.locate(seen, model, images)
    if hint is not None:
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
    if isinstance(error, RuntimeError) and "normalized_shape" in text:
        return (
            "a LayerNorm was given a table whose last axis is not the C channels: the blocks and "
            "model.norm read (B, N, C), one row per patch (check the stem's output, and that "
            "every table turned for token mixing is turned back)"
        )
    if isinstance(error, RuntimeError) and "must match the size of tensor" in text:
        return (
            "two tables of different layouts were added: a residual adds (B, N, C) to (B, N, C), "
            "so a branch that turns the table for token mixing must turn it back"
        )
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
        for index, case in enumerate(CASES):
            b, size, *_ = case
            config = _config(case)
            # One model in train mode: the student's code must leave either mode as it is.
            model = randomize_(MlpMixer(**config)).train(index == 1)
            reference = timm.models.mlp_mixer.MlpMixer(**config).eval()
            reference.load_state_dict(model.state_dict())
            images = torch.randn(b, 3, size, size)
            with torch.no_grad():
                expected = reference(images)
            label = (
                f"images {tuple(images.shape)}, blocks={config['num_blocks']}, "
                f"C={config['embed_dim']}, N={model.num_tokens}"
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
            diagnose = partial(
                _diagnose, mixer_forward, model=model, images=images, expected=expected
            )
            passed = f"{label} -> {shape(out)}, equal to timm's MlpMixer logits"
            if not check_values(feedback, label, out, expected, diagnose, passed):
                return feedback.stop()
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
