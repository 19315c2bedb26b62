"""Run, save and load the reference experiments (`tools.experiments`).

One command makes every reference run and writes one JSON file per experiment:

    python -m mixer_edu.tools.reference                       # the stand-in, reference budget
    python -m mixer_edu.tools.reference --only data-scaling   # one experiment
    python -m mixer_edu.tools.reference --dataset cifar10 --budget full   # on a GPU, at full size

The stand-in's files, `reference/standin-reference/*.json`, are committed: the notebooks load
them (`load`), so the results their prose interprets are there before anything is run, and a
notebook in fast mode (CI) prints the same table on every machine. A file records the recipe it
was made with; a test compares it with the current `tools.experiments` and fails on a stale one.

Every run is one seed of one variant, trained by `tools.compare.train_briefly` in a process of
its own with one thread, `--jobs` of them at a time (two on two cores beat one run on both). A
finished run is kept in `runs/reference-cache/`, so an interrupted command picks up where it
stopped, and a run that two experiments share (the Mixer on all 10,000 images) trains once.
Where an experiment keeps weights (`Experiment.keep_weights`), the first and last weights of
those runs are saved beside its file, under `weights/`, as snapshots `load_model` reads.

The same command makes notebook 07's text experiment (`tools.reference_text`, `--only mlm`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..baselines import BASELINES, create_baseline
from ..data import DATASETS, dataset_classes, dataset_label
from ..mixer import without_token_mixing
from ..models import create_model, model_config
from ..permutation import ImagePermutation
from ..support import regimes
from ..support.checkpoint import encode_config, model_state, save_atomic
from ..support.disk import write_atomic, write_json
from ..support.metrics import mean_and_range
from ..support.paths import project_folder
from ..support.runtime import cpu_name, one_thread_processes, resolve_device, where_runs_ran
from ..support.validation import check_choice
from . import reference_text
from .compare import load_images, train_briefly
from .experiments import BUDGETS, EXPERIMENTS, Experiment, failed_claims

COMMAND = "python -m mixer_edu.tools.reference"


def folder(dataset: str, budget: str) -> Path:
    """Where an experiment's saved runs live: `reference/<dataset>-<budget>/`."""
    return project_folder() / "reference" / f"{dataset}-{budget}"


def test_epochs(epochs: int) -> list[int]:
    """When a run is tested: 8 times along the way, the last three in its last quarter.

    Those three are the quarter's first epoch, its middle and the end: `regimes` judges a run by
    the first and the last. A test (2,000 images) costs about as much as an epoch on 1,000
    images, so testing every epoch would be a large share of a run on few images.
    """
    along = {max(1, round(k * epochs / 8)) for k in range(1, 6)}
    last_quarter = {regimes.last_quarter_start(epochs), -(-7 * epochs // 8), epochs}
    return sorted(along | last_quarter)


# --------------------------------------------------------------------------------------------
# One run: a variant's recipe and a seed.
# --------------------------------------------------------------------------------------------


def build_model(recipe: dict, seed: int) -> torch.nn.Module:
    """The variant's model, its initial weights drawn from `seed`."""
    torch.manual_seed(seed)
    if recipe["model"] in BASELINES:
        model = create_baseline(recipe["model"], **recipe["overrides"])
    else:
        model = create_model(recipe["model"], **recipe["overrides"])
    if recipe["ablation"] == "no-token-mixing":
        model = without_token_mixing(model)
    return model


def run_one(
    recipe: dict,
    seed: int,
    dataset: str,
    test_images: int | None,
    device: str,
    keep_weights: bool = False,
) -> dict:
    """Train one seed of one variant; the numbers a saved experiment keeps of it.

    With `keep_weights`, the dict also holds `"weights"`: `{"initial": snapshot, "final":
    snapshot}`, each in the layout of the trainer's snapshots (`load_model` reads them).
    """
    train = load_images(dataset, train=True, limit=recipe["train_images"])
    test = load_images(dataset, train=False, limit=test_images)
    shuffle = None
    if recipe["shuffle"] == "patches-and-pixels":
        shuffle = ImagePermutation.patches_and_pixels(image_size=32, patch_size=4, seed=0)
    model = build_model(recipe, seed).to(device)
    initial = snapshot(model, recipe, dataset, epoch=0) if keep_weights else None
    settings = {k: recipe[k] for k in ("batch_size", "lr", "weight_decay", "warmup_epochs")}
    run = train_briefly(
        model, train, test, recipe["epochs"], **settings,
        label_smoothing=recipe["label_smoothing"], augment=recipe["augment"],
        batch_augment=recipe["batch_augment"], transform=shuffle, seed=seed,
        test_epochs=test_epochs(recipe["epochs"]),
    )  # fmt: skip
    kept = {}
    if keep_weights:
        final = snapshot(model, recipe, dataset, recipe["epochs"])
        kept["weights"] = {"initial": initial, "final": final}
    return {
        **kept,
        "seed": seed,
        "params": run.params,
        "test_acc": run.test_acc,
        "train_acc": run.train_acc,
        "tested_epochs": run.tested_epochs,
        "test_acc_per_epoch": run.test_acc_per_epoch,
        "per_class_acc": run.per_class_acc,
        "seconds": round(run.seconds, 1),
    }


def snapshot(model: torch.nn.Module, recipe: dict, dataset: str, epoch: int) -> dict:
    """The model's weights after `epoch` epochs, as the trainer writes a snapshot."""
    return {
        "model_name": recipe["model"],
        "model_config": encode_config(model_config(recipe["model"], **recipe["overrides"])),
        "model": {key: value.cpu() for key, value in model_state(model).items()},
        "epoch": epoch,
        "dataset": dataset,
        "dataset_label": dataset_label(dataset),
        "classes": list(dataset_classes(dataset)),
    }


def weights_path(folder: Path, key: str, which: str) -> Path:
    """Where run `key` keeps its `which` (`'initial'` or `'final'`) weights, under `folder`."""
    return folder / "weights" / f"{key}-{which}.pt"


WHICH = ("initial", "final")


def run_key(recipe: dict, seed: int, dataset: str, test_images: int | None) -> str:
    """A short name for one run, the same wherever the same run appears."""
    text = json.dumps([recipe, seed, dataset, test_images], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Making the experiments.
# --------------------------------------------------------------------------------------------


def make(
    names: list[str], dataset: str = "standin", budget: str = "reference", jobs: int = 2
) -> list[Path]:
    """Run every seed of every variant of the named experiments and save them; the files."""
    device = str(resolve_device(None))
    jobs = 1 if device != "cpu" else jobs  # one GPU: one run at a time
    _, test_images = BUDGETS[budget]
    cache = project_folder() / "runs" / "reference-cache"
    cache.mkdir(parents=True, exist_ok=True)
    todo = {}  # run key -> (recipe, seed, keep its weights)
    for name in names:
        experiment = EXPERIMENTS[name]
        for label, variant in experiment.variants.items():
            keep = label in experiment.keep_weights
            for seed in experiment.seeds:
                recipe = variant.recipe(budget)
                key = run_key(recipe, seed, dataset, test_images)
                if not _in_cache(cache, key, recipe, keep):
                    # a run that two experiments share keeps its weights if either asks
                    earlier = todo.get(key)
                    todo[key] = (recipe, seed, keep or (earlier is not None and earlier[2]))
    # The longest runs first, so that the jobs finish together rather than one waiting on the last.
    todo = dict(sorted(todo.items(), key=lambda item: -_work(item[1][0])))
    print(f"{len(todo)} runs to make, {jobs} at a time, on {device}", flush=True)
    start = time.perf_counter()
    for number, (key, run) in enumerate(_run_all(todo, dataset, test_images, device, jobs), 1):
        for which, weights in run.pop("weights", {}).items():
            save_atomic(weights, weights_path(cache, key, which), "a reference run's weights")
        write_atomic(json.dumps(run).encode(), cache / f"{key}.json", "a reference run")
        recipe, seed, _ = todo[key]
        print(
            f"[{number}/{len(todo)}] {recipe['model']} on {recipe['train_images']:,} images, "
            f"seed {seed}: test {run['test_acc']:.1%} ({run['seconds']:.0f} s)",
            flush=True,
        )
    print(f"{len(todo)} runs made in {(time.perf_counter() - start) / 60:.1f} minutes", flush=True)
    made_on = where_runs_ran(device, jobs)
    return [save(EXPERIMENTS[name], dataset, budget, cache, made_on) for name in names]


def _in_cache(cache: Path, key: str, recipe: dict, keep: bool) -> bool:
    """Whether run `key` is in `cache` as this code would make it, with its weights if `keep`."""
    path = cache / f"{key}.json"
    if not path.exists():
        return False
    if json.loads(path.read_text())["tested_epochs"] != test_epochs(recipe["epochs"]):
        return False  # made when runs were tested at other epochs
    return not keep or all(weights_path(cache, key, which).exists() for which in WHICH)


def _work(recipe: dict) -> int:
    """A run's length in images seen: what its time roughly follows."""
    return recipe["train_images"] * recipe["epochs"]


def _run_all(todo: dict, dataset: str, test_images, device: str, jobs: int):
    """`(key, run)` for every run of `todo`, in its order: here with one job, else in processes."""
    if jobs == 1:
        for key, (recipe, seed, keep) in todo.items():
            yield key, run_one(recipe, seed, dataset, test_images, device, keep)
        return
    with one_thread_processes(jobs) as pool:
        futures = {
            key: pool.submit(run_one, recipe, seed, dataset, test_images, device, keep)
            for key, (recipe, seed, keep) in todo.items()
        }
        for key, future in futures.items():
            yield key, future.result()


def save(experiment: Experiment, dataset: str, budget: str, cache: Path, made_on: str) -> Path:
    """Gather an experiment's runs from the cache into `folder(dataset, budget) / <name>.json`.

    `made_on`: where the runs ran (`support.runtime.where_runs_ran`)."""
    recipe = experiment.recipe(budget)
    keys = {
        label: [run_key(v, seed, dataset, recipe["test_images"]) for seed in experiment.seeds]
        for label, v in recipe["variants"].items()
    }
    runs = {
        label: [json.loads((cache / f"{key}.json").read_text()) for key in label_keys]
        for label, label_keys in keys.items()
    }
    into = folder(dataset, budget)
    for label in experiment.keep_weights:  # copied next to the file, named in each run
        for key, run in zip(keys[label], runs[label], strict=True):
            for which in WHICH:
                data = weights_path(cache, key, which).read_bytes()
                write_atomic(data, weights_path(into, key, which), "a reference run's weights")
            run["weights"] = {w: weights_path(Path(), key, w).as_posix() for w in WHICH}
    record = {
        "experiment": experiment.name,
        "dataset": dataset,
        "budget": budget,
        "recipe": recipe,
        "runs": runs,
        "made_on": f"{made_on}, torch {torch.__version__}",
    }
    return write_json(record, into / f"{experiment.name}.json", "a reference experiment")


# --------------------------------------------------------------------------------------------
# Reading them back, for the notebooks and the tests.
# --------------------------------------------------------------------------------------------


@dataclass
class ReferenceRuns:
    """A saved experiment: `runs[label]` is one dict per seed (see `run_one`)."""

    experiment: Experiment
    record: dict

    @property
    def runs(self) -> dict[str, list[dict]]:
        return self.record["runs"]

    def test_acc(self, label: str) -> list[float]:
        """The variant's final test accuracy, one per seed."""
        return [run["test_acc"] for run in self.runs[label]]

    @property
    def label(self) -> str:
        """The data and budget, for figure titles: `'synthetic stand-in, reference budget'`."""
        return f"{dataset_label(self.record['dataset'])}, {self.record['budget']} budget"

    @property
    def classes(self) -> tuple[str, ...]:
        return dataset_classes(self.record["dataset"])

    def spread(self, label: str, key: str = "test_acc") -> tuple[Tensor, Tensor, Tensor]:
        """Mean, lowest and highest over seeds of a number or list each run saved under `key`.

        `key`: `'test_acc'`, `'train_acc'`, `'per_class_acc'` (one value per class) or
        `'test_acc_per_epoch'` (one per tested epoch, see `tested_epochs`).
        """
        values = torch.tensor([run[key] for run in self.runs[label]], dtype=torch.float64)
        return values.mean(dim=0), values.min(dim=0).values, values.max(dim=0).values

    def weights(self, label: str, seed: int = 0, which: str = "final") -> Path:
        """The snapshot file of a variant's run, for `load_model`: `which` is `'initial'` or
        `'final'`. Only the experiment's `keep_weights` variants have them."""
        check_choice(which, WHICH, "which")
        if label not in self.experiment.keep_weights:
            raise ValueError(
                f"the {self.experiment.name} runs of {label!r} kept no weights; those that did: "
                f"{', '.join(map(repr, self.experiment.keep_weights)) or 'none'}."
            )
        [run] = [run for run in self.runs[label] if run["seed"] == seed] or [None]
        if run is None:
            seeds = ", ".join(str(run["seed"]) for run in self.runs[label])
            raise ValueError(f"no run of {label!r} with seed {seed}; the seeds are {seeds}.")
        where = folder(self.record["dataset"], self.record["budget"])
        return where / run["weights"][which]

    def tested_epochs(self, label: str) -> list[int]:
        """The epochs after which the variant's runs were tested."""
        return self.runs[label][0]["tested_epochs"]

    def describe(self) -> str:
        """Where these numbers come from: data, budget, seeds and machine."""
        r = self.record
        return (
            f"Reference runs ({r['experiment']}): {dataset_label(r['dataset'])}, "
            f"{r['budget']} budget, seeds {', '.join(map(str, r['recipe']['seeds']))}, "
            f"made by `{COMMAND}` on {r['made_on']}."
        )

    def table(self) -> str:
        """One line per variant: test and train accuracy over seeds, the gap, and the regimes."""
        test_head, train_head = "test acc: mean (range)", "train acc: mean (range)"
        lines = [
            f"{'':28s} {'params':>8s} {'images':>7s} {'epochs':>6s}  {test_head:>22s}  "
            f"{train_head:>23s}  {'gap':>5s}  regime"
        ]
        for label, runs in self.runs.items():
            test, train = self.test_acc(label), [run["train_acc"] for run in runs]
            gap = sum(train) / len(train) - sum(test) / len(test)
            recipe = self.record["recipe"]["variants"][label]
            lines.append(
                f"{label:28s} {runs[0]['params']:8,d} {recipe['train_images']:7,d} "
                f"{recipe['epochs']:6d}  {mean_and_range(test):>22s}  "
                f"{mean_and_range(train):>23s}  {gap:5.1%}  {self.regime(label)}"
            )
        return "\n".join(lines)

    def moves(self, label: str) -> list[float]:
        """How far test accuracy moved over the last quarter of training, one per seed."""
        epochs = self.record["recipe"]["variants"][label]["epochs"]
        return [
            regimes.last_quarter_move(run["tested_epochs"], run["test_acc_per_epoch"], epochs)
            for run in self.runs[label]
        ]

    def converged(self, label: str) -> list[bool]:
        return [move < regimes.CONVERGED_WITHIN for move in self.moves(label)]

    def unsettled(self) -> str:
        """One line per variant with a seed that had not settled: how many, and how far they moved.

        Their numbers are where those runs stopped, not where they would settle.
        """
        lines = []
        for label in self.runs:
            still = [100 * move for move in self.moves(label) if move >= regimes.CONVERGED_WITHIN]
            if still:
                low, high = f"{min(still):.1f}", f"{max(still):.1f}"
                lines.append(
                    f"{label}: {len(still)} of {len(self.runs[label])} seeds still moved by "
                    f"{low if low == high else f'{low} to {high}'} points over the last quarter"
                )
        return "\n".join(lines) or "every run settled"

    def overfitting(self, label: str) -> list[bool]:
        return [regimes.overfitting(run["train_acc"], run["test_acc"]) for run in self.runs[label]]

    def regime(self, label: str) -> str:
        """`'converged 3/3, overfitting 3/3'`: how many seeds are in each regime."""
        n = len(self.runs[label])
        return (
            f"converged {sum(self.converged(label))}/{n}, "
            f"overfitting {sum(self.overfitting(label))}/{n}"
        )

    def compare(self, a: str, b: str) -> str:
        """Which of two variants has the higher test accuracy, or that no difference showed."""
        return regimes.compare_words(self.test_acc(a), self.test_acc(b), a, b)

    def accuracy(self, label: str) -> list[float]:
        """The variant's final test accuracy, one per seed (what a claim compares)."""
        return self.test_acc(label)

    def check_claims(self) -> list[str]:
        """The experiment's claims that its saved runs do not bear out (none: all hold)."""
        return failed_claims(self.experiment.claims, self)


def load(name: str, dataset: str = "standin", budget: str = "reference") -> ReferenceRuns | None:
    """The saved experiment `name`, or None when it was not made for this data and budget."""
    experiment = EXPERIMENTS[check_choice(name, EXPERIMENTS, "experiment")]
    path = folder(dataset, budget) / f"{name}.json"
    if not path.exists():
        return None
    return ReferenceRuns(experiment, json.loads(path.read_text()))


# --------------------------------------------------------------------------------------------
# The command line.
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n")[0])
    names = sorted([*EXPERIMENTS, reference_text.NAME])
    parser.add_argument("--only", nargs="+", choices=names, help="experiments (default: all)")
    parser.add_argument("--dataset", choices=DATASETS, default="standin")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="reference")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time on a CPU")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    print(f"{platform.node()}: {cpu_name()}, torch {torch.__version__}", flush=True)
    # The text experiment reads no images: --dataset and --budget leave it as it is, so it is
    # made by default only with the stand-in's reference budget (or when named with --only).
    default = args.dataset == "standin" and args.budget == "reference"
    chosen = args.only or [*EXPERIMENTS, *([reference_text.NAME] if default else [])]
    images = [name for name in chosen if name in EXPERIMENTS]
    for path in make(images, args.dataset, args.budget, args.jobs) if images else []:
        _report(load(path.stem, args.dataset, args.budget))
    if reference_text.NAME in chosen:
        reference_text.make(args.jobs)
        _report(reference_text.load())
    return 0


def _report(runs) -> None:
    print(f"\n{runs.describe()}\n{runs.table()}")
    for failed in runs.check_claims():
        print(f"claim not borne out: {failed}")


if __name__ == "__main__":
    raise SystemExit(main())
