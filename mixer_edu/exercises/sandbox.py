"""Run a student's code so that the checker always gets back control, and a verdict.

A checker calls the student's function many times. Whatever that function does, the checker must
finish and print its feedback, so every call goes through `run_student_code`, which

- stops it after a time limit (an infinite loop becomes "did not finish in 5 s");
- catches every exception, including `SystemExit` from `sys.exit()`, `exit()` or `quit()`, which
  would otherwise end the checker (in a script, the whole program) with no verdict;
- captures what it prints (stdout and stderr, warnings included), so that a flood of prints does
  not bury the feedback and nothing reaches stderr, which nbgrader scores as a failed test.

`KeyboardInterrupt` is the one thing it lets through: the student pressed stop, and means it.

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
import warnings
from collections.abc import Callable
from dataclasses import dataclass

# Seconds one call of student code may take. The checkers' inputs are tiny: correct code,
# even a Python loop over every pixel, takes milliseconds; tests lower this to stay fast.
TIME_LIMIT = 5.0


class TimeLimitExceeded(BaseException):
    """Raised inside student code when its time is up (a BaseException: hard to swallow)."""


@dataclass
class Outcome:
    """What happened when student code ran: at most one of `error`, `exit_code` and `timed_out`."""

    value: object = None
    error: Exception | None = None
    exited: bool = False
    exit_code: object = None
    timed_out: bool = False
    abandoned: bool = False  # timed out in a thread that is still running
    output: str = ""

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
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 - any bug in student code becomes feedback
        outcome.error = error


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
    buffer = io.StringIO()
    with (
        contextlib.redirect_stdout(buffer),
        contextlib.redirect_stderr(buffer),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")  # every warning is recorded, not only the first
        if _can_use_alarm():
            _with_alarm(function, args, kwargs, outcome, seconds)
        else:
            _in_thread(function, args, kwargs, outcome, seconds)
    warned = "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)
    outcome.output = buffer.getvalue() + warned
    return outcome


def summarize_output(text: str, lines: int = 3, width: int = 100) -> list[str]:
    """At most `lines` lines of `text`, each cut to `width` characters, and a count of the rest."""
    all_lines = text.rstrip("\n").splitlines()
    shown = [line if len(line) <= width else line[: width - 3] + "..." for line in all_lines]
    shown = shown[:lines]
    if len(all_lines) > lines:
        shown.append(f"... and {len(all_lines) - lines} more lines")
    return shown
