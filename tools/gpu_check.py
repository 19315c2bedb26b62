"""Run the whole test suite and every notebook on a GPU machine, and print one summary.

    python tools/gpu_check.py              # tests, then every notebook, in fast mode
    python tools/gpu_check.py --notebooks  # only the notebooks
    python tools/gpu_check.py --log DIR    # also write each step's full output under DIR

Run it whenever you have a CUDA (or Apple MPS) machine: CI has no GPU, so this is how the
course's device code paths get exercised. It needs torch, torchvision, timm, einops, matplotlib
and pytest, but not nbval or a Jupyter kernel (GPU images often lack them): each notebook's code
cells are run in order as one Python script, in fast mode, from the notebook's own folder. That
checks that every cell runs on the device; it does not compare outputs (nbval does that in CI).
Exit status: 0 when every step passed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(ROOT.glob("notebooks/[0-9][0-9]-*.ipynb")) + sorted(
    ROOT.glob("notebooks/exercises/solutions/[0-9][0-9]-*.ipynb")
)


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


def _environment() -> dict:
    env = dict(os.environ, MIXER_EDU_FAST="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_step(name: str, command: list[str], cwd: Path, log_dir: Path | None) -> bool:
    start = time.perf_counter()
    result = subprocess.run(
        command, cwd=cwd, env=_environment(), capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    output = result.stdout + result.stderr
    if log_dir is not None:
        (log_dir / f"{name.replace('/', '_')}.log").write_text(output, encoding="utf-8")
    verdict = "passed" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
    print(f"{name}: {verdict} in {seconds:.0f} s", flush=True)
    if result.returncode != 0:
        print("\n".join(output.splitlines()[-25:]), flush=True)
    return result.returncode == 0


def run_notebook(path: Path, log_dir: Path | None) -> bool:
    script = path.with_name(f".gpu_check_{path.stem}.py")
    script.write_text(notebook_to_script(path), encoding="utf-8")
    try:
        name = str(path.relative_to(ROOT))
        return run_step(name, [sys.executable, script.name], path.parent, log_dir)
    finally:
        script.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", action="store_true", help="skip the test suite")
    parser.add_argument("--log", type=Path, help="folder for each step's full output")
    args = parser.parse_args(argv)
    if args.log is not None:
        args.log.mkdir(parents=True, exist_ok=True)
    print(device_summary(), flush=True)
    results = []
    if not args.notebooks:
        pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
        results.append(run_step("tests", pytest, ROOT, args.log))
    results.extend(run_notebook(path, args.log) for path in NOTEBOOKS)
    print(f"gpu_check: {sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
