"""Checker for exercise 4: DropPath, one coin per sample, rescaled, and off in eval mode.

The student writes the `forward` of a module `DropPath(drop_prob)`. In train mode it must zero
the whole input of each sample with probability `drop_prob`, and divide the samples it keeps by
`keep_prob = 1 - drop_prob`; in eval mode it must return its input unchanged.

DropPath is random, so the checker tests properties on large batches, with torch's generator
seeded (the same code always gets the same feedback) and tolerances of about six standard
errors (a correct DropPath fails them with a probability below one in a million):

- every sample is either entirely zero or entirely kept (not single elements, not rows);
- about `drop_prob` of the samples are dropped (not `keep_prob`), and not the whole batch at once;
- the kept samples are exactly `x / keep_prob` (so the mean is unchanged);
- a new draw on every call; the identity in eval mode and for `drop_prob = 0`;
- the input tensor is not modified in place; any input shape `(B, ...)` works;
- batches of 1 and 2 are dropped as often as large ones (one coin per sample, not a fixed count
  of round(drop_prob * B) samples, which is 0 for a small batch);
- float64 and bfloat16 inputs keep their dtype (a mask made in float32 would promote bfloat16).
"""

from __future__ import annotations

import torch

from .checks import call_and_check, check_output
from .feedback import Feedback, broadcast_sizes, isolated, shape
from .sandbox import run_student_code

DROP_PROB = 0.25
BATCH = 4000  # the fraction dropped has a standard error of 0.007 at this size
TOLERANCE = 0.04  # about six standard errors


def _positive(*size: int) -> torch.Tensor:
    """Values in [1, 2): never 0 by chance, so a 0 in the output means 'dropped'."""
    return torch.rand(*size) + 1.0


def _shape_hint(out: torch.Tensor) -> str:
    return (
        "DropPath returns its input's shape: its mask has one value per sample and size 1 on "
        "every other axis, however many there are, so that it broadcasts"
    )


def _exception_hint(error: BaseException) -> str | None:
    if broadcast_sizes(error) is None:
        return None
    return (
        "The mask did not line up with the input: broadcasting matches axes from the last one, "
        "so a mask with one value per sample must have the batch axis first and size 1 on every "
        "other axis of the input, as many as the input has"
    )


def _mask_hint(dropped: torch.Tensor) -> str:
    """Describe how a non-per-sample mask varies, from the zeros of a (B, N, C) output."""
    whole_tokens = (dropped.all(dim=2) | ~dropped.any(dim=2)).all()
    if whole_tokens:
        return (
            "within one sample, some tokens are zeroed and others kept: the mask varies along "
            "axis 1; DropPath makes one draw per sample, so its mask has size 1 on every axis "
            "except the batch axis"
        )
    return (
        "single numbers are zeroed inside a sample, as dropout does: DropPath makes one draw "
        "per sample and zeroes or keeps that sample's whole input"
    )


def _rate_hint(fraction: float) -> str | None:
    if abs(fraction - DROP_PROB) <= TOLERANCE:
        return None
    keep_prob = 1.0 - DROP_PROB
    said = f"{fraction:.0%} of the samples were dropped, expected about {DROP_PROB:.0%}"
    if fraction == 0.0:
        return f"no sample was dropped in train mode with drop_prob={DROP_PROB}"
    if abs(fraction - keep_prob) <= TOLERANCE:
        return (
            f"{said}: that is keep_prob, not drop_prob; a Bernoulli draw gives 1 (here: keep) "
            "with the probability it is given"
        )
    return said


def _scale_hint(ratio: torch.Tensor) -> str | None:
    keep_prob = 1.0 - DROP_PROB
    if not torch.isfinite(ratio).all():
        return "some kept samples are inf or NaN: check what you divide by"
    if (ratio.max() - ratio.min()).item() > 1e-4:
        return (
            "the kept samples are not a fixed multiple of the input (output / input ranges "
            f"from {ratio.min().item():.3g} to {ratio.max().item():.3g}): keep each kept sample "
            "as it is, only rescaled"
        )
    factor = ratio.mean().item()
    targets = [
        (1.0 / keep_prob, None),
        (
            1.0,
            "the kept samples are not rescaled, so the output's mean is only keep_prob = "
            f"{keep_prob:g} times the input's: the next layer would see smaller activations "
            "in training than in eval mode",
        ),
        (
            keep_prob,
            f"the kept samples are multiplied by keep_prob = {keep_prob:g}, which shrinks the "
            "mean further; rescaling must undo the shrinking caused by the dropped samples",
        ),
        (
            1.0 / DROP_PROB,
            f"the kept samples are scaled by 1/drop_prob = {1 / DROP_PROB:g}; the rescaling "
            "must make the expected value of the output equal the input's",
        ),
    ]
    for target, hint in targets:
        if abs(factor - target) < 1e-4:
            return hint
    return (
        f"the kept samples are scaled by {factor:.4g}; the rescaling must make the expected "
        "value of the output equal the input's"
    )


def check_drop_path(drop_path_class) -> bool:
    """Check a student's `DropPath(drop_prob)` module (its `forward`, in train and eval mode).

    Prints one line per property (see the module docstring); returns True if all pass.
    """
    feedback = Feedback("DropPath")
    if not _is_a_module_class(feedback, drop_path_class):
        return feedback.stop()
    with isolated():
        module = _build(feedback, drop_path_class, DROP_PROB)
        if module is None:
            return feedback.stop()
        module.train()
        x = _positive(BATCH, 4, 6)
        what = f"DropPath({DROP_PROB}) in train mode on x {tuple(x.shape)}"
        ok, out = call_and_check(
            feedback,
            what,
            module,
            x,
            expected=x,
            inputs={"x": x},
            hint=_exception_hint,
            shape_hint=_shape_hint,
        )
        if not ok:
            return feedback.stop()

        out = out.detach()
        dropped = out == 0
        per_sample = dropped.flatten(1).all(dim=1) | ~dropped.flatten(1).any(dim=1)
        if not per_sample.all():
            feedback.fail(_mask_hint(dropped) + ".")
            return feedback.stop()
        feedback.ok("whole samples are dropped or kept, never single numbers")

        fraction = dropped.flatten(1).all(dim=1).float().mean().item()
        if fraction == 1.0 or (fraction == 0.0 and _drops_whole_batches(module)):
            feedback.fail(
                "the whole batch is dropped or kept together: DropPath draws one coin for each "
                "sample, not one for the batch."
            )
            return feedback.stop()
        hint = _rate_hint(fraction)
        if hint is not None:
            feedback.fail(hint + ".")
            return feedback.stop()
        feedback.ok(f"about drop_prob = {DROP_PROB:.0%} of the samples are dropped")

        kept = ~dropped.flatten(1).all(dim=1)
        hint = _scale_hint(out[kept] / x[kept])
        if hint is not None:
            feedback.fail(hint + ".")
            return feedback.stop()
        feedback.ok("kept samples are rescaled so the expected output equals the input")

        ok, again = feedback.call(f"{what}, a second time", module, x.clone())
        if not ok:
            return feedback.stop()
        feedback.check(
            not (isinstance(again, torch.Tensor) and torch.equal(again, out)),
            "a new random draw on every call",
            "the same samples are dropped on every call: draw a new mask in each forward pass.",
        )
        _check_independent_instances(feedback, drop_path_class)
        _check_eval_and_zero(feedback, drop_path_class, module, x)
        _check_shapes(feedback, module)
        _check_small_batches(feedback, module)
        _check_dtypes(feedback, module)
    return feedback.done()


def _drops_whole_batches(module) -> bool:
    """True if, over many small batches, every call drops all samples or none (and some all)."""
    whole, some_dropped = True, False
    for _ in range(20):
        outcome = run_student_code(module, _positive(64, 3))
        if not outcome.ok or not isinstance(outcome.value, torch.Tensor):
            return False  # it ran on a larger batch; no verdict if this fails
        dropped = (outcome.value == 0).flatten(1).all(dim=1)
        whole = whole and bool(dropped.all() or not dropped.any())
        some_dropped = some_dropped or bool(dropped.all())
    return whole and some_dropped


def _is_a_module_class(feedback: Feedback, given) -> bool:
    """The checker needs the class itself: it builds instances with several drop_prob values."""
    if isinstance(given, type) and issubclass(given, torch.nn.Module):
        return True
    if isinstance(given, torch.nn.Module):
        found = f"an instance of {type(given).__name__} (a module already built)"
    elif callable(given) and not isinstance(given, type):
        name = getattr(given, "__name__", "a function")
        found = f"the function {name}"
    else:
        found = f"a {type(given).__name__}"
    return feedback.fail(
        f"check_drop_path needs the class DropPath (an nn.Module subclass), but it was given "
        f"{found}: pass the class itself, check_drop_path(DropPath), so that the checker can "
        "build it with different drop probabilities and switch it between train and eval mode."
    )


def _build(feedback: Feedback, drop_path_class, drop_prob: float):
    ok, module = feedback.call(f"DropPath({drop_prob})", drop_path_class, drop_prob)
    if not ok:
        return None
    if not isinstance(module, torch.nn.Module):
        feedback.fail(f"DropPath({drop_prob}) made {shape(module)}, not an nn.Module.")
        return None
    return module


def _check_independent_instances(feedback: Feedback, drop_path_class) -> None:
    """Two DropPath modules (two blocks of one model) must not drop the same samples."""
    x = _positive(200, 3)
    masks = []
    for _ in range(2):
        module = _build(feedback, drop_path_class, 0.5)
        if module is None:
            return
        module.train()
        ok, out = feedback.call("a second DropPath(0.5) module", module, x.clone())
        if not ok or not isinstance(out, torch.Tensor) or out.shape != x.shape:
            return
        masks.append((out == 0).all(dim=1))
    feedback.check(
        not torch.equal(masks[0], masks[1]),
        "two DropPath modules draw independently of each other",
        "two separately built DropPath modules dropped exactly the same samples: they share "
        "one fixed seed (a torch.Generator seeded in __init__, or a seed set in forward), so in "
        "a model every block would drop the same samples; draw from torch's global generator "
        "(torch.rand without a generator) and let the training script seed it once.",
    )


def _check_eval_and_zero(feedback: Feedback, drop_path_class, module, x: torch.Tensor) -> None:
    module.eval()
    ok, out = feedback.call(f"DropPath({DROP_PROB}) in eval mode", module, x.clone())
    module.train()
    if ok:
        keep_prob = 1.0 - DROP_PROB
        is_tensor = isinstance(out, torch.Tensor) and out.shape == x.shape
        if is_tensor and torch.allclose(out, x * keep_prob):
            feedback.fail(
                "in eval mode the output is x * keep_prob: that is the old 'scale at test time' "
                "convention; since training already rescales, eval mode must leave x unchanged."
            )
        else:
            feedback.check(
                is_tensor and torch.equal(out, x),
                "the identity in eval mode (self.training is False)",
                "DropPath is still active in eval mode: after .eval() it must return its input "
                "unchanged (a module knows its mode from self.training).",
            )
    zero = _build(feedback, drop_path_class, 0.0)
    if zero is None:
        return
    zero.train()
    ok, out = feedback.call("DropPath(0.0) in train mode", zero, x.clone())
    if ok:
        feedback.check(
            isinstance(out, torch.Tensor) and torch.equal(out, x),
            "drop_prob = 0 leaves the input unchanged",
            "with drop_prob = 0 nothing may be dropped or rescaled, but the output differs "
            "from the input.",
        )


def _check_shapes(feedback: Feedback, module) -> None:
    """Any number of axes after the batch axis, and a batch of one."""
    module.train()
    for size in [(500, 8), (250, 3, 4, 4), (1, 5, 7)]:  # small: a wrong mask may broadcast
        x = _positive(*size)
        ok, out = feedback.call(f"DropPath on x {size}", module, x.clone())
        if not ok or not check_output(feedback, f"DropPath on x {size}", out, x, _shape_hint):
            return
        dropped = (out == 0).flatten(1)
        if out.shape != x.shape or not (dropped.all(dim=1) | ~dropped.any(dim=1)).all():
            feedback.fail(
                f"on x {size} the output has shape {shape(out)} or drops parts of samples: the "
                "mask must have one value per sample and broadcast over all other axes, "
                "however many there are."
            )
            return
    feedback.ok("works on (B, C), (B, C, H, W) and a batch of one, one draw per sample")


SMALL_BATCH_CALLS = 300  # calls on a batch of 1 and on a batch of 2: 900 coins in all


def _check_small_batches(feedback: Feedback, module) -> None:
    """On batches of 1 and 2, about drop_prob of the samples are dropped too."""
    module.train()
    dropped = total = 0
    for batch in (1, 2):
        for _ in range(SMALL_BATCH_CALLS):
            x = _positive(batch, 3)
            outcome = run_student_code(module, x)
            if not outcome.ok or not isinstance(outcome.value, torch.Tensor):
                feedback.call(f"DropPath on a batch of {batch}", module, x)  # says why
                return
            if outcome.value.shape != x.shape:
                feedback.fail(
                    f"DropPath on a batch of {batch}: output shape {shape(outcome.value)}."
                )
                return
            dropped += int((outcome.value == 0).all(dim=1).sum())
            total += batch
    fraction = dropped / total  # standard error 0.014 for 900 coins at drop_prob 0.25
    if abs(fraction - DROP_PROB) > 0.1:
        feedback.fail(
            f"on batches of 1 and 2 samples, {fraction:.0%} of the samples were dropped in "
            f"{2 * SMALL_BATCH_CALLS} calls, expected about {DROP_PROB:.0%}: the number of "
            "dropped samples must not be fixed by the batch size (round(drop_prob * B) is 0 "
            "for a batch of 1 or 2); every sample gets its own coin, whatever the batch size."
        )
        return
    feedback.ok("batches of 1 and 2 are dropped as often as large ones: one coin per sample")


def _check_dtypes(feedback: Feedback, module) -> None:
    """float64 and bfloat16 inputs: same dtype out, whole samples dropped, the kept rescaled."""
    module.train()
    keep_prob = 1.0 - DROP_PROB
    for dtype in (torch.float64, torch.bfloat16):
        x = _positive(400, 3).to(dtype)
        ok, out = call_and_check(
            feedback,
            f"DropPath({DROP_PROB}) on x (400, 3) of {dtype}",
            module,
            x,
            expected=x,
            inputs={"x": x},
            shape_hint=_shape_hint,
            dtype_hint=(
                "keep the input's dtype: a mask made in float32 (a .float() conversion, or "
                "torch.ones or torch.zeros without a dtype) turns a bfloat16 input into "
                "float32; the mask must not change the input's dtype"
            ),
        )
        if not ok:
            return
        out = out.detach().double()
        kept = (out != 0).all(dim=1)
        whole = kept | (out == 0).all(dim=1)
        rescaled = torch.allclose(out[kept], x.double()[kept] / keep_prob, rtol=1e-2)
        if not whole.all() or not kept.any() or not rescaled:
            feedback.fail(
                f"on {dtype} input the samples are not each dropped whole or kept and divided by "
                "keep_prob, as they are for float32: compute in the input's dtype."
            )
            return
    feedback.ok("float64 and bfloat16 inputs keep their dtype, one draw per sample, rescaled")
