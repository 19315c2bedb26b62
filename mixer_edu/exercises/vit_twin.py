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

The checker compares the twin's stem filters and position embedding with the right ones and
with the typical wrong ones (not moved, moved the inverse way, patches and pixels confused), and
names the mistake; then it checks that the twin on shuffled images gives the original's logits,
and that the original was left as it was.
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
    pixels = shuffle.pixel_order
    if close(got, _filters(weight, pixels)):
        return None
    if close(got, weight):
        return (
            "the stem's filters are unchanged: after the shuffle, pixel j of every patch is the "
            "original's pixel shuffle.pixel_order[j], so each filter must read its weights in "
            "that order"
        )
    if close(got, _filters(weight, torch.argsort(pixels))):
        return (
            "the stem's filters are rearranged the inverse way: the twin's weight for pixel j "
            "is the original's weight for pixel shuffle.pixel_order[j] (index with the order, "
            "do not scatter into it)"
        )
    if got.shape != weight.shape:
        return f"the stem's filters have shape {tuple(got.shape)}, not {tuple(weight.shape)}"
    return (
        "the stem's filters are not the original's with the pixels of a patch reordered: "
        "flatten the P x P pixels of each filter, index them with shuffle.pixel_order, and "
        "reshape back"
    )


def _diagnose_positions(got: torch.Tensor, embedding: torch.Tensor, shuffle: ImagePermutation):
    patches = shuffle.patch_order
    if close(got, embedding[:, patches]):
        return None
    if close(got, embedding):
        return (
            "the position embedding is unchanged: after the shuffle, token n of the twin holds "
            "the original's patch shuffle.patch_order[n], so it needs that patch's embedding"
        )
    if close(got, embedding[:, torch.argsort(patches)]):
        return (
            "the position embedding is rearranged the inverse way: token n of the twin needs the "
            "original's embedding at shuffle.patch_order[n] (index with the order)"
        )
    return (
        "the position embedding is not the original's with its N rows reordered: index its "
        "token axis (dim 1 of (1, N, C)) with shuffle.patch_order"
    )


def _check_case(feedback: Feedback, vit_twin, case: tuple) -> bool:
    size, patch, seed = case
    vit = randomize_(SmallViT(img_size=size, patch_size=patch, embed_dim=16, depth=2)).eval()
    shuffle = ImagePermutation.patches_and_pixels(size, patch, seed=seed)
    label = f"SmallViT({size}x{size} images, {patch}x{patch} patches), shuffle seed {seed}"
    original = copy.deepcopy(vit)
    snapshot = Snapshot({}, {"vit": vit})
    ok, twin = feedback.call(f"vit_twin on {label}", vit_twin, vit, shuffle)
    if not ok:
        return False
    if not check_unchanged(feedback, f"vit_twin on {label}", snapshot):
        return False
    if twin is vit or not isinstance(twin, nn.Module):
        return feedback.fail(
            f"{label}: vit_twin returned "
            + ("the vit it was given" if twin is vit else f"a {type(twin).__name__}")
            + "; return a new, rearranged copy (copy.deepcopy(vit), then change the copy)."
        )
    stem = getattr(getattr(twin, "stem", None), "proj", None)
    if stem is None or not hasattr(twin, "position_embedding"):
        return feedback.fail(f"{label}: the twin has no stem.proj or position_embedding.")
    with torch.no_grad():
        hints = [
            _diagnose_stem(stem.weight, original.stem.proj.weight, shuffle),
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
