"""Notebook 07's text experiment as reference runs: both token mixers, trained until they settle.

The image experiments (`tools.experiments`, made by `tools.reference`) train classifiers on the
stand-in. This one trains the two text encoders of `mixer_edu.mlm`, self-attention and MLP token
mixing, on the masked-character task (Python's own documentation), with three seeds each and
enough steps for held-out accuracy to stop moving. The words are the image experiments' own
(`support.regimes`): *converged*, held-out masked-character accuracy moved by less than a point
over the last quarter of the steps; *a difference*, the ranges over the seeds do not overlap.

`python -m mixer_edu.tools.reference` makes these runs with the rest (`--only mlm` alone) and
writes `reference/text-reference/mlm.json`; notebook 07 loads it (`load`). The text differs a
little between Python versions, so the file records the version that made it.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..mlm import MlmConfig, train_mlm, unigram_accuracy
from ..mlm_text import MlmData
from ..seq_mixing import MIXERS
from ..support import regimes
from ..support.disk import write_json
from ..support.metrics import mean_and_range
from ..support.paths import project_folder
from ..support.runtime import one_thread_processes, resolve_device, where_runs_ran
from .experiments import SEEDS, Claim, failed_claims

NAME = "mlm"
NOTEBOOK = "07"
# Notebook 07's fast-mode encoder (num_tokens 32, d_model 32, batch 32), trained 27 times as long.
# Its 600 steps show the start of training. Measured on seed 0: at 4,000 steps attention has
# overtaken the MLP mixer, and at 16,000 it still gains about 3 points per last quarter (the MLP
# mixer 1.5): settling would take many times longer than the 2-hour budget of every reference run
# together allows, so notebook 07 reports both as still learning.
CONFIG = MlmConfig.fast(steps=16000, eval_every=400)
CLAIMS = (Claim("higher", ("attention", "mlp")), Claim("not converged"))


def folder() -> Path:
    """Where the text experiment's file lives: `reference/text-reference/`."""
    return project_folder() / "reference" / "text-reference"


def recipe() -> dict:
    """What a saved result must have been made with."""
    return {"config": asdict(CONFIG), "seeds": list(SEEDS), "mixers": list(MIXERS)}


def run_one(mixer: str, seed: int, device: str) -> dict:
    """Train one encoder with one seed; the numbers the saved experiment keeps of it."""
    config = MlmConfig(**{**asdict(CONFIG), "seed": seed})
    run = train_mlm(mixer, config, progress=False, device=device)
    return {
        "seed": seed,
        "params": run.num_params,
        "steps": [e["step"] for e in run.evals],
        "heldout_accuracy": [e["heldout_accuracy"] for e in run.evals],
        "heldout_loss": [e["heldout_loss"] for e in run.evals],
        "seconds": round(run.train_seconds, 1),
    }


def make(jobs: int = 2) -> Path:
    """Train every mixer with every seed and save them; the file."""
    device = str(resolve_device(None))
    jobs = 1 if device != "cpu" else jobs
    todo = [(mixer, seed) for mixer in MIXERS for seed in SEEDS]
    print(f"{len(todo)} text runs to make, {jobs} at a time, on {device}", flush=True)
    start = time.perf_counter()
    if jobs == 1:
        done = [run_one(mixer, seed, device) for mixer, seed in todo]
    else:  # one thread per process, as the image runs
        with one_thread_processes(jobs) as pool:
            done = list(pool.map(run_one, *zip(*todo, strict=True), [device] * len(todo)))
    print(f"{len(todo)} text runs made in {(time.perf_counter() - start) / 60:.1f} minutes")
    runs = {mixer: [] for mixer in MIXERS}
    for (mixer, _), run in zip(todo, done, strict=True):
        runs[mixer].append(run)
    record = {
        "experiment": NAME,
        "recipe": recipe(),
        "runs": runs,
        "unigram_accuracy": unigram_accuracy(MlmData(num_tokens=CONFIG.num_tokens), CONFIG),
        "made_on": f"{where_runs_ran(device, jobs)}, torch {torch.__version__}, "
        f"Python {platform.python_version()}",
    }
    return write_json(record, folder() / f"{NAME}.json", "a reference experiment")


@dataclass
class TextRuns:
    """The saved text experiment: `runs[mixer]` is one dict per seed (see `run_one`)."""

    record: dict

    @property
    def runs(self) -> dict[str, list[dict]]:
        return self.record["runs"]

    def accuracy(self, mixer: str) -> list[float]:
        """Final held-out masked-character accuracy, one per seed."""
        return [run["heldout_accuracy"][-1] for run in self.runs[mixer]]

    def moves(self, mixer: str) -> list[float]:
        """How far held-out accuracy moved over the last quarter of the steps, one per seed."""
        steps = self.record["recipe"]["config"]["steps"]
        return [
            regimes.last_quarter_move(run["steps"], run["heldout_accuracy"], steps)
            for run in self.runs[mixer]
        ]

    def converged(self, mixer: str) -> list[bool]:
        return [move < regimes.CONVERGED_WITHIN for move in self.moves(mixer)]

    def spread(self, mixer: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, lowest and highest over seeds of held-out accuracy at every evaluated step."""
        values = torch.tensor([run["heldout_accuracy"] for run in self.runs[mixer]])
        return values.mean(dim=0), values.min(dim=0).values, values.max(dim=0).values

    def describe(self) -> str:
        config = self.record["recipe"]["config"]
        return (
            f"Reference runs ({NAME}): masked characters of Python's documentation, "
            f"{config['steps']:,} steps of {config['batch_size']} sequences of "
            f"{config['num_tokens']} characters, seeds "
            f"{', '.join(map(str, self.record['recipe']['seeds']))}, made by "
            f"`python -m mixer_edu.tools.reference --only {NAME}` on {self.record['made_on']}."
        )

    def table(self) -> str:
        """One line per mixer: final held-out accuracy over seeds and how many converged."""
        head = "held-out masked acc: mean (range)"
        lines = [f"{'mixer':10s} {'params':>8s}  {head:>33s}  regime"]
        for mixer, runs in self.runs.items():
            settled, moves = self.converged(mixer), [100 * move for move in self.moves(mixer)]
            lines.append(
                f"{mixer:10s} {runs[0]['params']:8,d}  {mean_and_range(self.accuracy(mixer)):>33s}"
                f"  converged {sum(settled)}/{len(settled)} (the last quarter moved "
                f"{min(moves):.1f} to {max(moves):.1f} points)"
            )
        unigram = self.record["unigram_accuracy"]
        lines.append(f"(guessing the most common character: {unigram:.1%})")
        return "\n".join(lines)

    def compare(self, a: str, b: str) -> str:
        return regimes.compare_words(self.accuracy(a), self.accuracy(b), a, b)

    def check_claims(self) -> list[str]:
        """The claims that the saved runs do not bear out (none: all hold)."""
        return failed_claims(CLAIMS, self)


def load() -> TextRuns | None:
    """The saved text experiment, or None if it has not been made."""
    path = folder() / f"{NAME}.json"
    return TextRuns(json.loads(path.read_text())) if path.exists() else None
