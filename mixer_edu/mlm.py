"""A masked language model on characters: self-attention against the Mixer's MLP token mixing.

The experiment trains the same small encoder (`mixer_edu.seq_mixing.TextEncoder`) twice, once
with softmax self-attention and once with MLP token mixing, on the same data, with the same seed,
and compares them; then it does it again with other seeds, because one pair of short runs can be
luck (a seed changes the initial weights, the batches and their masks).

**The task (BERT's, on characters).** Cut English text into pieces of `num_tokens` characters. In
every piece pick 15% of the positions at random; replace 80% of those by a `[MASK]` symbol, 10% by
a random character and leave 10% unchanged (so the model cannot rely on seeing `[MASK]` to know
where to work). The model predicts the original character at the picked positions only; the loss
is the cross-entropy there, and the score is the **masked-character accuracy** on a held-out part
of the text that training never sees.

To fill in `wh_le` or `retur_` a model must read the neighbouring positions: the task can only be
solved by mixing tokens, which is exactly the part the two encoders do differently.

**The text.** The English documentation topics that ship with Python itself
(`pydoc_data.topics`, the pages `help("assert")` shows: about 460,000 characters with
Python 3.11), so the experiment runs offline and needs no download. It is normalised to printable
ASCII with single spaces (`mlm_text.clean_text`), and cut into blocks of `16 * num_tokens`
characters; every 10th block is held out. The text differs a little between Python versions, so
the exact numbers do too.

**The numbers.** `run_experiment` returns, for each mixer and seed: the parameter count, the loss
curves (training loss at every step, held-out loss and accuracy at every evaluation) and the final
held-out accuracy; every run is scored on the same held-out characters. For the first seed's
models it also measures the training speed in sequences per second, in one process, by timing
training steps of the two models alternately and taking the median (timing on a shared machine is
noisy, and alternating exposes both models to the same noise). The CLI prints a table, with the
mean and the range over the seeds:

    python -m mixer_edu.mlm                     # both mixers, 2000 steps each, seed 0
    python -m mixer_edu.mlm --fast --seeds 0 1 2  # the notebook's fast mode: a smaller model
    python -m mixer_edu.mlm --steps 2000 --num-tokens 128 --out runs/mlm
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .mlm_text import IGNORE_INDEX, MlmData, mask_tokens
from .seq_mixing import MIXERS, TextEncoder, check_mixer
from .support.errors import TrainingDivergedError, command_line, exit_status
from .support.metrics import mean_and_range
from .support.paths import check_folder
from .support.runtime import autocast, fast_mode, resolve_device
from .support.validation import check_choice, check_positive_int, check_range
from .train import parameter_groups, warmup_cosine

# ------------------------------------------------------------------------------------------------
# Training and evaluation
# ------------------------------------------------------------------------------------------------


@dataclass
class MlmConfig:
    """Everything that defines one run; the same config trains both mixers."""

    num_tokens: int = 64
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    mlp_ratio: float = 4.0
    token_mlp_hidden: int | None = None  # MLP mixer's hidden width (default: num_tokens)
    batch_size: int = 64
    steps: int = 2000
    lr: float = 1e-2
    warmup_steps: int = 100
    weight_decay: float = 0.01
    eval_every: int = 100
    eval_sequences: int = 512
    seed: int = 0
    precision: str = "fp32"  # or "bf16": bfloat16 autocast, faster on many CPUs, less exact

    def __post_init__(self):  # bad values fail here, not as a silent or cryptic run
        positive = ("num_tokens", "d_model", "num_layers", "num_heads", "batch_size", "steps")
        for name in (*positive, "eval_every", "eval_sequences"):
            check_positive_int(getattr(self, name), name)
        if self.token_mlp_hidden is not None:
            check_positive_int(self.token_mlp_hidden, "token_mlp_hidden")
        if self.warmup_steps != 0:
            check_positive_int(self.warmup_steps, "warmup_steps")
        check_range(self.mlp_ratio, "mlp_ratio", 0, low_open=True)
        check_range(self.lr, "lr", 0, low_open=True)
        check_range(self.weight_decay, "weight_decay", 0)
        check_choice(self.precision, ("fp32", "bf16"), "precision")

    @classmethod
    def fast(cls, **overrides) -> MlmConfig:
        """A short run for the notebook and CI: a narrower model on shorter sequences and batches.

        On the course's 2-core VM one step of this model took about a quarter of the time of a
        full-size step (num_tokens 64, d_model 64, batch 64), so the notebook trains both mixers
        with three seeds in about the time one full-size pair of 250 steps took; 600 steps take both
        models well past guessing the most common character.
        """
        fast = {
            "num_tokens": 32,
            "d_model": 32,
            "batch_size": 32,
            "steps": 600,
            "warmup_steps": 50,
            "eval_every": 50,
        }
        return cls(**{**fast, **overrides})


@dataclass
class MlmRun:
    """The outcome of training one mixer."""

    mixer: str
    num_params: int
    train_loss: list[float]  # one value per step
    evals: list[dict]  # {"step", "heldout_loss", "heldout_accuracy"}: at step 0, then every
    #                    `eval_every` steps and at the end
    train_seconds: float
    model: TextEncoder | None = field(default=None, repr=False)

    @property
    def heldout_accuracy(self) -> float:
        return self.evals[-1]["heldout_accuracy"]

    @property
    def heldout_loss(self) -> float:
        return self.evals[-1]["heldout_loss"]


def build_encoder(mixer: str, config: MlmConfig, vocab_size: int) -> TextEncoder:
    """The encoder of the experiment for one mixer; everything else is the same."""
    return TextEncoder(
        vocab_size,
        config.num_tokens,
        mixer=check_mixer(mixer),
        d_model=config.d_model,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        mlp_ratio=config.mlp_ratio,
        token_mlp_hidden=config.token_mlp_hidden,
    )


def mlm_loss(
    model: TextEncoder, inputs: Tensor, targets: Tensor, precision: str = "fp32"
) -> Tensor:
    """Cross-entropy at the picked positions only (the others are `IGNORE_INDEX`)."""
    with autocast(inputs.device, precision):
        logits = model(inputs)  # (B, L, V)
    logits = logits.flatten(0, 1).float()  # (B*L, V)
    return F.cross_entropy(logits, targets.flatten(), ignore_index=IGNORE_INDEX)


@torch.no_grad()
def evaluate_heldout(
    model: TextEncoder, inputs: Tensor, targets: Tensor, batch_size: int = 256
) -> dict[str, float]:
    """`heldout_loss` and `heldout_accuracy` (of the masked characters) over all sequences."""
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for start in range(0, len(inputs), batch_size):
        logits = model(inputs[start : start + batch_size]).flatten(0, 1)  # (B*L, V)
        target = targets[start : start + batch_size].flatten()
        picked = target != IGNORE_INDEX
        total_loss += F.cross_entropy(logits[picked], target[picked], reduction="sum").item()
        correct += (logits[picked].argmax(dim=-1) == target[picked]).sum().item()
        count += picked.sum().item()
    model.train(was_training)
    return {"heldout_loss": total_loss / count, "heldout_accuracy": correct / count}


HELDOUT_SEED = 1  # the held-out masking's own seed: the same whatever the run's seed


def heldout_set(data: MlmData, config: MlmConfig) -> tuple[Tensor, Tensor]:
    """The held-out sequences with one fixed masking, the same for every mixer and every seed.

    So all runs are scored on the same characters, and a difference between seeds comes from
    training, not from which characters happened to be masked.
    """
    generator = torch.Generator().manual_seed(HELDOUT_SEED)
    return mask_tokens(data.heldout_sequences(config.eval_sequences), data.vocab, generator)


def train_mlm(
    mixer: str,
    config: MlmConfig,
    data: MlmData | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> MlmRun:
    """Train one encoder with `mixer` on the masked-character task; return its curves and model.

    Deterministic for a given `config.seed`: the model's initial weights, the training batches and
    their masks come from seeded generators on the CPU, so both mixers see exactly the same data
    on any device. The held-out set does not depend on the seed (`heldout_set`). `device`: where
    to train (default: the course's, `MIXER_EDU_DEVICE` or the fastest this machine has).
    """
    data = data or MlmData(num_tokens=config.num_tokens)
    device = resolve_device(device)
    torch.manual_seed(config.seed)
    model = build_encoder(mixer, config, data.vocab.size).to(device)
    # The course's optimiser: AdamW, decay on the weight matrices only (`train.parameter_groups`),
    # and its warm-up cosine (`train.warmup_cosine`), here ending at 10% of the peak.
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr)
    schedule = warmup_cosine(optimizer, config.warmup_steps, config.steps, final=0.1)
    heldout_inputs, heldout_targets = (t.to(device) for t in heldout_set(data, config))
    generator = torch.Generator().manual_seed(config.seed)

    evals = [{"step": 0, **evaluate_heldout(model, heldout_inputs, heldout_targets)}]  # untrained
    train_loss, train_seconds = [], 0.0
    bar = tqdm(range(1, config.steps + 1), desc=f"{mixer:9s}", disable=not progress)
    for step in bar:
        tokens = data.train_batch(config.batch_size, generator)
        inputs, targets = (t.to(device) for t in mask_tokens(tokens, data.vocab, generator))
        start = time.perf_counter()
        loss = mlm_loss(model, inputs, targets, config.precision)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        train_seconds += time.perf_counter() - start
        train_loss.append(loss.item())
        if not math.isfinite(train_loss[-1]):  # nothing is learned after an inf or nan loss
            raise TrainingDivergedError(
                f"training the {mixer} encoder diverged: the loss became {train_loss[-1]} at "
                f"step {step} of {config.steps}. The learning rate ({config.lr:g}) is probably "
                f"too high; try a lower one, e.g. --lr {min(config.lr / 10, MlmConfig.lr):g}."
            )
        if step % config.eval_every == 0 or step == config.steps:
            evals.append({"step": step, **evaluate_heldout(model, heldout_inputs, heldout_targets)})
            bar.set_postfix(heldout_acc=f"{evals[-1]['heldout_accuracy']:.3f}")
    model.eval()
    num_params = sum(p.numel() for p in model.parameters())
    return MlmRun(mixer, num_params, train_loss, evals, train_seconds, model)


def training_speed(
    models: dict[str, TextEncoder],
    data: MlmData,
    config: MlmConfig,
    repeats: int = 10,
) -> dict[str, float]:
    """Training sequences per second of each model, timed alternately in this process.

    Every round times one training step (forward, backward, optimizer step) of each model in
    turn, on the same batch; the result is `batch_size / median step time`. The optimizer has
    learning rate 0, so the models' weights do not change.
    """
    generator = torch.Generator().manual_seed(config.seed + 2)
    tokens = data.train_batch(config.batch_size, generator)
    device = next(next(iter(models.values())).parameters()).device  # where they trained
    inputs, targets = (t.to(device) for t in mask_tokens(tokens, data.vocab, generator))
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=0.0) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for round_index in range(repeats + 1):
        for name, model in models.items():
            model.train()
            start = time.perf_counter()
            loss = mlm_loss(model, inputs, targets, config.precision)
            optimizers[name].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[name].step()
            if round_index > 0:  # the first round warms up allocators and kernels
                times[name].append(time.perf_counter() - start)
            model.eval()
    return {name: config.batch_size / statistics.median(t) for name, t in times.items()}


def unigram_accuracy(data: MlmData, config: MlmConfig) -> float:
    """Held-out accuracy of always guessing the most common training character (a baseline)."""
    most_common = torch.bincount(data.train_blocks.flatten()).argmax()
    _, targets = heldout_set(data, config)
    picked = targets[targets != IGNORE_INDEX]
    return (picked == most_common).float().mean().item()


def run_experiment(
    config: MlmConfig | None = None,
    mixers: tuple[str, ...] = MIXERS,
    data: MlmData | None = None,
    progress: bool = True,
    speed_repeats: int = 10,
    seeds: tuple[int, ...] | None = None,
    device: str | torch.device | None = None,
) -> dict:
    """Train every mixer in `mixers` once per seed, with the same config and data; time them.

    `seeds` defaults to `(config.seed,)`; each seed replaces `config.seed`. Returns a dict with
    `config`, `seeds`, `vocab_size`, `unigram_accuracy`, `seed_runs` (per mixer, one `MlmRun` per
    seed, in the order of `seeds`), `runs` (per mixer, the first seed's run) and
    `sequences_per_second` (see `training_speed`) of the first seed's models.
    """
    config = config or (MlmConfig.fast() if fast_mode() else MlmConfig())
    seeds = tuple(seeds) if seeds is not None else (config.seed,)
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed, e.g. seeds=(0, 1, 2)")
    data = data or MlmData(num_tokens=config.num_tokens)
    seed_runs = {
        mixer: [
            train_mlm(mixer, replace(config, seed=seed), data, progress, device) for seed in seeds
        ]
        for mixer in mixers
    }
    runs = {mixer: mixer_runs[0] for mixer, mixer_runs in seed_runs.items()}
    speed = training_speed({m: run.model for m, run in runs.items()}, data, config, speed_repeats)
    return {
        "config": config,
        "seeds": seeds,
        "vocab_size": data.vocab.size,
        "unigram_accuracy": unigram_accuracy(data, config),
        "seed_runs": seed_runs,
        "runs": runs,
        "sequences_per_second": speed,
    }


def format_results(results: dict) -> str:
    """The experiment as a table; over several seeds, each number as mean (lowest - highest)."""
    config, seeds = results["config"], results["seeds"]
    several = len(seeds) > 1

    def column(values: list[float], spec: str) -> str:
        return mean_and_range(values, spec) if several else f"{values[0]:{spec}}"

    over = ": mean (range)" if several else ""
    loss_width, accuracy_width = (27, 24) if several else (14, 11)
    lines = [
        f"Masked-character model, pydoc topics, num_tokens={config.num_tokens}, "
        f"{config.steps} steps of {config.batch_size} sequences, d_model={config.d_model}, "
        f"{config.num_layers} layers, seed{'s' if several else ''} {', '.join(map(str, seeds))}",
        f"{'mixer':10s} {'params':>9s}   {'held-out loss' + over:>{loss_width}s}   "
        f"{'masked acc' + over:>{accuracy_width}s}   {'train seq/s':>11s}",
    ]
    for mixer, runs in results["seed_runs"].items():
        loss = column([run.heldout_loss for run in runs], "5.3f")
        accuracy = column([run.heldout_accuracy for run in runs], "5.1%")
        speed = results["sequences_per_second"][mixer]
        lines.append(
            f"{mixer:10s} {runs[0].num_params:9,d}   {loss:>{loss_width}s}   "
            f"{accuracy:>{accuracy_width}s}   {speed:11.0f}"
        )
    lines.append(
        f"(guessing the most common character: {results['unigram_accuracy']:.1%}; "
        f"speed: seed {seeds[0]}'s models)"
    )
    return "\n".join(lines)


def save_results(results: dict, out: str | Path) -> Path:
    """Write `results.json` (config, curves, numbers) and one `encoder_<mixer>.pt` per mixer.

    The curves and the encoders are the first seed's; the final numbers are given for every seed.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "config": asdict(results["config"]),
        "seeds": list(results["seeds"]),
        "vocab_size": results["vocab_size"],
        "unigram_accuracy": results["unigram_accuracy"],
        "sequences_per_second": results["sequences_per_second"],
        "runs": {
            mixer: {
                "num_params": run.num_params,
                "heldout_accuracy": run.heldout_accuracy,
                "heldout_loss": run.heldout_loss,
                "heldout_accuracy_per_seed": [
                    r.heldout_accuracy for r in results["seed_runs"][mixer]
                ],
                "heldout_loss_per_seed": [r.heldout_loss for r in results["seed_runs"][mixer]],
                "train_seconds": run.train_seconds,
                "train_loss": run.train_loss,
                "evals": run.evals,
            }
            for mixer, run in results["runs"].items()
        },
    }
    path = out / "results.json"
    path.write_text(json.dumps(summary, indent=1))
    for mixer, run in results["runs"].items():
        torch.save(run.model.state_dict(), out / f"encoder_{mixer}.pt")
    return path


@command_line  # bad input and a diverged run end in one `error:` line and exit status 2
def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m mixer_edu.mlm",
        description="Train a masked character model with self-attention and with MLP token "
        "mixing on Python's documentation topics, and compare them.",
    )
    full, fast = MlmConfig(), MlmConfig.fast()

    def option(flag: str, field_name: str, kind: type, what: str) -> None:
        parser.add_argument(
            flag,
            type=kind,
            dest=field_name,
            help=f"{what} (default {getattr(full, field_name)}, "
            f"with --fast {getattr(fast, field_name)})",
        )

    parser.add_argument("--mixers", nargs="+", choices=MIXERS, default=list(MIXERS))
    parser.add_argument(
        "--fast", action="store_true", help="short run, smaller model (as MIXER_EDU_FAST=1)"
    )
    option("--steps", "steps", int, "training steps")
    option("--num-tokens", "num_tokens", int, "characters per sequence")
    option("--d-model", "d_model", int, "channels per position")
    option("--layers", "num_layers", int, "encoder layers")
    option("--heads", "num_heads", int, "attention heads")
    option("--batch-size", "batch_size", int, "sequences per step")
    option("--lr", "lr", float, "peak learning rate")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[full.seed],
        help="one run of each mixer per seed; the table gives mean and range (default 0)",
    )
    parser.add_argument(
        "--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: bfloat16 autocast"
    )
    parser.add_argument("--device", help="cpu, cuda or mps (default: the fastest available)")
    parser.add_argument("--out", help="directory for results.json and the trained encoders")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    make = MlmConfig.fast if args.fast or fast_mode() else MlmConfig
    names = ("steps", "num_tokens", "d_model", "num_layers", "num_heads", "batch_size", "lr")
    overrides = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    config = make(**overrides, seed=args.seeds[0], precision=args.precision)
    if args.out:
        check_folder(args.out, "--out")  # before training, not after it
    results = run_experiment(
        config,
        tuple(args.mixers),
        progress=not args.no_progress,
        seeds=tuple(args.seeds),
        device=args.device,
    )
    print(format_results(results))
    if args.out:
        print(f"wrote {save_results(results, args.out)}")
    return results


if __name__ == "__main__":
    sys.exit(exit_status(main()))
