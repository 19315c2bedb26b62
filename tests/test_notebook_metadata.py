"""Opening a committed notebook in JupyterLab changes nothing, and no output shows a machine path.

JupyterLab rewrites a notebook's kernel metadata when its kernel starts and marks the notebook
changed where it differs; `tools/notebook_metadata.py` writes it the same way. The browser test
(tests/test_browser.py) checks the round trip through a real JupyterLab.
"""

import importlib.util
import re
from pathlib import Path

import pytest

from tests.optional import need

nbformat = need("nbformat")

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "notebook_metadata", ROOT / "tools" / "notebook_metadata.py"
)
notebook_metadata = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(notebook_metadata)

NOTEBOOKS = notebook_metadata.committed_notebooks()
MACHINE_PATH = re.compile(
    r"(?<![\w.:/~-])(/(home|Users|root|tmp|work|private|opt|usr|var|mnt)/|[A-Za-z]:\\)"
    r"|site-packages|dist-packages"
)


def _read(path):
    return nbformat.read(path, as_version=4)


def _python_version(path) -> str:
    return _read(path).metadata["language_info"]["version"]


@pytest.mark.jupyter
def test_the_metadata_is_what_ipykernel_reports():
    start_new_kernel = need("jupyter_client.manager").start_new_kernel

    manager, client = start_new_kernel(kernel_name=notebook_metadata.KERNEL)
    try:
        reply = client.kernel_info(reply=True)["content"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    expected = notebook_metadata.kernel_metadata()
    assert reply["language_info"] == expected["language_info"]
    assert expected["kernelspec"]["display_name"] == manager.kernel_spec.display_name


def test_every_notebook_names_the_same_python():
    assert len({_python_version(path) for path in NOTEBOOKS}) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_has_the_metadata_jupyterlab_writes(path):
    notebook = _read(path)
    expected = notebook_metadata.kernel_metadata()
    # The notebooks name the Python that ran them; the test may run on another one.
    expected["language_info"]["version"] = _python_version(path)
    changed = notebook_metadata.normalize(notebook, expected)
    assert not changed, f"run: python tools/notebook_metadata.py {path.relative_to(ROOT)}"


def test_normalize_writes_the_kernel_metadata_and_javascript_numbers():
    notebook = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}, "w": [2.0, 0.5]}
    )
    notebook.nbformat_minor = 4
    metadata = notebook_metadata.kernel_metadata()
    assert notebook_metadata.normalize(notebook, metadata)
    assert notebook.metadata["kernelspec"] == metadata["kernelspec"]
    assert notebook.metadata["w"] == [2, 0.5] and isinstance(notebook.metadata["w"][0], int)
    assert notebook.nbformat_minor == nbformat.v4.nbformat_minor
    assert not notebook_metadata.normalize(notebook, metadata)


def _output_texts(notebook):
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            yield output.get("text", "")
            yield "\n".join(output.get("traceback", []))
            for mime, data in output.get("data", {}).items():
                if mime.startswith("text/") or mime.endswith("json"):
                    yield data if isinstance(data, str) else str(data)


def test_the_machine_path_pattern_finds_paths_and_skips_urls():
    for text in ["/work/main/runs/x", "C:\\Users\\a", "/tmp/x", "/usr/lib/python3/x"]:
        assert MACHINE_PATH.search(text), text
    for text in ["https://github.com/tmp/x", "runs/04-training/", "data/standin/", "a/tmp/b"]:
        assert not MACHINE_PATH.search(text), text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_output_shows_a_machine_path(path):
    own = [name for name in (str(ROOT), str(Path.home())) if len(name) > 1]  # home may be "/"
    for text in _output_texts(_read(path)):
        found = MACHINE_PATH.search(text) or any(name in text for name in own)
        assert not found, f"a machine path in an output: {text[:300]!r}"
