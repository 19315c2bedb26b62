"""How a checker talks to a student: one line per check, a tick or a cross, and never a crash.

Every checker in `mixer_edu.exercises` follows the same pattern:

    feedback = Feedback("patchify")
    ok, out = feedback.call("patchify on 2 images 3x8x8", student_fn, images, 4)
    if not ok:
        return feedback.stop()                    # nothing else can be checked
    feedback.check(out.shape == expected, "right shape", "wrong shape: ...")
    return feedback.done()                         # prints the summary, returns True / False

The student's code runs inside `Feedback.call`, which goes through `sandbox.run_student_code`
(a time limit, exits shielded, output captured) and turns whatever went wrong into one readable
line: the error type, its message, and a hint when the checker recognises the mistake; a stub
that still raises `NotImplementedError` is reported as "not written yet". So a bug in the
student's code is reported, never raised. The checks every checker opens with (a tensor of the
right dtype, device and shape, inputs and weights unchanged) live in `checks`.

Hints name the mistake and the idea behind it ("the kept samples are not rescaled"), never the
code that fixes it.
"""

from __future__ import annotations

import contextlib
import random
import re
import types
from collections.abc import Callable, Iterator

import numpy as np
import torch

from . import sandbox

PASS = "✓"
FAIL = "✗"

# Relative and absolute tolerance when a student's float computation is compared with ours: a
# different but equivalent order of operations (einsum, @, a transpose) changes the last bits.
RTOL = 1e-4
ATOL = 1e-5


class Feedback:
    """Collects the results of one checker's checks and prints one line for each.

    Args:
        exercise: what is being checked, used in the summary line (e.g. `"patchify"`).
    """

    def __init__(self, exercise: str):
        self.exercise = exercise
        self.passed = 0
        self.failed = 0
        self.output_shown = False
        self.restored_shown = False

    def ok(self, message: str) -> bool:
        """Record and print a passed check; returns True."""
        print(f"{PASS} {message}")
        self.passed += 1
        return True

    def fail(self, message: str) -> bool:
        """Record and print a failed check with its hint; returns False."""
        print(f"{FAIL} {message}")
        self.failed += 1
        return False

    def check(self, condition: bool, passed: str, failed: str) -> bool:
        """Print `passed` with a tick if `condition` holds, else `failed` with a cross."""
        return self.ok(passed) if condition else self.fail(failed)

    def call(
        self,
        what: str,
        function: Callable,
        *args,
        hint: Callable[[BaseException], str | None] | None = None,
        **kwargs,
    ):
        """Run the student's `function(*args, **kwargs)`: `(True, result)` or `(False, None)`.

        The call goes through `sandbox.run_student_code`: a time limit, no exit, output captured.
        If it fails, print one line saying that `what` failed and why, with the hint that
        `hint(error)` returns (or a general one for autograd's in-place errors); then return
        `(False, None)`. The first time the student's code prints, show a few of its lines.
        """
        outcome = sandbox.run_student_code(function, *args, **kwargs)
        self._show_output(outcome)
        if outcome.restored and not self.restored_shown:
            self.restored_shown = True
            names = ", ".join(outcome.restored[:4]) + (", ..." if len(outcome.restored) > 4 else "")
            print(
                f"  (your code changed {names}, which the rest of the notebook relies on; the "
                "checker put it back. Change global settings outside your function, if at all.)"
            )
        if outcome.ok:
            return _plain_tensor(self, what, outcome.value)
        if outcome.timed_out:
            self.fail(_timeout_message(what, outcome.abandoned))
        elif outcome.exited:
            self.fail(
                f"{what} called sys.exit(), exit() or quit() (exit code {outcome.exit_code!r}): "
                "that would end the whole program; a function hands back its result with `return`."
            )
        elif isinstance(outcome.error, KeyboardInterrupt):
            self.fail(
                f"{what} raised KeyboardInterrupt itself: that exception means 'the stop button "
                "was pressed', so it would stop the whole notebook; raise a ValueError (or "
                "another Exception) to report a problem."
            )
        elif isinstance(outcome.error, NotImplementedError):
            self.fail(
                f"{what}: not written yet (it raises NotImplementedError). Replace the "
                "`raise NotImplementedError()` line with your code, then run this cell again."
            )
        else:
            error = outcome.error
            extra = (hint(error) if hint is not None else None) or autograd_hint(error)
            message = f"{what} raised {type(error).__name__}: {_first_line(error).rstrip('.')}"
            self.fail(f"{message}. {extra}." if extra else message)
        return False, None

    def _show_output(self, outcome: sandbox.Outcome) -> None:
        """Show the first few lines the student's code printed, once per checker."""
        text = outcome.output
        if not text.strip() or self.output_shown:
            return
        self.output_shown = True
        count = max(outcome.output_lines, len(text.rstrip("\n").splitlines()))
        lines = f"{count:,} line{'s' if count != 1 else ''}"
        if outcome.output_size > sandbox.OUTPUT_KEPT:
            lines += f", {outcome.output_size / 1e6:.1f} MB"
        print(f"  (your code printed {lines} while it was checked; the first of them:)")
        for line in sandbox.summarize_output(text, total=count):
            print(f"  | {line}")

    def stop(self) -> bool:
        """End early after a failed check that makes the remaining checks meaningless."""
        print("  (the remaining checks run once this one passes)")
        return self.done()

    def done(self) -> bool:
        """Print the summary line and return True only if every check passed."""
        if self.failed == 0:
            print(f"All {self.passed} checks passed for your {self.exercise}.")
            return True
        print(f"{self.exercise}: fix the first {FAIL} above, then run this cell again.")
        return False


@contextlib.contextmanager
def isolated(seed: int = 0) -> Iterator[None]:
    """Run a checker's block with torch seeded and on one thread, then restore everything.

    Seeded: the same student code always gets the same feedback, and running a checker does not
    change the random numbers the rest of the notebook draws: the states of torch's (CPU and
    CUDA), NumPy's and Python's generators are put back afterwards, even if student code
    reseeded them, as is every global setting `sandbox.GlobalState` knows. One thread: a
    checker's tensors are tiny, and on a busy 2-core machine waking a second thread for every
    small op made the Mixer-block checker 40x slower (1.2 s instead of 0.03 s, measured on the
    2-core VM).
    """
    state = sandbox.GlobalState()
    generators = random.getstate(), np.random.get_state()  # noqa: NPY002 - the notebook's own
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
            torch.manual_seed(seed)
            yield
    finally:
        state.restore()
        random.setstate(generators[0])
        np.random.set_state(generators[1])  # noqa: NPY002


@torch.no_grad()
def randomize_(
    module: torch.nn.Module, generator: torch.Generator | None = None
) -> torch.nn.Module:
    """Give every parameter random values, so that no mistake hides behind zeros or ones.

    A fresh Mixer layer has LayerNorm weights of 1, biases of 0 or 1e-6 (and a fresh model a zero
    head): a checker using those could not tell `x + f(x)` from `x + f(x) + bias`. Matrices get a
    standard deviation of 1 / sqrt(fan_in), as a trained network roughly has; vectors N(0, 0.5).
    Draws from `generator`, by default torch's global one (call inside `isolated`).
    """
    for parameter in module.parameters():
        scale = parameter[0].numel() ** -0.5 if parameter.ndim > 1 else 0.5
        parameter.normal_(0.0, scale, generator=generator)
    return module


def _timeout_message(what: str, abandoned: bool) -> str:
    message = (
        f"{what} did not finish within {sandbox.TIME_LIMIT:g} s, on inputs this small: look for a "
        "loop that never ends (a `while` whose condition never changes, or a loop that grows the "
        "list it walks through)"
    )
    if abandoned:
        message += "; it is still running in the background, so restart the kernel after fixing it"
    return message + "."


def autograd_hint(error: BaseException) -> str | None:
    """A hint for autograd's complaints about in-place operations, else None."""
    text = str(error)
    if "modified by an inplace operation" in text or "leaf Variable" in text:
        return (
            "An in-place operation (+=, *=, a method ending in _ such as relu_(), or an "
            "assignment into a slice) overwrote a tensor that autograd needs for the backward "
            "pass; compute a new tensor instead (y = y * mask, not y *= mask)"
        )
    return None


def broadcast_sizes(error: BaseException) -> tuple[int, int] | None:
    """The two sizes of PyTorch's broadcasting complaint ("the size of tensor a (4) must match
    the size of tensor b (6) ..."), or None: the checkers turn them into the exercise's terms."""
    found = re.search(
        r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)", str(error)
    )
    return (int(found.group(1)), int(found.group(2))) if found else None


def _first_line(error: BaseException, limit: int = 200) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else "(no message)"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def shape(x) -> str:
    """A tensor's shape as a plain tuple string, `(2, 4, 48)`; the type name for anything else."""
    if isinstance(x, torch.Tensor):
        return str(tuple(x.shape))
    return f"a {type(x).__name__}"


def check_is_tensor(feedback: Feedback, value, what: str) -> bool:
    """Fail with a clear line unless the student's `value` is a tensor."""
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, types.GeneratorType):
        return feedback.fail(
            f"{what} returned a generator, not a torch.Tensor: a `yield` anywhere in a function "
            "makes it a generator, whose code does not even run; use `return` to hand back the "
            "result."
        )
    if isinstance(value, np.ndarray):
        return feedback.fail(
            f"{what} returned a NumPy array of shape {value.shape}, not a torch.Tensor: a round "
            "trip through NumPy (.numpy(), np.*) leaves the device and cuts the autograd graph, "
            "so nothing before it could learn; stay with torch operations."
        )
    return feedback.fail(
        f"{what} returned {shape(value)}, not a torch.Tensor: return the tensor itself "
        "(check for a missing `return`, or a conversion to NumPy or a list)."
    )


def _plain_tensor(feedback: Feedback, what: str, value):
    """`(True, value)`, with a tensor subclass turned into a plain tensor: `(False, None)` if
    that fails. A subclass may override every operation, so the checker would not be checking
    the numbers (or could itself crash); its values and gradient are the same as a tensor."""
    if not isinstance(value, torch.Tensor) or type(value) in (torch.Tensor, torch.nn.Parameter):
        return True, value
    try:
        with torch._C.DisableTorchFunctionSubclass():
            return True, torch.Tensor.as_subclass(value, torch.Tensor)
    except Exception as error:  # noqa: BLE001 - a subclass can break anything
        feedback.fail(
            f"{what} returned a {type(value).__name__} (a subclass of torch.Tensor) that cannot "
            f"be read as a plain tensor ({type(error).__name__}); return an ordinary tensor."
        )
        return False, None


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape and equal up to float rounding (`RTOL`, `ATOL`)."""
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=RTOL, atol=ATOL)


def max_difference(a: torch.Tensor, b: torch.Tensor) -> tuple[float, tuple[int, ...]]:
    """The largest absolute difference between two same-shaped tensors, and where it is."""
    diff = (a.detach().double() - b.detach().double()).abs()
    index = torch.unravel_index(diff.argmax(), diff.shape)
    return diff.max().item(), tuple(int(i) for i in index)
