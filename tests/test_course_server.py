"""`make course` starts JupyterLab for the course on any machine: as root, without a browser, on a
taken port, with the settings committed in `jupyter/lab/settings/`."""

import importlib.util
import json
import os
import socket

import pytest

from tests.jupyter_course import LAUNCHER, PREFIX, ROOT, running_course

OVERRIDES = ROOT / "jupyter" / "lab" / "settings" / "overrides.json"


def _launcher():
    spec = importlib.util.spec_from_file_location("course_launcher", LAUNCHER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_course_runs_the_launcher():
    assert "$(BIN)/python tools/course.py" in (ROOT / "Makefile").read_text()
    assert _launcher().PREFIX == PREFIX


@pytest.mark.parametrize("euid", [0, 1000])
def test_allow_root_is_passed_only_when_running_as_root(monkeypatch, euid):
    monkeypatch.setattr(os, "geteuid", lambda: euid, raising=False)
    command = _launcher().jupyter_command(ROOT / "notebooks" / "Index.ipynb", False, [])
    assert ("--allow-root" in command) == (euid == 0)
    assert "--no-browser" in command


def test_no_browser_is_opened_on_a_linux_machine_without_a_display(monkeypatch):
    launcher = _launcher()
    monkeypatch.setattr(launcher.sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        monkeypatch.delenv(name, raising=False)
    assert not launcher.has_display()
    monkeypatch.setenv("DISPLAY", ":0")
    assert launcher.has_display()


def test_a_missing_notebook_is_one_error_line(capsys):
    assert _launcher().main(["no-such-notebook.ipynb"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1


@pytest.mark.jupyter
def test_course_serves_the_index_with_the_repository_settings(tmp_path):
    """Started as `make course` starts it (as root where the tests run as root)."""
    with running_course(tmp_path) as course:
        assert "/lab/tree/Index.ipynb?token=" in course.url
        status, page = course.get("/lab/tree/Index.ipynb")
        assert status == 200 and b"JupyterLab" in page
        index = course.get_json("/api/contents/Index.ipynb")
        assert index["type"] == "notebook" and index["content"]["cells"]
        # Each setting in overrides.json is the default the server hands to JupyterLab.
        for plugin, settings in json.loads(OVERRIDES.read_text()).items():
            schema = course.get_json(f"/lab/api/settings/{plugin}")["schema"]
            for name, value in settings.items():
                assert schema["properties"][name]["default"] == value, (plugin, name)
    assert course.returncode == 0, course.log.read_text()
    assert course.leftovers == []


@pytest.mark.jupyter
def test_course_moves_to_another_port_when_the_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with running_course(tmp_path, f"--ServerApp.port={port}") as course:
            assert f":{port}/" not in course.url
            assert course.get_json("/api/contents/Index.ipynb?content=0")["name"] == "Index.ipynb"
    lines = [line for line in course.log.read_text().splitlines() if line.startswith(PREFIX)]
    assert len(lines) == 1
    assert course.leftovers == []
