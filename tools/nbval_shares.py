"""nbval on the notebooks as several pytest processes side by side, one thread each.

    python tools/nbval_shares.py [--shares 2] -- PYTEST_ARGUMENTS...

`make test` runs the notebooks this way: on a small machine, two processes of one thread each
use the cores better than one process of two threads. Each process runs one share of the
notebooks (`--notebook-share K/N`, notebooks/conftest.py: the notebooks that share a training
run stay together). Their outputs are printed one after the other as they end; the exit status
is 0 when every share passed. The stand-in data is written before any starts, so that no two
write it at once.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", type=int, default=2)
    parser.add_argument("pytest_arguments", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    arguments = [a for a in args.pytest_arguments if a != "--"]
    write = [sys.executable, "-m", "mixer_edu.support.standin"]
    subprocess.run(write, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as folder:
        logs = [Path(folder) / f"share-{k}.log" for k in range(1, args.shares + 1)]
        runs = []
        for k, log in enumerate(logs, start=1):
            command = [sys.executable, "-m", "pytest", *arguments]
            command += ["--notebook-share", f"{k}/{args.shares}"]
            with log.open("w") as output:
                runs.append(
                    subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
                )
        statuses = []
        for k, (run, log) in enumerate(zip(runs, logs, strict=True), start=1):
            statuses.append(run.wait())
            print(f"--- notebooks, share {k} of {args.shares} (exit {statuses[-1]})", flush=True)
            print(log.read_text(), flush=True)
    return 0 if all(status == 0 for status in statuses) else 1


if __name__ == "__main__":
    sys.exit(main())
