"""Checker for exercise 9, the capstone: a whole Mixer built from the student's own parts.

The student brings `patchify` (exercise 1), `token_mixing` (2), `MixerBlock` (3) and `DropPath`
(4), and assembles from them a module class (or any function that returns a module),

    Mixer(img_size, patch_size, num_blocks, embed_dim, num_classes, drop_path_rate=0.0)

with timm's layer names, so that timm's weights load into it:

    stem.proj                     a Linear on patchify's patches (or timm's Conv2d itself)
    blocks.i.norm1, .mlp_tokens, .norm2, .mlp_channels, .drop_path    (B, N, C) -> (B, N, C)
    norm                          the final LayerNorm
    head                          Linear(C, classes), after the mean over the N tokens

A Linear stem has the weights of timm's convolution unrolled in `patchify`'s `(p1 p2 c)` order
(`mixer_edu.patching.conv_to_linear`); the checker converts them when it loads timm's weights.

What it checks, one line each:

1. On three model sizes (one with as many tokens as channels, N == C, where pooling over the
   wrong axis has the right shape; one in float64; one with a batch of one image), the student's
   model with timm's random weights (nothing hides behind zeros) gives timm's logits in eval
   mode, with DropPath switched on (it must be the identity there), and its forward pass leaves
   the model and the images as it found them (`checks.Snapshot`). Logits that differ are
   explained: random ones mean DropPath is active in eval mode; otherwise the mistake is
   recomputed made in every block (`mixer_parts.everywhere`), then located part by part from the
   tables the student's layers were given (`mixer_parts.locate`: stem, each block's token and
   channel mixing, final norm and pooling, head).
2. In train mode DropPath is active (the logits change from call to call) and drops branches
   only (with every MLP's last layer zero the branches add nothing, so train mode must change
   nothing: a DropPath around the whole block would still drop the tokens); with
   `drop_path_rate=0` train mode gives eval mode's logits.
3. Every parameter gets a gradient.
4. A few steps of the course's own `train_step` (AdamW) on a fixed batch lower the loss.
"""

from __future__ import annotations

from functools import partial

import timm
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..train import train_step
from . import mixer_parts
from .checks import call_and_check, check_gradients, check_values, first_match, frozen_copy
from .feedback import Feedback, close, isolated, max_difference, randomize_, shape

# (batch, image size, patch size, blocks, channels C, classes, dtype). The first case has N == C
# (16 patches, 16 channels), so pooling over the channels runs and must be caught by its values;
# in the others it raises a shape error, which the checker explains.
CASES = [
    (3, 16, 4, 3, 16, 7, torch.float32),
    (2, 32, 8, 2, 24, 10, torch.float64),
    (1, 24, 8, 1, 12, 5, torch.float32),
]
EVAL_DROP_PATH = 0.25  # switched on in the eval-mode cases: it must change nothing there
TRAIN_DROP_PATH = 0.5
TRAIN_STEPS = 5
LAYERS = (
    "stem.proj; blocks (an nn.Sequential or nn.ModuleList of blocks), each with norm1, "
    "mlp_tokens, norm2, mlp_channels; then norm and head"
)


def _config(case: tuple, drop_path_rate: float = 0.0) -> dict:
    _, size, patch, blocks, channels, classes, _ = case
    return dict(
        img_size=size,
        patch_size=patch,
        num_blocks=blocks,
        embed_dim=channels,
        num_classes=classes,
        drop_path_rate=drop_path_rate,
    )


def _call(config: dict) -> str:
    return "Mixer(" + ", ".join(f"{key}={value}" for key, value in config.items()) + ")"


def _timm(config: dict, dtype: torch.dtype) -> nn.Module:
    """timm's MlpMixer with random weights, in eval mode."""
    return randomize_(timm.models.mlp_mixer.MlpMixer(**config)).to(dtype).eval()


def timm_weights_for(model: nn.Module, reference: nn.Module) -> dict[str, Tensor]:
    """`reference`'s (timm's) state_dict, with a Conv2d stem unrolled for a Linear stem.

    A stem that applies an `nn.Linear` to `patchify`'s patches needs the convolution's filters
    `(C, 3, P, P)` as a matrix `(C, P*P*3)` in `(p1 p2 c)` order, as `conv_to_linear` makes it.
    """
    weights = dict(reference.state_dict())
    mine = model.state_dict()
    key = "stem.proj.weight"
    if key in mine and key in weights and mine[key].ndim == 2 and weights[key].ndim == 4:
        weights[key] = rearrange(weights[key], "d c p1 p2 -> d (p1 p2 c)")
    return weights


def _load_problem(model: nn.Module, weights: dict[str, Tensor]) -> str | None:
    """Why timm's `weights` do not load into the student's `model`, in words; or None."""
    mine = model.state_dict()
    missing = [key for key in weights if key not in mine]
    extra = [key for key in mine if key not in weights]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"timm has {', '.join(missing[:3])} and yours does not")
        if extra:
            parts.append(f"yours has {', '.join(extra[:3])} and timm does not")
        return (
            f"your Mixer's parameter names are not timm's ({'; '.join(parts)}), so timm's weights "
            f"cannot load: use these layer names, {LAYERS} (a Python list hides its layers from "
            "PyTorch)"
        )
    for key, value in weights.items():
        if mine[key].shape != value.shape:
            return (
                f"{key} has shape {tuple(mine[key].shape)} in your Mixer, timm's "
                f"{tuple(value.shape)}: {_size_hint(key)}"
            )
    try:
        model.load_state_dict(weights, strict=True)
    except Exception as error:  # noqa: BLE001 - anything a custom module may raise
        return f"timm's weights do not load into your Mixer ({type(error).__name__}: {error})"
    return None


def _size_hint(key: str) -> str:
    if "mlp_tokens" in key:
        return "mlp_tokens reads the N tokens and has C/2 hidden units (timm's mlp_ratio 0.5)"
    if "mlp_channels" in key:
        return "mlp_channels reads the C channels and has 4C hidden units (timm's mlp_ratio 4)"
    if key.startswith("stem"):
        return "the stem maps each patch of P*P*3 numbers to C channels"
    if key.startswith("head"):
        return "the head maps the C channels of the pooled vector to the classes"
    return "a LayerNorm normalises the C channels of each token"


def _build(feedback: Feedback, build, config: dict, dtype: torch.dtype, reference: nn.Module):
    """The student's model with `reference`'s weights, in eval mode; or None after a failed line."""
    ok, model = feedback.call(_call(config), build, **config)
    if not ok:
        return None
    if not isinstance(model, nn.Module):
        feedback.fail(f"{_call(config)} returned {shape(model)}, not an nn.Module")
        return None
    with torch.no_grad():
        problem = _load_problem(model, timm_weights_for(model, reference))
    if problem is not None:
        feedback.fail(f"{_call(config)}: {problem}")
        return None
    return model.to(dtype).eval()


def _changes_between_calls(model: nn.Module, images: Tensor) -> bool:
    """True if two calls of `model` on the same images give different logits (a random layer)."""
    with torch.no_grad():
        torch.manual_seed(1)
        first = model(images)
        torch.manual_seed(2)
        return not torch.equal(first, model(images))


def _diagnose(model: nn.Module, reference: nn.Module, images: Tensor, out: Tensor) -> str:
    """Name the mistake: random in eval mode, made everywhere, or located part by part."""
    if _changes_between_calls(frozen_copy(model), images):
        return (
            "the logits change from call to call in eval mode: DropPath must be the identity "
            "after .eval() (it reads self.training), and random only in train mode"
        )
    with torch.no_grad():
        hint = first_match(out, mixer_parts.everywhere(reference, images))
    if hint is not None:
        return hint
    seen = mixer_parts.record_tables(lambda m, x: m(x), frozen_copy(model), images)
    hint = mixer_parts.locate(seen, reference, images)
    if hint is not None:
        return hint
    difference, where = max_difference(out, reference(images))
    return (
        f"the logits differ from timm's (largest difference {difference:.3g} at image "
        f"{where[0]}, class {where[1]}): compare your parts' outputs with timm's one at a time"
    )


def _shape_hint(out: Tensor, case: tuple) -> str:
    b, size, patch, _, channels, classes, _ = case
    tokens = (size // patch) ** 2
    if out.shape == (b, tokens, classes):
        return "there is one row of logits per token: average the tokens (pooling) before the head"
    if out.shape == (b, channels) or out.shape == (b, tokens, channels):
        return "the head is missing: it maps the pooled C channels to the classes"
    return "the model returns one row of logits per image, (B, classes)"


def _exception_hint(error: BaseException) -> str | None:
    text = str(error)
    if isinstance(error, RuntimeError) and "normalized_shape" in text:
        return (
            "a LayerNorm was given a table whose last axis is not the C channels: the blocks and "
            "the final norm read (B, N, C), one row per patch (check the stem's output, and that "
            "every table turned for token mixing is turned back)"
        )
    if isinstance(error, RuntimeError) and "must match the size of tensor" in text:
        return (
            "two tables of different layouts were added: a residual adds (B, N, C) to (B, N, C), "
            "so a branch that turns the table for token mixing must turn it back"
        )
    if isinstance(error, RuntimeError) and "cannot be multiplied" in text:
        return (
            "a layer was given vectors of the wrong length: the stem's Linear reads one patch of "
            "P*P*3 numbers, the blocks and the final norm (B, N, C) tokens, the head one pooled "
            "C-vector per image"
        )
    return None


def _check_case(feedback: Feedback, build, case: tuple) -> bool:
    """Line 1 of the docstring for one model size: timm's logits, and nothing changed."""
    b, size, *_, dtype = case
    config = _config(case, EVAL_DROP_PATH)
    reference = _timm(config, dtype)
    model = _build(feedback, build, config, dtype, reference)
    if model is None:
        return False
    images = torch.randn(b, 3, size, size, dtype=dtype)
    with torch.no_grad():
        expected = reference(images)
    n = (size // config["patch_size"]) ** 2
    label = (
        f"images {tuple(images.shape)} {str(dtype).removeprefix('torch.')}, "
        f"blocks={config['num_blocks']}, C={config['embed_dim']}, N={n}"
    )
    ok, out = call_and_check(
        feedback,
        f"your Mixer on {label}",
        model,
        images,
        expected=expected,
        inputs={"images": images},
        modules={"model": model},
        hint=_exception_hint,
        shape_hint=lambda out: _shape_hint(out, case),
    )
    if not ok:
        return False
    diagnose = partial(_diagnose, model, reference, images)
    passed = f"{label} -> {shape(out)}, eval mode: equal to timm's MlpMixer logits"
    return check_values(feedback, label, out, expected, diagnose, passed)


def _check_train_mode(feedback: Feedback, build) -> bool:
    """Line 2: DropPath active in train mode; nothing else differs between the modes."""
    b, size, *_, dtype = case = CASES[0]
    images = torch.randn(b, 3, size, size)
    still = _config(case, 0.0)
    reference = _timm(still, dtype)
    model = _build(feedback, build, still, dtype, reference)
    if model is None:
        return False
    with torch.no_grad():
        expected = reference(images)
        ok, out = call_and_check(
            feedback,
            "your Mixer in train mode",
            model.train(),
            images,
            expected=expected,
            inputs={"images": images},
            modules={"model": model},
            hint=_exception_hint,
        )
    if not ok:
        return False
    if not close(out.detach(), expected):
        return feedback.fail(
            "in train mode with drop_path_rate=0 your Mixer's logits differ from eval mode's: "
            "with nothing to drop, every layer must compute the same in both modes"
        )
    dropping = _config(case, TRAIN_DROP_PATH)
    reference = _timm(dropping, dtype)
    model = _build(feedback, build, dropping, dtype, reference)
    if model is None:
        return False
    ok, changes = feedback.call(
        "your Mixer in train mode", _changes_between_calls, model.train(), images
    )
    if not ok:
        return False
    if not changes:
        return feedback.fail(
            f"in train mode with drop_path_rate={TRAIN_DROP_PATH} the logits are the same on "
            "every call: DropPath never drops (is drop_path_rate handed to every block's "
            "DropPath, and does the block apply it to its branches?)"
        )
    return _check_only_branches_drop(feedback, model, reference, images)


def _check_only_branches_drop(feedback: Feedback, model, reference, images: Tensor) -> bool:
    """With every MLP's last layer zero, the branches add nothing: train mode must change nothing.

    DropPath drops a residual *branch*; one that wraps the whole block (or the residual stream)
    zeroes the samples' tokens themselves, which this catches.
    """
    with torch.no_grad():
        for block in reference.blocks:
            for mlp in (block.mlp_tokens, block.mlp_channels):
                mlp.fc2.weight.zero_()
                mlp.fc2.bias.zero_()
        model.load_state_dict(timm_weights_for(model, reference))
        expected = reference(images)
        ok, out = feedback.call("your Mixer in train mode", model.train(), images)
    if not ok:
        return False
    return feedback.check(
        torch.is_tensor(out) and close(out, expected),
        f"train mode, drop_path_rate={TRAIN_DROP_PATH}: the logits change from call to call "
        "(DropPath is active), but not once every branch is switched off (it drops branches "
        "only); with drop_path_rate=0 they equal eval mode's",
        "with every MLP switched off (their last layers zero) the branches add nothing, yet in "
        "train mode DropPath still changes the logits: it drops the residual stream itself "
        "(the block's input); it must wrap each branch only, before the residual adds it",
    )


def _part(name: str) -> str:
    """'blocks.1.norm1.weight' -> 'block 1', 'stem.proj.weight' -> 'the stem', ..."""
    layer = name.split(".")
    return f"block {layer[1]}" if layer[0] == "blocks" else f"the {layer[0]}"


def _loss(model: nn.Module, images: Tensor, targets: Tensor) -> float:
    with torch.no_grad():
        return F.cross_entropy(model.eval()(images), targets).item()


def _check_training(feedback: Feedback, build) -> bool:
    """Lines 3 and 4: every parameter gets a gradient; a few AdamW steps lower the loss."""
    b, size, *_ = case = CASES[0]
    config = _config(case, 0.1)
    model = _build(feedback, build, config, torch.float32, _timm(config, torch.float32))
    if model is None:
        return False
    images = torch.randn(b, 3, size, size)
    if not check_gradients(
        feedback,
        "your Mixer",
        lambda: model(images),
        dict(model.named_parameters()),
        "gradients reach the stem, every block, the final LayerNorm and the head",
        group=_part,
    ):
        return False
    images, targets = torch.randn(16, 3, size, size), torch.arange(16) % config["num_classes"]
    before = _loss(model, images, targets)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def train() -> None:
        model.train()
        for _ in range(TRAIN_STEPS):
            train_step(model, images, targets, optimizer)

    ok, _ = feedback.call(f"{TRAIN_STEPS} training steps of your Mixer", train)
    if not ok:
        return False
    after = _loss(model, images, targets)
    return feedback.check(
        after < before,
        f"{TRAIN_STEPS} AdamW steps (the course's train_step) on a fixed batch of 16 images: "
        "the loss falls",
        f"{TRAIN_STEPS} AdamW steps on a fixed batch did not lower the loss ({before:.4g} -> "
        f"{after:.4g}): are all the layers registered (attributes of the module, blocks in an "
        "nn.Sequential or nn.ModuleList) so that model.parameters() hands them to the optimizer?",
    )


def check_mixer_model(build) -> bool:
    """Check a student's Mixer: `build(img_size, patch_size, num_blocks, embed_dim, num_classes,
    drop_path_rate)` returns an `nn.Module`, `(B, 3, H, W) -> (B, classes)`, named as timm's.

    Loads timm's random weights into it and compares the logits with timm's `MlpMixer` on three
    sizes, checks DropPath in both modes, the gradients, and that a few training steps lower the
    loss (module docstring). Prints one line per check; returns True if all pass.
    """
    feedback = Feedback("Mixer")
    with isolated():
        for case in CASES:
            if not _check_case(feedback, build, case):
                return feedback.stop()
        if not _check_train_mode(feedback, build):
            return feedback.stop()
        _check_training(feedback, build)
    return feedback.done()
