"""One live training run per output folder.

Two runs writing into one folder (two kernels on notebook 04, two terminals, two "rank 0"s
started by hand) would interleave their checkpoints and metrics lines. `run_lock(out)` holds
an exclusive lock on `out/.run.lock` for as long as a run writes there; a second run is refused
at once with a `RunFolderBusyError` that names the first (process id, host, start time and
command, which the holder writes into the lock file).

The lock is the operating system's, not the file's existence: `fcntl.flock` on Linux and macOS,
`msvcrt.locking` on Windows. The kernel releases it when the process ends, however it ends
(`kill -9`, a crashed kernel, a power cut), so a dead run never blocks the next one; the file
itself stays behind, harmless, and is reused.

Network folders: on NFS, Linux emulates `flock` with NFS byte-range locks, which work between
machines only when the server's lock service runs; a file system that refuses locks outright
(`ENOLCK`, `EOPNOTSUPP`, some SMB and FUSE mounts) gets a printed warning and the run goes
ahead unprotected, rather than never starting.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from .errors import MixerEduError
from .paths import check_folder, writable_folder

LOCK_NAME = ".run.lock"
# Byte 0 is the one locked (on Windows a locked byte cannot be read); the holder's description
# is written after it, where another process can read it.
_INFO_OFFSET = 1
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


class RunFolderBusyError(MixerEduError, RuntimeError):
    """Another live run is writing into the same output folder."""


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock without waiting: True, or False when another process holds it."""
    try:
        if os.name == "nt":
            import msvcrt

            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in _NO_LOCKS:
            raise
        return False  # EWOULDBLOCK / EAGAIN / EACCES (Windows): held by someone else
    return True


def _unlock(fd: int) -> None:
    if os.name == "nt":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


def _holder(path: Path) -> str:
    """'process 4242 on host lab-3, started 2025-01-01 10:00:00, command: ...' from the file."""
    try:
        with open(path, "rb") as f:
            f.seek(_INFO_OFFSET)
            info = json.loads(f.read().decode("utf-8"))
        return (
            f"process {info['pid']} on host {info['host']}, started {info['started']}, "
            f"command: {info['command']}"
        )
    except (OSError, ValueError, KeyError, TypeError):  # written this very moment: no details
        return "a process that is starting up"


def _describe_me() -> bytes:
    command = " ".join(sys.argv) if any(sys.argv) else sys.executable
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": command[:300],
    }
    return json.dumps(info).encode("utf-8")


@contextlib.contextmanager
def run_lock(out: str | Path, enabled: bool = True) -> Iterator[None]:
    """Hold the lock of the run folder `out` (creating it) while the block runs.

    `enabled=False` (every rank but 0 under torchrun) does nothing. A folder this call created
    is removed again when the block ends having written nothing else into it, so that a run
    stopped by bad input leaves nothing behind.

    Raises:
        RunFolderBusyError: a live run holds `out`; the message names it.
        ValueError / PermissionError: `out` is a file or cannot be written
            (`mixer_edu.support.paths`).
    """
    if not enabled:
        yield
        return
    out = check_folder(out, "the output folder (out, --out)")
    created = not out.exists()
    writable_folder(out, "the output folder (out, --out)")
    path = out / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    locked = None
    try:
        try:
            locked = _try_lock(fd)
        except OSError as error:  # a file system without locks: warn, and run unprotected
            warnings.warn(
                f"cannot lock {path} ({error.strerror}): this file system has no locks, so "
                "nothing stops a second run from writing into the same folder.",
                stacklevel=3,
            )
            locked = None
        if locked is False:
            raise RunFolderBusyError(
                f"{out} is in use by another training run ({_holder(path)}); wait for it to "
                "finish or stop it, or choose another output folder (--out, out=...)."
            )
        os.ftruncate(fd, _INFO_OFFSET)
        os.lseek(fd, _INFO_OFFSET, os.SEEK_SET)
        os.write(fd, _describe_me())
        try:
            yield
        finally:
            if locked:
                os.ftruncate(fd, _INFO_OFFSET)  # no stale description once the run is over
                _unlock(fd)
    finally:
        os.close(fd)
        # Only the holder may remove the lock file: another run may be holding it.
        if locked and created and [p.name for p in out.iterdir()] == [LOCK_NAME]:
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                out.rmdir()
