"""Checker for exercise 10: the ViT twin of notebook 08's permutation experiment.

Notebook 08 rearranges a Mixer's weights so that on shuffled images (one fixed shuffle of the
patches, and of the pixels inside every patch) it computes what the original computes on the
originals. The student does the same for a small ViT (`mixer_edu.baselines.SmallViT`):
`vit_twin(vit, shuffle)` returns a rearranged copy with

    twin.stem.proj.weight[..., j] = vit's filter at pixel shuffle.pixel_order[j]   (inside a patch)
    twin.position_embedding[:, n] = vit.position_embedding[:, shuffle.patch_order[n]]

and nothing else changed: attention treats its tokens as a set (each output is a weighted mean
of all tokens, with weights from the tokens themselves), the MLPs and LayerNorms act on each token
alone, and the head reads the mean over tokens. So only the two parts that know *where* a pixel or
a patch is, the stem's filters and the position embedding, must move.

The checker first checks that the original was left as it was (its weights, layers and mode) and
that the twin is a model of its own (no tensor shared with the original, every parameter
trainable); then it compares the twin's stem filters and position embedding with the right ones
and with the typical wrong ones (not moved, moved the inverse way, patches and pixels confused,
the wrong axis), and names the mistake without giving the indexing away; last, that the twin on
shuffled images gives the original's logits.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..baselines import SmallViT
from ..permutation import ImagePermutation
from .checks import Snapshot, check_unchanged
from .feedback import Feedback, close, isolated, randomize_

# (image size, patch size, shuffle seed). Patches and pixels have different counts in each case.
CASES = [(16, 4, 0), (24, 8, 1)]


def _filters(weight: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """(C, 3, P, P) filters with the pixels of every patch read in `order`."""
    return weight.flatten(2)[:, :, order].reshape(weight.shape)


def _diagnose_stem(got: torch.Tensor, weight: torch.Tensor, shuffle: ImagePermutation):
    if got.shape != weight.shape:
        return f"the stem's filters have shape {tuple(got.shape)}, not {tuple(weight.shape)}"
    if close(got, _filters(weight, shuffle.pixel_order)):
        return None
    columns = weight.transpose(2, 3).flatten(2)[:, :, shuffle.pixel_order]
    mistakes = [
        (
            weight,
            "the stem's filters are unchanged: after the shuffle the pixels inside every patch "
            "come in a new order, so each filter's weights must move with their pixels",
        ),
        (
            _filters(weight, torch.argsort(shuffle.pixel_order)),
            "the stem's filters are rearranged the inverse way: the twin's weight for pixel j "
            "must be the original's weight for the pixel that the shuffle brings to place j, "
            "not the weight the original had at the place pixel j moved to",
        ),
        (
            columns.reshape(weight.shape).transpose(2, 3),
            "the pixels of each filter were numbered column by column; the shuffle numbers the "
            "pixels of a patch row by row",
        ),
    ]
    if len(shuffle.patch_order) == len(shuffle.pixel_order):
        mistakes.append(
            (
                _filters(weight, shuffle.patch_order),
                "the stem's filters were rearranged with the patches' order; inside a patch the "
                "pixels move by the pixels' order (shuffle.pixel_order)",
            )
        )
    for mistaken, hint in mistakes:
        if close(got, mistaken):
            return hint
    return (
        "the stem's filters are not the original's with the pixels of a patch moved: only the "
        "order of the P x P pixels inside each filter changes, the same way for every output "
        "channel and every colour"
    )


def _diagnose_positions(got: torch.Tensor, embedding: torch.Tensor, shuffle: ImagePermutation):
    if got.shape != embedding.shape:
        return f"the position embedding has shape {tuple(got.shape)}, not {tuple(embedding.shape)}"
    patches = shuffle.patch_order
    if close(got, embedding[:, patches]):
        return None
    mistakes = [
        (
            embedding,
            "the position embedding is unchanged: after the shuffle the twin's token n holds "
            "another patch of the original image, so it needs that patch's embedding",
        ),
        (
            embedding[:, torch.argsort(patches)],
            "the position embedding is rearranged the inverse way: token n of the twin needs the "
            "embedding of the patch that the shuffle brings to place n, not the embedding of the "
            "place that patch n moved to",
        ),
    ]
    if len(patches) == embedding.shape[2]:
        mistakes.append(
            (
                embedding[:, :, patches],
                "the channels of the position embedding were reordered; the shuffle moves whole "
                "tokens, so whole rows of the (1, N, C) embedding move, each keeping its C numbers",
            )
        )
    if len(shuffle.pixel_order) == len(patches):
        mistakes.append(
            (
                embedding[:, shuffle.pixel_order],
                "the position embedding was rearranged with the pixels' order; the tokens move "
                "with the patches' order (shuffle.patch_order)",
            )
        )
    for mistaken, hint in mistakes:
        if close(got, mistaken):
            return hint
    return (
        "the position embedding is not the original's with its N rows moved: each row of the "
        "twin's embedding must be one of the original's rows, unchanged, moved as its patch moved"
    )


def _shared_memory(twin: nn.Module, vit: nn.Module) -> tuple[str, str] | None:
    """(twin's tensor, original's tensor) that share storage, if any."""
    theirs = {}
    for name, tensor in [*vit.named_parameters(), *vit.named_buffers()]:
        theirs.setdefault(tensor.untyped_storage().data_ptr(), name)
    for name, tensor in [*twin.named_parameters(), *twin.named_buffers()]:
        found = theirs.get(tensor.untyped_storage().data_ptr())
        if found is not None:
            return name, found
    return None


def _exception_hint(error: BaseException) -> str | None:
    text = str(error)
    if "leaf Variable" in text or "modified by an inplace operation" in text:
        return (
            "The twin's weights are parameters that autograd tracks, so writing into them is "
            "refused while gradients are recorded; rearranging weights is not a computation to "
            "learn through, so do it inside a torch.no_grad() block"
        )
    if isinstance(error, IndexError) or "out of bounds" in text:
        return (
            "an order was applied to an axis of another length: shuffle.pixel_order numbers the "
            "P*P pixels inside a patch, shuffle.patch_order the N patches (the tokens)"
        )
    return None


def _check_copy(feedback: Feedback, label: str, twin, vit: nn.Module) -> bool:
    """The twin is a module of its own: not `vit`, sharing no memory with it, trainable."""
    if twin is vit or not isinstance(twin, nn.Module):
        return feedback.fail(
            f"{label}: vit_twin returned "
            + ("the vit it was given" if twin is vit else f"a {type(twin).__name__}")
            + ", but the original must stay as it is: return a separate, rearranged model."
        )
    shared = _shared_memory(twin, vit)
    if shared is not None:
        return feedback.fail(
            f"{label}: the twin's {shared[0]} shares its memory with the original's {shared[1]}: "
            "the two models hold one tensor between them, so training the twin would change the "
            "original too; the twin needs its own copy of every weight."
        )
    frozen = [name for name, parameter in twin.named_parameters() if not parameter.requires_grad]
    if frozen:
        return feedback.fail(
            f"{label}: the twin's {frozen[0]} does not require grad, so training the twin on "
            "shuffled images would never change it; the twin must train like the original."
        )
    stem = getattr(getattr(twin, "stem", None), "proj", None)
    if stem is None or not hasattr(twin, "position_embedding"):
        return feedback.fail(f"{label}: the twin has no stem.proj or position_embedding.")
    return True


def _check_case(feedback: Feedback, vit_twin, case: tuple) -> bool:
    size, patch, seed = case
    vit = randomize_(SmallViT(img_size=size, patch_size=patch, embed_dim=16, depth=2)).eval()
    shuffle = ImagePermutation.patches_and_pixels(size, patch, seed=seed)
    label = f"SmallViT({size}x{size} images, {patch}x{patch} patches), shuffle seed {seed}"
    original = copy.deepcopy(vit)
    snapshot = Snapshot({}, {"vit": vit})
    what = f"vit_twin on {label}"
    ok, twin = feedback.call(what, vit_twin, vit, shuffle, hint=_exception_hint)
    if not ok:
        return False
    if twin is not vit and getattr(twin, "_modules", None) is vit._modules:
        return feedback.fail(
            f"{label}: the twin is a shallow copy: it holds the original's own layers and "
            "parameters, so every change to the twin changes the original too; the twin must "
            "be a copy of its own, down to every tensor."
        )
    if not check_unchanged(feedback, what, snapshot):
        return False
    if not _check_copy(feedback, label, twin, vit):
        return False
    with torch.no_grad():
        hints = [
            _diagnose_stem(twin.stem.proj.weight, original.stem.proj.weight, shuffle),
            _diagnose_positions(twin.position_embedding, original.position_embedding, shuffle),
        ]
    hints = [hint for hint in hints if hint is not None]
    if hints:
        return feedback.fail(f"{label}: " + "; and ".join(hints) + ".")
    images = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = original(images)
    ok, out = feedback.call(f"the twin on shuffled images ({label})", twin, shuffle(images))
    if not ok:
        return False
    if not isinstance(out, torch.Tensor) or not close(out.detach(), expected):
        return feedback.fail(
            f"{label}: the stem and the position embedding are right, but the twin's logits on "
            "shuffled images differ from the original's on the originals: leave every other "
            "weight (attention, MLPs, LayerNorms, head) as it is."
        )
    return feedback.ok(f"{label}: the twin on shuffled images gives the original's logits")


def check_vit_twin(vit_twin) -> bool:
    """Check a student's `vit_twin(vit, shuffle)`: a rearranged copy of a `SmallViT`.

    For two ViT sizes and shuffles, compares the twin's stem filters and position embedding with
    the right rearrangement (naming the typical wrong ones), checks that the given ViT is left
    unchanged, and that the twin on shuffled images gives the original's logits. Prints one line
    per check; returns True if all pass.
    """
    feedback = Feedback("ViT twin")
    with isolated():
        for case in CASES:
            if not _check_case(feedback, vit_twin, case):
                return feedback.stop()
    return feedback.done()
