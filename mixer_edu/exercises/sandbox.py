"""Run a student's code so that the checker always gets back control, and a verdict.

A checker calls the student's function many times. Whatever that function does, the checker must
finish and print its feedback, so every call goes through `run_student_code`, which

- stops it after a time limit (an infinite loop becomes "did not finish in 5 s");
- catches every exception, including `SystemExit` from `sys.exit()`, `exit()` or `quit()`, which
  would otherwise end the checker (in a script, the whole program) with no verdict;
- captures what it prints (stdout and stderr, warnings included), so that a flood of prints does
  not bury the feedback and nothing reaches stderr, which nbgrader scores as a failed test.

- caps what it keeps of that output (`OUTPUT_KEPT` characters), so that printing megabytes
  costs neither the memory nor the time to show it: the count of lines and bytes is kept;
- puts back, after every call, the global state that student code may change and the checker
  relies on (`GlobalState`): the default dtype, the grad mode, the deterministic-algorithm
  flags, the thread count, and any attribute of `torch`, `torch.nn`, `torch.nn.functional`,
  `torch.Tensor` or `numpy` it replaced (a monkeypatched `torch.matmul`). What it changed is
  named in `Outcome.restored`. The random generators are put back once per checker
  (`feedback.isolated`), not per call: a DropPath must draw new coins on every call.

A real Ctrl-C (SIGINT: the student pressed stop) is let through, and means it. A
`KeyboardInterrupt` that the student's code raises itself is reported like any exception.

**How the time limit works, and why.** In Jupyter (ipykernel) and in a script, cells run in the
process's main thread. There, on Linux and macOS, a POSIX interval timer (`signal.setitimer`)
sends SIGALRM when time is up, and its handler raises `TimeLimitExceeded` *inside* the student's
code: the loop really stops, and the kernel is left clean. The exception derives from
`BaseException`, so a student's `except Exception:` cannot swallow it, and the timer keeps firing
every 0.1 s until the call has ended: if a bare `except:` swallowed it, the next one sets a
trace function (as a debugger does) that raises it again on every line of the student's code.
Where no such timer exists (Windows) or the checker runs outside the main thread (signals only
reach the main thread), the call runs in a daemon thread that the checker waits for; after the
limit it reports the same verdict, but Python cannot stop a thread, so the runaway loop keeps a
CPU core busy until the kernel is restarted, which the feedback then says. A subprocess would
stop anything, but would have to pickle the student's function, which fails for functions
defined in a notebook.
"""

from __future__ import annotations

import contextlib
import io
import signal
import sys
import threading
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

# Seconds one call of student code may take. The checkers' inputs are tiny: correct code,
# even a Python loop over every pixel, takes milliseconds; tests lower this to stay fast.
TIME_LIMIT = 5.0


class TimeLimitExceeded(BaseException):
    """Raised inside student code when its time is up (a BaseException: hard to swallow)."""


# Characters of printed output kept for the feedback; the rest is only counted.
OUTPUT_KEPT = 20_000


class CappedOutput(io.TextIOBase):
    """A text stream that keeps the first `OUTPUT_KEPT` characters and counts all of them."""

    def __init__(self):
        self.kept = io.StringIO()
        self.characters = 0
        self.lines = 0

    def writable(self) -> bool:
        return True

    def write(self, text) -> int:
        text = str(text)
        room = OUTPUT_KEPT - self.kept.tell()
        if room > 0:
            self.kept.write(text[:room])
        self.characters += len(text)
        self.lines += text.count("\n")
        return len(text)


# The modules whose attributes student code must not leave replaced.
PATCHABLE = ("torch", "torch.nn", "torch.nn.functional", "torch.Tensor", "numpy")


class GlobalState:
    """torch's and NumPy's global settings now; `restore()` puts them back, naming what changed."""

    def __init__(self):
        import numpy
        import torch

        self.targets = {
            "torch": torch, "torch.nn": torch.nn, "torch.nn.functional": torch.nn.functional,
            "torch.Tensor": torch.Tensor, "numpy": numpy,
        }  # fmt: skip
        self.attributes = {name: dict(vars(target)) for name, target in self.targets.items()}
        self.settings = {name: get() for name, (get, _) in _settings().items()}

    def restore(self) -> list[str]:
        """Put everything back; returns what student code had changed (e.g. `torch.matmul`)."""
        changed = []
        for name, (get, put) in _settings().items():
            if get() != self.settings[name]:
                put(self.settings[name])
                changed.append(name)
        for name, target in self.targets.items():
            before, now = self.attributes[name], dict(vars(target))
            for key, value in before.items():
                if now.get(key, _MISSING) is not value:
                    setattr(target, key, value)
                    changed.append(f"{name}.{key}")
            for key in now.keys() - before.keys():
                if not isinstance(now[key], types.ModuleType):  # torch imports submodules lazily
                    delattr(target, key)
                    changed.append(f"{name}.{key}")
        return changed


_MISSING = object()


def _settings() -> dict:
    """name -> (read it, set it) for each global setting of torch that student code may change."""
    import torch

    def set_deterministic(value):
        torch.use_deterministic_algorithms(value[0], warn_only=value[1])

    return {
        "torch.get_default_dtype()": (torch.get_default_dtype, torch.set_default_dtype),
        "the grad mode (torch.is_grad_enabled())": (
            torch.is_grad_enabled, torch.set_grad_enabled
        ),
        "torch.are_deterministic_algorithms_enabled()": (
            lambda: (
                torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(),
            ),
            set_deterministic,
        ),
        "torch.backends.cudnn.deterministic": (
            lambda: torch.backends.cudnn.deterministic,
            lambda value: setattr(torch.backends.cudnn, "deterministic", value),
        ),
        "torch.backends.cudnn.benchmark": (
            lambda: torch.backends.cudnn.benchmark,
            lambda value: setattr(torch.backends.cudnn, "benchmark", value),
        ),
        "torch.get_num_threads()": (torch.get_num_threads, torch.set_num_threads),
        "torch.get_float32_matmul_precision()": (
            torch.get_float32_matmul_precision, torch.set_float32_matmul_precision
        ),
        "torch.is_anomaly_enabled()": (torch.is_anomaly_enabled, torch.set_anomaly_enabled),
    }  # fmt: skip


@dataclass
class Outcome:
    """What happened when student code ran: at most one of `error`, `exit_code` and `timed_out`."""

    value: object = None
    error: Exception | None = None
    exited: bool = False
    exit_code: object = None
    timed_out: bool = False
    abandoned: bool = False  # timed out in a thread that is still running
    output: str = ""  # the first OUTPUT_KEPT characters of what it printed
    output_size: int = 0  # characters it printed in all
    output_lines: int = 0
    restored: list = field(default_factory=list)  # global state it changed, now put back

    @property
    def ok(self) -> bool:
        return self.error is None and not self.exited and not self.timed_out


def _can_use_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _run(function: Callable, args, kwargs, outcome: Outcome) -> None:
    """Call `function`, recording its value or what stopped it in `outcome`."""
    try:
        outcome.value = function(*args, **kwargs)
    except TimeLimitExceeded:
        outcome.timed_out = True
    except SystemExit as exit_:
        outcome.exited, outcome.exit_code = True, exit_.code
    except KeyboardInterrupt as error:
        if _pressed_stop:  # a real Ctrl-C: the student means it
            raise
        outcome.error = error  # raised by the student's code itself: feedback
    except Exception as error:  # noqa: BLE001 - any bug in student code becomes feedback
        outcome.error = error


# Set by the SIGINT handler while student code runs in the main thread: a real Ctrl-C.
_pressed_stop: list = []


@contextlib.contextmanager
def _note_ctrl_c():
    """While the block runs, a SIGINT is noted (then raises KeyboardInterrupt, as always)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def pressed(signum, frame):
        _pressed_stop.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, pressed)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _pressed_stop.clear()


def _raise_on_every_line(frame) -> list:
    """Make each line the student's code runs raise `TimeLimitExceeded` (it swallowed one).

    Sets a trace function on the student's frames (those between here and `_run`), as a
    debugger does; returns the frames, so that the caller can take it off again.
    """

    def tracer(frame, event, arg):
        if event == "line" and frame.f_code.co_filename != __file__:
            raise TimeLimitExceeded
        return tracer

    frames = []
    while frame is not None and frame.f_code is not _run.__code__:
        frame.f_trace = tracer
        frames.append(frame)
        frame = frame.f_back
    sys.settrace(tracer)
    return frames


def _with_alarm(function, args, kwargs, outcome: Outcome, seconds: float) -> None:
    traced: list = []
    debugger = sys.gettrace()

    fired: list = []

    def time_is_up(signum, frame):
        if fired:  # it fired before and the code is still running: it caught the exception
            traced.extend(_raise_on_every_line(frame))
        fired.append(True)
        raise TimeLimitExceeded

    previous = signal.signal(signal.SIGALRM, time_is_up)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, seconds, 0.1)  # then every 0.1 s until disarmed
            _run(function, args, kwargs, outcome)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            if traced:
                sys.settrace(debugger)
                for frame in traced:
                    frame.f_trace = None
    except TimeLimitExceeded:  # fired between the student's return and the disarm
        outcome.timed_out = True


def _in_thread(function, args, kwargs, outcome: Outcome, seconds: float) -> None:
    thread = threading.Thread(target=_run, args=(function, args, kwargs, outcome), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        outcome.timed_out = outcome.abandoned = True


def run_student_code(function: Callable, *args, seconds: float | None = None, **kwargs) -> Outcome:
    """Run `function(*args, **kwargs)` with a time limit, shielded from exits, output captured."""
    seconds = TIME_LIMIT if seconds is None else seconds
    outcome = Outcome()
    buffer = CappedOutput()
    state = GlobalState()
    try:
        with (
            contextlib.redirect_stdout(buffer),
            contextlib.redirect_stderr(buffer),
            warnings.catch_warnings(record=True) as caught,
            _note_ctrl_c(),
        ):
            warnings.simplefilter("always")  # every warning is recorded, not only the first
            if _can_use_alarm():
                _with_alarm(function, args, kwargs, outcome, seconds)
            else:
                _in_thread(function, args, kwargs, outcome, seconds)
    finally:
        if not outcome.abandoned:  # a thread still running could change it again anyway
            outcome.restored = state.restore()
    for w in caught[:100]:
        buffer.write(f"{w.category.__name__}: {w.message}\n")
    outcome.output = buffer.kept.getvalue()
    outcome.output_size, outcome.output_lines = buffer.characters, buffer.lines
    return outcome


def summarize_output(
    text: str, lines: int = 3, width: int = 100, total: int | None = None
) -> list[str]:
    """At most `lines` lines of `text`, each cut to `width` characters, and a count of the rest
    (of `total` lines, when `text` is only the start of what was printed)."""
    all_lines = text.rstrip("\n").splitlines()
    shown = [line if len(line) <= width else line[: width - 3] + "..." for line in all_lines]
    shown = shown[:lines]
    total = max(total or 0, len(all_lines))
    if total > lines:
        shown.append(f"... and {total - lines:,} more lines")
    return shown
