"""Expected failures, and how the command lines report them.

A student's mistake (a bad option, a file that is not a checkpoint, a data set that is not on
disk, a learning rate so high that training blows up) is not a bug in the course. It should end
in one line that says what went wrong and what to do, not in a traceback. A bug in the course
should still show its traceback, so that it can be found and fixed.

- `MixerEduError` is the base of the package's own expected errors; a `ValueError` /
  `TypeError` (bad input, see `support.validation`) and an `OSError` (a file or folder that
  is missing, is a file where a folder is needed, or is not writable) are expected too.
- `command_line` wraps the `main(argv)` of every command (`python -m mixer_edu.train`, `viz`,
  `mlm`, `bench`, `standin`): an expected error becomes `error: ...` on stderr and exit status
  2; Ctrl-C becomes exit status 130; anything else keeps its traceback.
"""

from __future__ import annotations

import functools
import sys

# The exit status of a command that stopped on bad input (argparse uses the same).
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


class MixerEduError(Exception):
    """An expected failure whose message says what to do; never a bug in mixer_edu."""


class DatasetUnavailableError(MixerEduError, RuntimeError):
    """The data set is not on disk and could not be downloaded, or its files are unusable."""


class TrainingDivergedError(MixerEduError, RuntimeError):
    """The loss or the weights stopped being finite numbers (usually: the learning rate is too
    high); the checkpoint of the last finite epoch is kept."""


EXPECTED_ERRORS = (MixerEduError, ValueError, TypeError, OSError)


def error_line(error: BaseException) -> str:
    """`error: <message>` on one line (a message over several lines is joined)."""
    message = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    return f"error: {message or type(error).__name__}"


def command_line(main):
    """Decorate a command's `main(argv)` so that expected errors end in one line and status 2.

    The decorated `main` returns what `main` returned, `EXIT_BAD_INPUT` (2) after an expected
    error and `EXIT_INTERRUPTED` (130) after Ctrl-C. Run a command with `sys.exit(exit_status(
    main()))`.
    """

    @functools.wraps(main)
    def run(argv: list[str] | None = None):
        try:
            return main(argv)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except EXPECTED_ERRORS as error:
            print(error_line(error), file=sys.stderr)
            return EXIT_BAD_INPUT

    return run


def exit_status(result) -> int:
    """The process exit status for what a decorated `main` returned (0 for a non-int result)."""
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
