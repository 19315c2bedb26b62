"""Writing a run's files so that a full disk, a quota or a kill never costs what is written.

Every file a run writes goes through two functions:

- `write_atomic(data, path, what)`: the bytes go into a temporary file in the same folder,
  are flushed to the disk (`fsync`), and the file is renamed over `path`. A rename within one
  file system is atomic, so `path` is always the old complete file or the new one.
- `append_line(path, line, what)`: one line at the end of a file (the metrics), flushed to the
  disk; if the write fails, the file is cut back to its old length, so no half line remains.

The caller serializes first (`torch.save` into memory), so the size is known before anything
is written. When the disk is full or a quota or file-size limit is reached (`ENOSPC`,
`EDQUOT`, `EFBIG`), the temporary file is removed and `DiskFullError` says what was being
written, how many bytes it needs and how much is free, and that the old file is intact.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import MixerEduError

SPACE_ERRORS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


class DiskFullError(MixerEduError, OSError):
    """A file could not be written for lack of space (disk full, quota, file-size limit)."""


def size_text(count: int) -> str:
    """`1.2 MB`, `340 kB`, `512 bytes`: sizes as a person reads them (powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def _space_error(error: OSError, path: Path, what: str, size: int) -> DiskFullError:
    try:
        free = f"{size_text(shutil.disk_usage(path.parent).free)} free"
    except OSError:
        free = "free space unknown"
    reason = {errno.EFBIG: "a file-size limit"}.get(error.errno, "a full disk or a quota")
    return DiskFullError(
        error.errno,
        f"could not write {what} ({path}, {size_text(size)}) because of {reason} "
        f"({error.strerror}; {free}). The files "
        f"written before are intact. Free at least {size_text(size)} there (old runs in "
        "runs/ are the usual culprits), then continue with --resume (resume=True).",
    )


def _write_all(fd: int, data: bytes) -> None:
    """`os.write` until every byte is written (one call may write fewer)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` survive a power cut (POSIX; Windows has no folder handles)."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder; the data itself is synced
        pass
    finally:
        os.close(fd)


def write_atomic(data: bytes, path: str | Path, what: str) -> Path:
    """Replace `path` by a file holding `data`, all or nothing (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            _write_all(handle, data)
            os.fsync(handle)  # the bytes are on disk before the rename makes them visible
        finally:
            os.close(handle)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a run's files are shared
        os.replace(tmp, path)
    except BaseException as error:  # also Ctrl-C: remove the partial temporary, keep the old file
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in SPACE_ERRORS:
            raise _space_error(error, path, what, len(data)) from None
        raise
    _sync_folder(path.parent)
    return path


def write_json(obj, path: str | Path, what: str) -> Path:
    """`obj` as indented JSON through `write_atomic`, creating the folder if need be."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic((json.dumps(obj, indent=1) + "\n").encode(), path, what)


def append_line(path: str | Path, line: str, what: str) -> None:
    """Add `line` (and a newline) at the end of `path`, whole or not at all."""
    path = Path(path)
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        length = os.fstat(fd).st_size
        try:
            _write_all(fd, data)
            os.fsync(fd)  # the line is on disk before the checkpoint that it describes
        except BaseException as error:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, length)  # no half line left behind
            if isinstance(error, OSError) and error.errno in SPACE_ERRORS:
                raise _space_error(error, path, what, len(data)) from None
            raise
    finally:
        os.close(fd)
