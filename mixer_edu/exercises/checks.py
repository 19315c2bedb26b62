"""The checks every checker opens with, and the gradient check they end with.

Before a checker can say anything about the *idea* of an exercise (the patch order, the axis a
MLP mixes), the student's answer has to be a usable tensor. `call_and_check` runs the student's
function once and checks, in this order, each with its own line of feedback:

1. the call finished (no exception, no exit, within the time limit: `Feedback.call`);
2. it returned a tensor;
3. of the expected dtype (an integer or half-precision result would break the next cell);
4. on the input's device;
5. of the expected shape (the checker adds why, when it can tell);
6. the inputs were not changed in place, nor the weights of the modules it was given;
7. no NaN or inf where the reference has none.

The reference output is computed *before* the student's call, on a copy, so an answer that
changes the given layer's weights cannot make its own reference agree with it.

`check_values` then compares the values with the reference's, and names the mistake when they
differ. `check_gradients` then runs a backward pass through the student's code and checks that every
parameter receives a gradient: a layer cut off from the graph could never learn.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .feedback import Feedback, check_is_tensor, close, max_difference, shape


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy of `module` for computing the reference, unaffected by what the student does."""
    return copy.deepcopy(module)


class Snapshot:
    """What student code was given, to detect what it changed: the input tensors' values, and for
    each module its layers, their train/eval modes, and its parameters (the same objects, their
    values, dtypes and `requires_grad`) and buffers."""

    def __init__(self, inputs: dict[str, Tensor], modules: dict[str, nn.Module]):
        self.inputs = {name: (x, x.detach().clone()) for name, x in inputs.items()}
        self.modules = {
            name: (module, {k: v.detach().clone() for k, v in module.state_dict().items()})
            for name, module in modules.items()
        }
        self.layers = {name: _layers(module) for name, module in modules.items()}

    def changed_input(self) -> str | None:
        for name, (tensor, saved) in self.inputs.items():
            if tensor.shape != saved.shape or not _equal(tensor.detach(), saved):
                return name
        return None

    def changed_weight(self) -> tuple[str, str] | None:
        for name, (module, saved) in self.modules.items():
            now = module.state_dict()
            for key, value in saved.items():
                if key not in now or now[key].shape != value.shape:
                    return name, key
                if not _equal(now[key].detach(), value):
                    return name, key
        return None

    def changed_layers(self) -> str | None:
        """How the modules' layers, modes or parameter settings changed, in words; or None."""
        for name, (module, _) in self.modules.items():
            before, now = self.layers[name], _layers(module)
            for path in [*before, *(path for path in now if path not in before)]:
                where = f"{name}.{path}" if path else f"the {name}"
                prefix = f"{name}.{path}." if path else f"{name}."
                if path not in now or path not in before:
                    return f"replaced or removed layers of the {name} ({where})"
                (layer, training, parameters), (layer_now, training_now, parameters_now) = (
                    before[path],
                    now[path],
                )
                if layer_now is not layer:
                    return f"replaced {where} with another layer"
                if training_now != training:
                    return (
                        f"switched {where} to {'training' if training_now else 'evaluation'} "
                        f"mode (it was in {'training' if training else 'evaluation'} mode): a "
                        ".train() or .eval() call changes the caller's model, and with dropout "
                        "or DropPath its outputs"
                    )
                for key, (tensor, requires_grad, dtype) in parameters.items():
                    now_tensor = parameters_now.get(key)
                    if now_tensor is None or now_tensor[0] is not tensor:
                        return f"replaced the parameter {prefix}{key} with a new tensor"
                    if now_tensor[1] != requires_grad:
                        return (
                            f"switched requires_grad {'on' if now_tensor[1] else 'off'} for "
                            f"{prefix}{key}, so the caller's training would "
                            + ("train it" if now_tensor[1] else "no longer train it")
                        )
                    if now_tensor[2] != dtype:
                        return f"converted {prefix}{key} from {dtype} to {now_tensor[2]}"
        return None


def _layers(module: nn.Module) -> dict:
    """path -> (layer, its mode, {parameter name: (tensor, requires_grad, dtype)})."""
    return {
        path: (
            layer,
            layer.training,
            {
                key: (value, value.requires_grad, value.dtype)
                for key, value in layer.named_parameters(recurse=False)
            },
        )
        for path, layer in module.named_modules(remove_duplicate=False)
    }


def _equal(a: Tensor, b: Tensor) -> bool:
    """Same dtype and values (NaN equal to NaN: a NaN weight left as it was is unchanged)."""
    return a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b) or (
        a.is_floating_point() and torch.equal(a.isnan(), b.isnan())
        and torch.equal(a.nan_to_num(), b.nan_to_num())
    ))  # fmt: skip


def check_unchanged(feedback: Feedback, what: str, snapshot: Snapshot) -> bool:
    """Fail if student code changed an input tensor or a given module (layers, modes, weights)."""
    name = snapshot.changed_input()
    if name is not None:
        return feedback.fail(
            f"{what} changed its input {name} in place (with +=, *=, a method ending in _, or "
            "an assignment into a slice), so the caller's tensor is overwritten; build the "
            "result as a new tensor."
        )
    layers = snapshot.changed_layers()
    if layers is not None:
        return feedback.fail(
            f"{what} {layers}. Code that computes with a module it was given must leave it as "
            "it found it: its layers, their mode and their parameters belong to the caller."
        )
    changed = snapshot.changed_weight()
    if changed is not None:
        module, key = changed
        return feedback.fail(
            f"{what} changed the weights of the {module} it was given ({key}) in place: a "
            "layer's weights may only change in the optimizer's step; compute with a masked "
            "or modified copy instead, and leave the parameter itself alone."
        )
    return True


def check_output(
    feedback: Feedback,
    what: str,
    out,
    expected: Tensor,
    shape_hint: Callable[[Tensor], str] | None = None,
    finite_hint: str | None = None,
    dtype_hint: str | None = None,
) -> bool:
    """Checks 2-5 and 7 of the module docstring on the student's `out`."""
    if not check_is_tensor(feedback, out, what):
        return False
    if out.dtype != expected.dtype:
        hint = dtype_hint or (
            "keep the input's precision (look for .long(), .int(), .half(), .double(), .float(), "
            "integer division //, or a mask or table made in another dtype)"
        )
        return feedback.fail(
            f"{what} returned a tensor of dtype {out.dtype}, expected {expected.dtype} (the "
            f"input's): {hint}."
        )
    if out.device != expected.device:
        return feedback.fail(
            f"{what} returned a tensor on {out.device}, but its input is on {expected.device}: "
            "create new tensors on the input's device (device=x.device)."
        )
    if out.shape != expected.shape:
        why = shape_hint(out) if shape_hint is not None else None
        if 1 in expected.shape and out.shape == tuple(n for n in expected.shape if n != 1):
            why = (
                "for an input with an axis of size 1 (a batch of one image), the result lost "
                "that axis: .squeeze() with no argument removes every axis of size 1; name the "
                "axis (.squeeze(1)) or use .reshape / .flatten with explicit sizes"
            )
        message = f"{what}: output shape {shape(out)}, expected {shape(expected)}"
        return feedback.fail(f"{message}; {why}." if why else f"{message}.")
    bad = ~torch.isfinite(out.detach()) & torch.isfinite(expected)
    if bad.any():
        where = tuple(int(i) for i in bad.nonzero()[0])
        hint = finite_hint or "look for a division by zero, log(0), or -inf used as a weight"
        return feedback.fail(
            f"{what}: the output contains NaN or inf (first at index {where}) where the "
            f"reference is finite: {hint}."
        )
    return True


def call_and_check(
    feedback: Feedback,
    what: str,
    function: Callable,
    *args,
    expected: Tensor,
    inputs: dict[str, Tensor] | None = None,
    modules: dict[str, nn.Module] | None = None,
    hint: Callable[[BaseException], str | None] | None = None,
    shape_hint: Callable[[Tensor], str] | None = None,
    finite_hint: str | None = None,
    dtype_hint: str | None = None,
):
    """Run `function(*args)` and make the opening checks: `(True, out)` or `(False, None)`.

    `expected` is the reference output, computed before this call; `inputs` and `modules` name
    what the student's code must not change (e.g. `{"x": x}`, `{"mlp": mlp}`).
    """
    snapshot = Snapshot(inputs or {}, modules or {})
    ok, out = feedback.call(what, function, *args, hint=hint)
    if not ok or not check_output(
        feedback, what, out, expected, shape_hint, finite_hint, dtype_hint
    ):
        return False, None
    if not check_unchanged(feedback, what, snapshot):
        return False, None
    return True, out


def check_gradients(
    feedback: Feedback,
    what: str,
    forward: Callable[[], Tensor],
    parameters: dict[str, Tensor],
    passed: str,
    group: Callable[[str], str] = lambda name: name,
) -> bool:
    """Backward through `forward()` (student code); every tensor in `parameters` needs a gradient.

    Args:
        forward: runs the student's code on fixed inputs and returns its output.
        parameters: name -> leaf tensor that must receive a gradient.
        passed: the line printed when every parameter gets one.
        group: maps a parameter name to what the feedback calls it (e.g. its layer).
    """
    for tensor in parameters.values():
        tensor.grad = None
    ok, out = feedback.call(what, forward)
    if not ok or not check_is_tensor(feedback, out, what):
        return False
    if not out.requires_grad:
        return feedback.fail(
            f"{what}: the result has no gradient: it is cut off from the weights (no "
            ".detach(), .data, .item(), .numpy() or torch.no_grad() in your code), so nothing "
            "before it could learn."
        )
    direction = torch.randn(out.shape, dtype=out.dtype)  # a random mix of every output number
    ok, _ = feedback.call(
        f"the backward pass through {what}", lambda: (out * direction).sum().backward()
    )
    if not ok:
        return False
    starved = [
        name
        for name, tensor in parameters.items()
        if tensor.grad is None or not torch.isfinite(tensor.grad).all() or not tensor.grad.any()
    ]
    if starved:
        names = ", ".join(dict.fromkeys(group(name) for name in starved))
        return feedback.fail(
            f"no gradient reaches {names}: something between it and the output cuts the "
            "autograd graph (.detach(), .data, torch.no_grad(), a NumPy round trip, or a copy "
            "made with torch.tensor(...)), or it is never used, so it cannot learn."
        )
    return feedback.ok(passed)


def check_values(
    feedback: Feedback,
    label: str,
    out: Tensor,
    expected: Tensor,
    diagnose: Callable[[Tensor], str],
    passed: str,
) -> bool:
    """Pass with `passed` if `out` is close to `expected`; else fail with `label: diagnose(out).`

    Args:
        feedback: where the line goes.
        label: the case, e.g. `"x (2, 16, 5) with Mlp(16, 8)"`.
        out: the student's output; `expected`: the reference's.
        diagnose: given the student's (detached) output, what went wrong, without the solution.
        passed: the whole line printed when the values agree.
    """
    out = out.detach()
    if close(out, expected):
        return feedback.ok(passed)
    try:
        hint = diagnose(out)
    except Exception:  # noqa: BLE001 - a diagnosis that cannot run for this case
        difference, where = max_difference(out, expected)
        hint = (
            f"the output differs from the reference (largest difference {difference:.3g} at "
            f"index {where})"
        )
    return feedback.fail(f"{label}: {hint}.")


def first_match(out: Tensor, candidates) -> str | None:
    """The hint of the first `(compute, hint)` in `candidates` whose result equals `out`.

    A candidate that cannot be computed for this case (a mistake that only runs when N == C)
    or has another shape is skipped: explaining a mistake must never crash the checker.
    """
    with torch.no_grad():
        for compute, hint in candidates:
            try:
                mistaken = compute()
            except Exception:  # noqa: BLE001, S112 - that mistake cannot happen here
                continue
            if (
                isinstance(mistaken, Tensor)
                and mistaken.shape == out.shape
                and close(out, mistaken)
            ):
                return hint
    return None
