"""Open the course in JupyterLab, set up from the settings in this repository.

    python tools/course.py                 # what `make course` runs; conda users type this
    python tools/course.py --no-browser    # print the URL, open nothing
    python tools/course.py NOTEBOOK [JUPYTER OPTIONS...]   # e.g. --ip=0.0.0.0 in a container

JupyterLab starts in `notebooks/` with `Index.ipynb` open, and this script prints one line with
the URL to open (token included), for machines without a browser (a server reached over SSH, a
container). Where port 8888 is taken, Jupyter moves on to the next free port and the line names
it. The settings come from `jupyter/lab/settings/overrides.json`: Markdown files open rendered
(so the links in `exercises/README.md` work) and JupyterLab asks nothing about news or updates;
everything else is JupyterLab's default, and a student's own settings still apply on top.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
INDEX = REPO / "notebooks" / "Index.ipynb"
SETTINGS = REPO / "jupyter" / "lab" / "settings"
PREFIX = "Open the course:"  # the line with the URL starts with this (tests look for it)


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def has_display() -> bool:
    """False on a Linux machine without a graphical session (SSH, container, CI)."""
    if not sys.platform.startswith("linux") or os.environ.get("BROWSER"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def jupyter_command(notebook: Path, browser: bool, options: list[str]) -> list[str]:
    """The `jupyter lab` command line that serves `notebook`'s folder and opens `notebook`."""
    command = [sys.executable, "-m", "jupyterlab", str(notebook)]
    command += [f"--LabApp.app_settings_dir={SETTINGS}", "--ServerApp.port_retries=50"]
    if not browser:
        command.append("--no-browser")  # else a console-only machine may start lynx in the shell
    if running_as_root():
        # Containers and cloud notebooks run everything as root; Jupyter refuses that unless told.
        command.append("--allow-root")
    return command + options


def find_server(pid: int) -> dict | None:
    """The server-info record (url, token, ...) that the Jupyter server `pid` wrote, if any yet."""
    from jupyter_server.serverapp import list_running_servers

    return next((info for info in list_running_servers() if info.get("pid") == pid), None)


def course_url(info: dict, notebook: Path) -> str:
    url = f"{info['url'].rstrip('/')}/lab/tree/{quote(notebook.name)}"
    return f"{url}?token={info['token']}" if info.get("token") else url


def serve(notebook: Path, browser: bool, options: list[str]) -> int:
    """Run JupyterLab until it stops; print the URL line once it listens. Returns its exit code."""
    server = subprocess.Popen(jupyter_command(notebook, browser, options))
    # Ctrl-C reaches the server directly (it asks to confirm); a terminate or hang-up is passed on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, lambda *_: server.terminate())
    while server.poll() is None:
        info = find_server(server.pid)
        if info:
            print(f"\n{PREFIX} {course_url(info, notebook)}\n", flush=True)
            break
        time.sleep(0.2)
    return server.wait()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    notebook = INDEX
    if argv and not argv[0].startswith("-"):
        notebook = Path(argv.pop(0)).resolve()
    if not notebook.is_file():
        print(f"error: {notebook} is not a notebook file; pass the path of one.", file=sys.stderr)
        return 2
    browser = has_display() and "--no-browser" not in argv
    options = [option for option in argv if option != "--no-browser"]
    return serve(notebook, browser, options)


if __name__ == "__main__":
    sys.exit(main())
