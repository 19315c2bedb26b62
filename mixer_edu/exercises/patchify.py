"""Checker for exercise 1: cut images into patches and unroll them, in the stem's order.

The student writes `patchify(images, patch_size)`, `(B, C, H, W) -> (B, N, P*P*C)`. The order
matters twice: tokens are numbered row by row across the patch grid, and each patch is unrolled
as (row, column, channel), `(p1 p2 c)`. Only in that order does the stem's Linear form
(`conv_to_linear(stem.proj)`) read the pixels its weights were made for.

To say *which* pixel ended up where, the checker feeds "coded" images whose every value is the
pixel's own index (`image, channel, row, column` unravelled): a wrong output can then be decoded
back into the pixel each number came from. Known mistakes are recognised by comparing the
student's output with the same pixels in the mistaken order.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange

from ..patching import patchify as reference_patchify
from .checks import call_and_check
from .feedback import Feedback, isolated, shape
from .sandbox import run_student_code

# (batch, channels, height, width, patch_size): square and non-square images, one channel, a
# single patch, and patch size 1 (every pixel is a token).
CASES = [
    (2, 3, 8, 8, 4),
    (1, 3, 8, 12, 4),
    (3, 1, 6, 6, 2),
    (2, 3, 16, 8, 8),
    (1, 2, 4, 4, 4),
    (2, 3, 4, 4, 1),
]

# Typical wrong orders, as einops patterns for the output, each with the hint it deserves.
ORDER_MISTAKES = [
    (
        "b (h w) (c p1 p2)",
        "each patch is unrolled channel by channel, (channel, row, column), but the stem's "
        "Linear form (conv_to_linear) expects (row, column, channel), the order (p1 p2 c): "
        "the C values of one pixel next to each other",
    ),
    (
        "b (h w) (p2 p1 c)",
        "inside each patch the pixels are read column by column; the stem reads them row by "
        "row, (row, column, channel)",
    ),
    (
        "b (h w) (c p2 p1)",
        "each patch is unrolled channel first and column by column; the stem expects "
        "(row, column, channel)",
    ),
    (
        "b (w h) (p1 p2 c)",
        "the patches are numbered column by column (down the first column first); the stem "
        "numbers its tokens row by row across the grid: left to right, then top to bottom",
    ),
    (
        "b (w h) (c p1 p2)",
        "two orders differ from the stem's: the patches are numbered column by column instead "
        "of row by row, and each patch is unrolled channel first instead of (row, column, "
        "channel)",
    ),
]


def _strips(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Channels last, then a plain reshape: each 'patch' is a strip of pixels from one row."""
    b, _, h, w = images.shape
    n = (h // patch_size) * (w // patch_size)
    return images.permute(0, 2, 3, 1).reshape(b, n, -1)


def _plain_reshape(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    b, _, h, w = images.shape
    return images.reshape(b, (h // patch_size) * (w // patch_size), -1)


RESHAPE_MISTAKES = [
    (
        _plain_reshape,
        "token 0 is not the top-left patch: a plain reshape (or view) of (B, C, H, W) keeps "
        "the memory order, so it cuts the image into runs of consecutive numbers, not P x P "
        "squares; the patch-row and patch-column axes have to be moved next to each other "
        "first",
    ),
    (
        _strips,
        "each token holds P*P consecutive pixels of one image row (a strip), not a P x P "
        "square: after moving the channels last, a reshape still cannot separate the rows "
        "of one patch from the rows of the next",
    ),
]


# Images come in other dtypes too (uint8 from a file, float64, bfloat16 in mixed precision);
# patchify only moves pixels, so it keeps their dtype. (batch, channels, height, width, patch
# size, dtype), each small enough that every pixel index is exact in its dtype (< 256).
DTYPE_CASES = [
    (1, 3, 8, 8, 4, torch.uint8),
    (2, 3, 8, 12, 4, torch.float64),
    (2, 1, 8, 8, 2, torch.bfloat16),
]

DTYPE_HINT = (
    "patchify only moves pixels, so its result keeps the images' dtype; a table created "
    "without a dtype (torch.zeros, torch.empty, torch.tensor of a list) or a .float() "
    "conversion gives float32 instead"
)


def coded_images(
    batch: int, channels: int, height: int, width: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Images whose value at `[b, c, y, x]` is that pixel's flat index (exact in float32)."""
    return (
        torch.arange(batch * channels * height * width)
        .reshape(batch, channels, height, width)
        .to(dtype)
    )


def _describe_pixel(value: float, images: torch.Tensor) -> str:
    """'the pixel (image b, channel c, row y, column x)' that holds `value` in coded images."""
    b, c, y, x = (int(i) for i in torch.unravel_index(torch.tensor(int(value)), images.shape))
    return f"the pixel (image {b}, channel {c}, row {y}, column {x})"


def _shape_hint(got: tuple, case: tuple) -> str:
    b, c, h, w, p = case
    rows, columns = h // p, w // p
    n, d = rows * columns, p * p * c
    expected = (b, n, d)
    if got == (b, d, n):
        return (
            "the last two axes are swapped: axis 1 lists the N patches (the tokens), axis 2 the "
            "P*P*C numbers of each patch"
        )
    if len(got) > 3:
        return (
            f"it has {len(got)} axes, but a patch table has 3, (batch, patches, numbers per "
            "patch): the grid of patches and the pixels inside a patch must each be flattened "
            "into one axis"
        )
    if got == (b * n, d):
        return "the batch and patch axes are merged: keep the images of the batch apart"
    if got == (n, d):
        return "the batch axis is missing"
    if math.prod(got) != b * c * h * w:
        return (
            f"it holds {math.prod(got)} numbers but the images hold {b * c * h * w}: patchify "
            "only rearranges pixels, it never adds or drops any"
        )
    if len(got) == 3 and got[0] == b:
        return (
            f"the right numbers, split the wrong way: a {h}x{w} image has ({h}/{p}) * ({w}/{p}) "
            f"= {n} patches (rows and columns of the grid counted separately) of P*P*C = {d} "
            "numbers each"
        )
    return f"expected {expected}"


def _diagnose_values(out: torch.Tensor, images: torch.Tensor, case: tuple) -> str:
    b, c, h, w, p = case
    for pattern, hint in ORDER_MISTAKES:
        mistaken = rearrange(images, f"b c (h p1) (w p2) -> {pattern}", p1=p, p2=p)
        if torch.equal(out, mistaken):
            return hint
    for make, hint in RESHAPE_MISTAKES:
        if torch.equal(out, make(images, p)):
            return hint
    expected = reference_patchify(images, p)
    image, token, element = (out != expected).nonzero()[0].tolist()
    row, column = divmod(token, w // p)
    where = (
        f"image {image}, token {token} (patch grid row {row}, column {column}), element {element}"
    )
    got, wanted = out[image, token, element].item(), expected[image, token, element].item()
    if not torch.equal(out.flatten().sort().values, images.flatten().sort().values):
        return (
            f"the values changed: {where} is {got:g}, but the pixel that belongs there, "
            f"{_describe_pixel(wanted, images)[4:]}, is {wanted:g}; patchify only moves pixels, "
            "it never changes their values"
        )
    return (
        f"{where} holds {_describe_pixel(got, images)}, but the stem expects "
        f"{_describe_pixel(wanted, images)} there"
    )


def check_patchify(patchify) -> bool:
    """Check a student's `patchify(images, patch_size)` against the stem's patch order.

    Runs it on images of several sizes (square and not, 1-3 channels, patch sizes 1-8), checks
    the output shape `(B, N, P*P*C)` and that every pixel lands where `mixer_edu.patchify` (and
    so the stem's weights) expects it. Prints one line per case; returns True if all pass.
    """
    feedback = Feedback("patchify")
    with isolated():
        for case in CASES:
            b, c, h, w, p = case
            label = f"{b} image{'s' if b > 1 else ''} {c}x{h}x{w}, patch {p}"
            images = coded_images(b, c, h, w)
            expected = reference_patchify(images, p)
            ok, out = call_and_check(
                feedback,
                f"patchify on {label}",
                patchify,
                images,
                p,
                expected=expected,
                inputs={"images": images},
                shape_hint=lambda out, case=case: _shape_hint(tuple(out.shape), case),
                dtype_hint=DTYPE_HINT,
            )
            if not ok:
                return feedback.stop()
            if not torch.equal(out, expected):
                feedback.fail(f"{label}: {_diagnose_values(out.detach(), images, case)}.")
                return feedback.stop()
            feedback.ok(f"{label} -> {shape(out)}, every pixel where the stem expects it")
        if not _check_dtypes(feedback, patchify):
            return feedback.stop()
        return feedback.done()


def _not_implemented_by_torch(patchify, images: torch.Tensor, patch_size: int) -> bool:
    outcome = run_student_code(patchify, images.clone(), patch_size)
    return isinstance(outcome.error, (RuntimeError, NotImplementedError)) and (
        "not implemented for" in str(outcome.error)
    )


def _check_dtypes(feedback: Feedback, patchify) -> bool:
    """uint8, float64 and bfloat16 images: the same pixels, in the images' own dtype."""
    for *case, dtype in DTYPE_CASES:
        b, c, h, w, p = case
        label = f"{b} image{'s' if b > 1 else ''} {c}x{h}x{w} of {dtype}, patch {p}"
        images = coded_images(b, c, h, w, dtype)
        expected = reference_patchify(images, p)
        if _not_implemented_by_torch(patchify, images, p):
            continue  # e.g. F.unfold has no uint8 kernel on the CPU: not the student's mistake
        ok, out = call_and_check(
            feedback,
            f"patchify on {label}",
            patchify,
            images,
            p,
            expected=expected,
            inputs={"images": images},
            shape_hint=lambda out, case=case: _shape_hint(tuple(out.shape), tuple(case)),
            dtype_hint=DTYPE_HINT,
        )
        if not ok:
            return False
        if not torch.equal(out, expected):
            return feedback.fail(
                f"{label}: the pixels land elsewhere than for float32 images of this size: "
                "patchify must move the pixels the same way whatever their dtype."
            )
    return feedback.ok("uint8, float64 and bfloat16 images keep their dtype, every pixel in place")
