"""tools/gpu_check.py: notebooks as scripts, each step in its time budget, one pasteable summary.

It must run where nbformat and Jupyter are missing (GPU images), so these tests write notebooks as
plain JSON, as it reads them.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = gpu_check  # its dataclass looks its module up there
spec.loader.exec_module(gpu_check)


def _notebook(tmp_path, *cells):
    code = [{"cell_type": "code", "metadata": {}, "source": s, "outputs": []} for s in cells]
    notebook = {
        "cells": [{"cell_type": "markdown", "metadata": {}, "source": "# a title"}, *code],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "01-Example.ipynb"
    path.write_text(json.dumps(notebook))
    return path


def test_script_runs_the_code_cells_in_order(tmp_path):
    path = _notebook(tmp_path, "x = 2", "print(x * 21)")
    script = tmp_path / "script.py"
    script.write_text(gpu_check.notebook_to_script(path))
    result = subprocess.run([sys.executable, script], capture_output=True, text=True, check=True)
    assert result.stdout == "42\n"


def test_magics_are_refused_with_the_cell_number(tmp_path):
    path = _notebook(tmp_path, "x = 1", "%timeit x + 1")
    with pytest.raises(ValueError, match="cell 3"):
        gpu_check.notebook_to_script(path)


def test_every_committed_notebook_converts():
    assert gpu_check.NOTEBOOKS, "the course has notebooks"
    for path in gpu_check.NOTEBOOKS:
        assert "# --- cell" in gpu_check.notebook_to_script(path)


def test_the_budgets_fit_in_eight_minutes():
    assert sum(gpu_check.BUDGETS.values()) <= 10 * 60 - 30  # leaves time to start and summarise
    assert set(gpu_check.BUDGETS) == set(gpu_check.STEPS)


def test_a_step_past_its_budget_is_stopped_and_failed():
    sleeper = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(30)"]
    result = gpu_check.run_step("sleeper", sleeper, ROOT, budget=2)
    assert not result.passed and result.seconds < 15
    assert "budget" in result.note


def test_notebooks_that_share_a_training_run_run_one_after_the_other():
    """Notebook 05 reads the run notebook 04 trains: running both at once would race. The
    longest notebook starts first, so that it does not run alone at the end."""
    groups = gpu_check.notebook_groups()
    assert sorted(p for g in groups for p in g) == sorted(gpu_check.NOTEBOOKS)
    together = [[p.name[:2] for p in g] for g in groups if len(g) > 1]
    assert together == [["04", "05"]]
    assert groups[0][0].name.startswith("08-")  # the longest starts first, not last


def test_summary_is_a_markdown_table_with_each_step_and_the_failures_output():
    results = [
        gpu_check.Result("tests", True, 12.3, "10 passed"),
        gpu_check.Result("bench", False, 60.0, "stopped after its 60 s budget", "last line"),
    ]
    text = gpu_check.summary("cuda: a GPU", results)
    assert text.splitlines()[0] == "## tools/gpu_check.py: 1 passed, 1 failed"
    assert "| tests | pass | 12 s | 10 passed |" in text
    assert "| bench | FAIL | 60 s | stopped after its 60 s budget |" in text
    assert "### bench" in text and "last line" in text


def test_train_and_bench_steps_run_on_the_cpu_and_report_their_numbers(tmp_path):
    """The classroom run and the benchmark, made tiny: what a GPU machine runs, end to end."""
    summary = tmp_path / "summary.md"
    code = gpu_check.main(
        ["--steps", "train,bench", "--epochs", "1", "--train-images", "256",
         "--quick-bench", "--budget", "train=240", "--budget", "bench=240",
         "--summary", str(summary)]
    )  # fmt: skip
    text = summary.read_text()
    assert code == 0, text
    assert "| train | pass |" in text and "epoch 1/1 \\| train loss" in text and "img/s" in text
    assert "| bench | pass |" in text and "train fp32: ours" in text and "loop fp32" in text


def test_notebooks_run_as_scripts_from_their_folder_and_a_failure_shows(tmp_path, monkeypatch):
    good = _notebook(tmp_path, "from pathlib import Path", "print(Path.cwd().name)")
    bad = good.with_name("02-Broken.ipynb")
    bad.write_text(_notebook(tmp_path / "..", "raise RuntimeError('cell two broke')").read_text())
    monkeypatch.setattr(gpu_check, "ROOT", tmp_path)
    monkeypatch.setattr(gpu_check, "NOTEBOOKS", [good, bad])
    results = gpu_check.run_notebooks(budget=120, workers=2)
    assert [(r.name, r.passed) for r in results] == [
        ("01-Example.ipynb", True),
        ("02-Broken.ipynb", False),
    ]
    assert results[0].output.strip() == tmp_path.name  # run from the notebook's folder
    assert "cell two broke" in results[1].output
    assert not list(tmp_path.glob(".gpu_check_*"))  # the scripts are removed


# The end of a real `bench --loop --config cifar --precision fp32` run on an NVIDIA H200.
BENCH_LOOP_OUTPUT = """\
loop, cifar: one epoch of 1280 random uint8 images (batch 128, crop-flip on cuda) through \
train_one_epoch, then evaluate on 256; training images per second
        model-only      loop  % of model  loop+eval  % of model  timm model  loop/timm
fp32        6666.2    6615.5       99.2%     6400.4       98.9%      5814.9       1.14
epoch parts, cifar: fraction of one epoch (loop + evaluation + checkpoint); 30 epochs projected \
to 50,000 training and 10,000 test images
        path    data    step    rest    eval    ckpt   epoch s  compile s   30 epochs s
fp32   eager    2.5%   65.7%   -2.0%    2.2%   31.5%      7.89        0.0           237
"""


def test_bench_summary_reads_only_the_loop_tables_fp32_row_not_the_epoch_parts_row():
    notes = gpu_check.bench_notes(BENCH_LOOP_OUTPUT)
    assert notes == ["loop fp32: 6615.5 img/s, 99.2% of the model-only step"]
