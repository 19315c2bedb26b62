"""Input checks shared by the modules, with messages that say what is wrong and how to fix it.

These raise `ValueError` / `TypeError` rather than using `assert`, because asserts disappear when
Python runs with `-O`, and a student should never get a silent wrong answer instead of an error.
"""

from __future__ import annotations

import difflib
import math

import torch
import torch.fx


def tracing() -> bool:
    """Whether a tracer, not a person, is calling: `torch.jit.trace` or `torch.fx`.

    The input checks of the model's `forward` stand aside then, as timm's models have none: a
    tracer records the operations on the tensors, and a Python `if` on a shape or an
    `isinstance` on a tracer's stand-in (an fx `Proxy`) would fail or be frozen into the graph.
    TorchScript cannot compile this function (the fx flag is Python state), so a forward calls
    it inside `if not torch.jit.is_scripting():`, a block TorchScript skips without compiling it
    (in the same `if`, joined by `and`, it would be compiled). `torch.compile` and
    `torch.export` run the checks themselves (they become guards on the input's shape), so
    there the checks stay.
    """
    return torch.jit.is_tracing() or _fx_symbolic_tracing()


# torch.fx.symbolic_trace's flag. Newer torch also sets `is_fx_tracing` under torch.export and
# warns when it is read; it names symbolic tracing alone `is_fx_symbolic_tracing`. torch 2.6
# has only `is_fx_tracing`.
_fx_symbolic_tracing = getattr(
    torch.fx._symbolic_trace,
    "is_fx_symbolic_tracing",
    torch.fx._symbolic_trace.is_fx_tracing,
)


def to_pair(value) -> tuple:
    """`v -> (v, v)`; a tuple or list comes back as a tuple (timm's `to_2tuple`).

    Args:
        value: one value for both places, or a sequence of them.
    """
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def check_tensor(x, name: str = "input") -> torch.Tensor:
    """Raise `TypeError` unless `x` is a `torch.Tensor`."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, got {type(x).__name__}; "
            "convert it first, e.g. torch.as_tensor(x, dtype=torch.float32)."
        )
    return x


def check_probability(p, name: str = "drop_prob") -> float:
    """Return `p` as a float after checking it is a probability in [0, 1).

    1 is excluded on purpose: dropping a path with certainty removes the layer entirely, and the
    1 / keep_prob rescaling would divide by zero.
    """
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"{name} must be a number in [0, 1), got {p!r} ({type(p).__name__}).")
    if not 0.0 <= p < 1.0:
        raise ValueError(
            f"{name} must be in [0, 1), got {p}; use 0.0 to switch it off "
            "and a value such as 0.1 to drop 10% of the time."
        )
    return float(p)


def check_positive_int(n, name: str) -> int:
    """Return `n` after checking it is a positive whole number."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be a positive int, got {n!r} ({type(n).__name__}).")
    if n <= 0:
        raise ValueError(f"{name} must be a positive int, got {n}.")
    return n


def check_choice(value, choices, name: str, hint: str = ""):
    """Return `value` after checking it is one of `choices`; the error lists them all.

    Args:
        value: what was given.
        choices: the allowed values; a near miss (a typo) gets a suggestion:
            `'crop_flip'` -> "Did you mean 'crop-flip'?".
        name: what to call `value` in the message.
        hint: what the choices mean, added to the message.
    """
    choices = tuple(choices)
    if value in choices:
        return value
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    suggestion = f" Did you mean {close[0]!r}?" if close else ""
    allowed = ", ".join(repr(c) for c in choices)
    message = f"{name} must be one of {allowed}; got {value!r}.{suggestion}"
    raise ValueError(message + (f" {hint}" if hint else ""))


def check_range(
    value,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    high_open: bool = False,
    low_open: bool = False,
    hint: str = "",
) -> float:
    """Return `value` after checking it is a finite number in the interval [low, high].

    Args:
        value: what was given.
        name: what to call it in the message.
        low, high: the interval's ends; None leaves that side unbounded.
        low_open, high_open: exclude that end.
        hint: how to fix a bad value, added to the message.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__}).")
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above or not math.isfinite(value):
        raise ValueError(
            f"{name} must be {_interval(low, high, low_open, high_open)}, got {value}."
            + (f" {hint}" if hint else "")
        )
    return value


def _interval(low, high, low_open: bool, high_open: bool) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low}"
    if low is None:
        return f"{'<' if high_open else '<='} {high}"
    return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def check_divisible(image_size: int, patch_size: int) -> None:
    """Raise `ValueError` unless the image splits into whole patches."""
    if image_size % patch_size != 0:
        below = image_size - image_size % patch_size
        raise ValueError(
            f"image size {image_size} is not divisible by patch size {patch_size}; "
            f"resize or crop the images to a multiple of {patch_size} (e.g. {below} or "
            f"{below + patch_size}), or pick a patch size that divides {image_size}."
        )


def check_image_batch(
    images,
    *,
    channels: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    name: str = "images",
) -> torch.Tensor:
    """Check that `images` is a batch `(B, C, H, W)` with the expected channels and size.

    Args:
        images: the batch to check.
        channels: the model's `in_chans`, or None to accept any.
        image_size: the model's `img_size` (a side S, or `(height, width)`), or None.
        name: what to call the batch in the message.
    """
    check_tensor(images, name)
    if images.ndim == 3:
        raise ValueError(
            f"{name} has shape {tuple(images.shape)}, which looks like a single image (C, H, W); "
            "the model expects a batch (B, C, H, W): add the batch axis with images.unsqueeze(0)."
        )
    if images.ndim != 4:
        raise ValueError(
            f"{name} must have 4 dimensions (B, C, H, W), got shape {tuple(images.shape)}."
        )
    _, c, h, w = images.shape
    if channels is not None and c != channels:
        raise ValueError(
            f"{name} have {c} channels but the model was built for in_chans={channels}; "
            f"convert the images (e.g. grey -> RGB with images.expand(-1, 3, -1, -1)) "
            f"or build the model with in_chans={c}."
        )
    if image_size is not None and (h, w) != to_pair(image_size):
        expected = to_pair(image_size)
        resize = expected[0] if expected[0] == expected[1] else expected
        given = h if h == w else (h, w)
        raise ValueError(
            f"{name} are {h}x{w} but the model was built for {expected[0]}x{expected[1]}; "
            f"resize them (e.g. torchvision.transforms.Resize({resize})) or build the model "
            f"with img_size={given}. A Mixer's token-mixing weights fix the number of patches, "
            "so its input size cannot change after it is built."
        )
    return images
