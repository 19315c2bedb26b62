"""The one command for a GPU machine: tests, notebooks, a classroom run and the benchmark.

    python tools/gpu_check.py                     # every step, on the fastest device here
    python tools/gpu_check.py --summary gpu.md    # also write the summary (markdown) to a file
    python tools/gpu_check.py --notebooks         # only the notebooks, as scripts
    python tools/gpu_check.py --device-guard      # the notebooks on a CPU, under device_guard.py
    python tools/gpu_check.py --log DIR           # also keep each step's full output under DIR

CI has no GPU, so this is how the course's device code paths get exercised: run it on any CUDA
(or Apple MPS) machine and paste the summary it prints last into an issue. The steps:

1. `tests`: the whole test suite (`pytest -n` when pytest-xdist is installed);
2. `notebooks`: every course notebook and exercise solution, its code cells run in order as one
   Python script in fast mode, from the notebook's folder, several at a time. That checks that
   every cell runs on the device; it does not compare outputs (nbval does that in CI);
3. `train`: the classroom run, timed: the default command `python -m mixer_edu.train` with the
   classroom recipe (mixer_cifar_small, batch 128, crop-flip, label smoothing, 30 epochs) on a
   CIFAR-10-sized synthetic stand-in (50,000 training and 10,000 test images, written first and
   not timed), so it does the work of the CIFAR-10 run without a download. The summary gives its
   wall time, start-up and compilation included, and its last epoch line;
4. `bench`: `python -m mixer_edu.tools.bench --loop` on the device (fp32, the CIFAR
   configuration).

Every step has a time budget (seconds; `--budget STEP=SECONDS` changes one, `--budget-scale`
all; the notebooks share theirs): a step that runs past it is stopped and counted as failed, so
the whole check ends within about 10 minutes (the budgets add up to 570 s; writing the classroom
run's stand-in, about 20 s, comes on top). It needs torch, torchvision, timm, einops, matplotlib
and pytest; not Jupyter, nbformat or nbval (GPU images often lack them): notebooks are read as
JSON, and the tests that need Jupyter skip, naming what is missing.
Exit status: 0 when every step passed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
NOTEBOOKS = sorted(ROOT.glob("notebooks/[0-9][0-9]-*.ipynb")) + sorted(
    ROOT.glob("notebooks/exercises/solutions/[0-9][0-9]-*.ipynb")
)
STEPS = ("tests", "notebooks", "train", "bench")
# Seconds; 570 in all. On one H200 (2026-12-04) the suite under `pytest -n 8` ran past 130 s,
# notebook 04 alone took 127 s while fast mode's runs still compiled, and the classroom run's
# first compile took 70 s: the budgets fit those, and the whole check a 15-minute GPU lease.
BUDGETS = {"tests": 200, "notebooks": 150, "train": 180, "bench": 40}
CLASSROOM_EPOCHS = 30  # the classroom recipe's, on 50,000 images: the CIFAR-10 run's work
CIFAR_SIZED = ["--train-per-batch", "10000", "--test-size", "10000"]  # 50,000 / 10,000 images


def notebook_to_script(path: Path) -> str:
    """The notebook's code cells, in order, as one Python script (IPython magics are refused)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    parts = []
    for number, cell in enumerate(cells, start=1):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if any(line.lstrip().startswith(("%", "!")) for line in source.splitlines()):
            raise ValueError(f"{path.name} cell {number} uses an IPython magic; use plain Python")
        parts.append(f"# --- cell {number}\n{source}\n")
    return "\n".join(parts)


def device_summary() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    if torch.backends.mps.is_available():
        return f"mps: Apple GPU (torch {torch.__version__})"
    return f"no GPU found: this run only exercises the CPU (torch {torch.__version__})"


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else "cpu"


@dataclass
class Result:
    name: str
    passed: bool
    seconds: float
    note: str = ""  # the step's key numbers, or why it failed
    output: str = ""


def _environment() -> dict:
    env = dict(os.environ, MIXER_EDU_FAST="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_step(name: str, command: list[str], cwd: Path, budget: float) -> Result:
    """Run `command`; stopped (and failed) after `budget` seconds."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=cwd, env=_environment(), capture_output=True, text=True,
            timeout=budget, check=False,
        )  # fmt: skip
        output, passed = done.stdout + done.stderr, done.returncode == 0
        note = "" if passed else f"exit {done.returncode}"
    except subprocess.TimeoutExpired as stopped:
        output = _text(stopped.stdout) + _text(stopped.stderr)
        passed, note = False, f"stopped after its {budget:.0f} s budget"
    return Result(name, passed, time.perf_counter() - start, note, output)


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def report(result: Result) -> None:
    """One line as a step ends; the end of its output when it failed."""
    note = f" ({result.note})" if result.note else ""
    verdict = "passed" if result.passed else "FAILED"
    print(f"{result.name}: {verdict} in {result.seconds:.0f} s{note}", flush=True)
    if not result.passed:
        print("\n".join(result.output.splitlines()[-25:]), flush=True)


def run_notebook(path: Path, budget: float, guard: bool = False) -> Result:
    """One notebook as a script, from its folder (under tools/device_guard.py with `guard`)."""
    script = path.with_name(f".gpu_check_{path.stem}.py")
    script.write_text(notebook_to_script(path), encoding="utf-8")
    runner = [str(ROOT / "tools" / "device_guard.py")] if guard else []
    try:
        name = str(path.relative_to(ROOT))
        result = run_step(name, [sys.executable, *runner, script.name], path.parent, budget)
        report(result)
        return result
    finally:
        script.unlink()


def notebook_groups() -> list[list[Path]]:
    """The notebooks in groups that may run at once, the longest first (tools/notebook_times.py):
    those sharing a training run (04 and 05) are one group, run in order."""
    spec = importlib.util.spec_from_file_location("notebook_times", TOOLS / "notebook_times.py")
    times = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(times)
    return times.groups(NOTEBOOKS)


def run_notebooks(budget: float, workers: int, guard: bool = False) -> list[Result]:
    """Every notebook, `workers` groups at a time, all within `budget` seconds.

    The stand-in data they all read is written once, before any starts.
    """
    deadline = time.perf_counter() + budget
    # Share the cores: `workers` notebooks, each with all the cores' threads, would spin-wait on
    # each other (several times slower on 2 cores than one after the other).
    threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = threads or str(max(1, (os.cpu_count() or 1) // workers))
    try:
        return _run_notebooks(deadline, workers, guard)
    finally:  # as it was, for whatever runs after in this process
        if threads is None:
            del os.environ["OMP_NUM_THREADS"]


def _run_notebooks(deadline: float, workers: int, guard: bool) -> list[Result]:
    write = "from mixer_edu.support.standin import write_standin; write_standin()"
    subprocess.run([sys.executable, "-c", write], cwd=ROOT, env=_environment(), check=True)

    def run_group(paths: list[Path]) -> list[Result]:
        return [
            run_notebook(path, max(1.0, deadline - time.perf_counter()), guard) for path in paths
        ]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = [r for group in pool.map(run_group, notebook_groups()) for r in group]
    return sorted(done, key=lambda r: NOTEBOOKS.index(ROOT / r.name))


def run_tests(budget: float) -> Result:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    if importlib.util.find_spec("xdist") is not None:
        command += ["-n", str(min(8, os.cpu_count() or 1))]
    result = run_step("tests", command, ROOT, budget)
    summary = re.findall(r"^=*\s*(\d+ (?:passed|failed).*?) in [\d.]+s", result.output, re.M)
    result.note = "; ".join(filter(None, [result.note, summary[-1] if summary else ""]))
    return result


def run_classroom(budget: float, device: str, epochs: int, train_images: int | None) -> Result:
    """The classroom recipe on a CIFAR-10-sized stand-in (with `train_images`, a stand-in of
    that size), timed from the command's start."""
    sized = CIFAR_SIZED
    if train_images:  # a shortened run (the tests): a stand-in of its size, as many test images
        sized = ["--train-per-batch", str(-(-train_images // 5)), "--test-size", str(train_images)]
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as folder:
        write = [sys.executable, "-m", "mixer_edu.support.standin", "--root", folder, *sized]
        made = run_step("train", write, ROOT, 600)  # not part of the timed run
        if not made.passed:
            return made
        train = [
            sys.executable, "-m", "mixer_edu.train", "--dataset", "standin",
            "--epochs", str(epochs), "--warmup-epochs", "3",  # the classroom recipe's
            "--device", device, "--data-root", folder,
            "--out", str(Path(folder) / "run"), "--overwrite",
        ] + (["--train-images", str(train_images)] if train_images else [])  # fmt: skip
        result = run_step("train", train, ROOT, budget)
    epochs_run = re.findall(r"^epoch\s+\d+/\d+ \|.*$", result.output, re.M)
    plan = re.findall(r"^(?:cuda|mps|cpu) \(.*$", result.output, re.M)
    last = " ".join(epochs_run[-1].split()) if epochs_run else ""
    done = f"{len(epochs_run)}/{epochs} epochs in {result.seconds:.1f} s wall"
    result.note = "; ".join(filter(None, [result.note, done, plan[0] if plan else "", last]))
    result.note += f" (stand-in written in {made.seconds:.0f} s, not counted)"
    return result


def run_bench(budget: float, device: str, quick: bool = False) -> Result:
    command = [
        sys.executable, "-m", "mixer_edu.tools.bench", "--device", device, "--loop",
        "--config", "cifar", "--precision", "fp32",
    ] + (["--quick"] if quick else [])  # fmt: skip
    result = run_step("bench", command, ROOT, budget)
    result.note = "; ".join(filter(None, [result.note, *bench_notes(result.output)]))
    return result


def bench_notes(output: str) -> list[str]:
    """The bench's key numbers: its fp32 training row (ours, timm, ours/timm) and the fp32 row
    of its loop table (loop img/s, % of the model-only step). The "epoch parts" table after the
    loop table has fp32 rows too; they hold other columns and are not read."""
    notes, table = [], ""
    for line in output.splitlines():
        words = line.split()
        if line.startswith(("loop, ", "epoch parts, ")):
            table = words[0]  # the title of the table the next rows belong to
        elif words[:2] == ["train", "fp32"] and len(words) >= 5:
            notes.append(f"train fp32: ours {words[2]} img/s, timm {words[3]} ({words[4]}x)")
        elif table == "loop," and words[:1] == ["fp32"] and len(words) >= 4:
            notes.append(f"loop fp32: {words[2]} img/s, {words[3]} of the model-only step")
    return notes


def summary(device: str, results: list[Result]) -> str:
    """The markdown a reader pastes into an issue."""
    passed = sum(r.passed for r in results)
    lines = [
        f"## tools/gpu_check.py: {passed} passed, {len(results) - passed} failed",
        "",
        f"Device: {device}. Python {sys.version.split()[0]}.",
        "",
        "| step | result | time | notes |",
        "| --- | --- | --- | --- |",
    ]
    for r in results:
        note = r.note.replace("|", "\\|")
        verdict = "pass" if r.passed else "FAIL"
        lines.append(f"| {r.name} | {verdict} | {r.seconds:.0f} s | {note} |")
    for r in results:
        if not r.passed:
            tail = "\n".join(r.output.splitlines()[-15:])
            lines += ["", f"### {r.name}: the end of its output", "", "```", tail, "```"]
    return "\n".join(lines)


def _budgets(args) -> dict[str, float]:
    budgets = {step: seconds * args.budget_scale for step, seconds in BUDGETS.items()}
    for item in args.budget:
        step, _, seconds = item.partition("=")
        if step not in budgets or not seconds.replace(".", "", 1).isdigit():
            raise SystemExit(f"error: --budget takes STEP=SECONDS with STEP one of {STEPS}")
        budgets[step] = float(seconds)
    return budgets


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--notebooks", action="store_true", help="only the notebooks (same as --steps notebooks)")
    add("--device-guard", action="store_true",
        help="only the notebooks, on the CPU under tools/device_guard.py (a CPU tensor meeting "
        "a model on the course device fails, as on a GPU)")  # fmt: skip
    add("--steps", default=",".join(STEPS), help=f"comma-separated, from {','.join(STEPS)}")
    add("--budget", action="append", default=[], metavar="STEP=SECONDS")
    add("--budget-scale", type=float, default=1.0, help="multiply every budget (default 1)")
    add("--workers", type=int, default=max(1, min(4, (os.cpu_count() or 1) // 4)),
        help="notebooks run at once (default: a quarter of the cores, 1 to 4)")  # fmt: skip
    add("--epochs", type=int, default=CLASSROOM_EPOCHS, help="of the classroom run")
    add(
        "--train-images",
        type=int,
        help="of the classroom run (default: all 50,000; fewer: a stand-in of that size)",
    )
    add("--quick-bench", action="store_true", help="bench --quick: a tiny model (for tests)")
    add("--summary", type=Path, help="also write the markdown summary to this file")
    add("--log", type=Path, help="folder for each step's full output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    steps = args.steps.split(",")
    if args.notebooks or args.device_guard:
        steps = ["notebooks"]
    if unknown := set(steps) - set(STEPS):
        raise SystemExit(f"error: unknown step {sorted(unknown)}; steps are {','.join(STEPS)}")
    budgets = _budgets(args)
    device = "cpu" if args.device_guard else device_name()
    described = device_summary() + (", under tools/device_guard.py" if args.device_guard else "")
    print(described, flush=True)
    results: list[Result] = []
    for step in steps:
        if step == "tests":
            new = [run_tests(budgets["tests"])]
        elif step == "notebooks":
            new = run_notebooks(budgets["notebooks"], args.workers, args.device_guard)
        elif step == "train":
            new = [run_classroom(budgets["train"], device, args.epochs, args.train_images)]
        else:
            new = [run_bench(budgets["bench"], device, args.quick_bench)]
        for r in new:
            if step != "notebooks":  # those are reported as each one ends
                report(r)
            if args.log is not None:
                args.log.mkdir(parents=True, exist_ok=True)
                (args.log / f"{r.name.replace('/', '_')}.log").write_text(r.output, "utf-8")
        results += new
    text = summary(described, results)
    print("\n" + text)
    if args.summary is not None:
        args.summary.write_text(text + "\n", encoding="utf-8")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
