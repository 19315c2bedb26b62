"""Start the course the way `make course` does (`tools/course.py`), for the tests that need it.

The server runs without a browser, in its own Jupyter runtime, config and settings folders, so
that neither a Jupyter already running on this machine nor its user's settings change the result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tests.optional import need

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "tools" / "course.py"
PREFIX = "Open the course:"  # tools/course.py prints the URL after this


@dataclass
class Course:
    process: subprocess.Popen
    url: str  # the URL the launcher printed, token included
    log: Path
    returncode: int | None = None
    leftovers: list = field(default_factory=list)  # psutil.Process objects

    @property
    def base(self) -> str:
        """'http://localhost:8888'"""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def token(self) -> str:
        return self.url.partition("token=")[2]

    def get(self, path: str) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.base + path, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()

    def get_json(self, path: str) -> dict:
        status, body = self.get(path)
        assert status == 200, (path, status)
        return json.loads(body)


def _wait_for_url(process: subprocess.Popen, log: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith(PREFIX):
                return line.removeprefix(PREFIX).strip()
        if process.poll() is not None:
            raise AssertionError(f"the course stopped ({process.returncode}):\n{log.read_text()}")
        time.sleep(0.2)
    raise AssertionError(f"no '{PREFIX}' line after {timeout} s:\n{log.read_text()}")


@contextmanager
def running_course(
    home: Path, *arguments: str, env: dict[str, str] | None = None, timeout: float = 90
) -> Iterator[Course]:
    """Run `tools/course.py --no-browser *arguments` until the block ends, then stop it.

    After the block, `course.returncode` is the launcher's exit code and `course.leftovers` lists
    the processes it started (server, kernels) that were still alive 15 s after it stopped.
    Needs JupyterLab's server and psutil: skips (or fails under `make test`) without them.
    """
    need("jupyter_server", "JupyterLab: pip install -e .")
    psutil = need("psutil")
    folders = {
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "JUPYTERLAB_SETTINGS_DIR": "user-settings",
        "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
    }
    environment = {**os.environ, **{key: str(home / name) for key, name in folders.items()}}
    environment.update(env or {})
    log = home / "course.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, str(LAUNCHER), *arguments, "--no-browser"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=ROOT,
        )
    course = Course(process, "", log)
    try:
        course.url = _wait_for_url(process, log, timeout)
        yield course
    finally:
        try:
            started = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:  # the launcher had stopped already
            started = []
        process.terminate()
        course.returncode = process.wait(timeout=30)
        _, course.leftovers = psutil.wait_procs(started, timeout=15)
        for leftover in course.leftovers:
            leftover.kill()
