"""tools/check_numbers.py: numbers in the prose must come from the notebook or be references."""

import importlib.util
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_numbers", ROOT / "tools" / "check_numbers.py")
check_numbers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_numbers)


def _write(tmp_path, name, markdown, code="x = 1", printed=""):
    cell = new_code_cell(code)
    if printed:
        cell.outputs = [new_output("stream", name="stdout", text=printed)]
    notebook = new_notebook(cells=[new_markdown_cell(markdown), cell])
    path = tmp_path / name
    nbformat.write(notebook, path)
    return path


def test_a_notebook_whose_numbers_are_references_or_printed_passes(tmp_path, capsys):
    path = _write(
        tmp_path,
        "clean.ipynb",
        "Mixer-B/16 on ImageNet-21k (Tolstikhin et al. 2021, Section 3) reaches 84.15%"
        " (Table 2). In the run below: 22.3% with token mixing, 3 epochs.",
        printed="test acc 22.31%\n",
    )
    assert check_numbers.main([str(path)]) == 0
    assert "no unexplained numbers" in capsys.readouterr().out


def test_a_stray_number_in_the_prose_is_flagged(tmp_path, capsys):
    path = _write(
        tmp_path, "stray.ipynb", "The model reaches 43.7% accuracy.", printed="acc 22.3%\n"
    )
    assert check_numbers.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert f'{path}: cell 0: "43.7"' in out and "reaches 43.7% accuracy" in out


def test_a_number_printed_by_a_code_cell_is_not_flagged(tmp_path):
    path = _write(tmp_path, "printed.ipynb", "It reaches 43.7%, about 44%.", printed="acc 43.7%\n")
    assert check_numbers.check(path) == []


def test_a_number_set_in_the_code_is_not_flagged(tmp_path):
    path = _write(
        tmp_path, "code.ipynb", "Over 200,000 samples.", code="ones = torch.ones(200_000)"
    )
    assert check_numbers.check(path) == []


def test_a_number_that_only_rounds_differently_is_flagged(tmp_path):
    path = _write(tmp_path, "rounding.ipynb", "It reaches 43.8%.", printed="acc 43.7%\n")
    assert len(check_numbers.check(path)) == 1
