"""What may change when a run is resumed, and what may not.

A resumed run continues *the same* computation, so the recipe (`TrainConfig`) must match the
checkpoint's, field by field, with one exception:

- `epochs`: a run may be extended (or shortened); the learning-rate schedule is the one of the
  new total, which the message says.

How the run executes (`RunOptions`) may change, and each change is said in one line:

- `device` (a laptop's CPU today, the lab's GPU tomorrow) and `num_workers`, `progress`,
  `compile`: the same maths; a GPU's kernels round differently in the last bits.
- `precision` (fp32 <-> bf16): allowed, because a run must be able to move to a machine without
  bf16, but the numbers are rounded differently from then on, so the run no longer matches an
  uninterrupted one bit for bit; the note says so.
- `data_path`: the same augmentations drawn with other random numbers; the note says how to
  continue exactly.

Everything else in the recipe (learning rate, batch size, augmentation, seed, model, the
training subset...) would silently make a different run, so `check_resumable` refuses it and
names each differing field with both values.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

from . import checkpoint as ckpt

# Recipe fields that may differ from the checkpoint's on resume.
MAY_CHANGE = ("epochs",)


def check_resumable(state: dict, config, path: Path) -> list[str]:
    """Refuse (`ValueError`) a recipe that differs from the checkpoint's; else the notes to say.

    Args:
        state: the loaded checkpoint (`train_config` is its recipe as a dict).
        config: the `TrainConfig` asked for now.
    """
    ckpt.check_same_model(state, config.model_name, config.model_kwargs(), path)
    defaults = {f.name: getattr(type(config)(), f.name) for f in fields(config)}
    # A field added after the checkpoint was written: it ran with the field's default.
    saved = {**defaults, **type(config).saved_recipe(state.get("train_config", {}))}
    asked = asdict(config)
    differing = [name for name in asked if name not in MAY_CHANGE and saved[name] != asked[name]]
    if differing:
        listed = "; ".join(
            f"{name}: checkpoint {saved[name]!r}, asked {asked[name]!r}" for name in differing
        )
        raise ValueError(
            f"{path} was trained with another recipe ({listed}); resuming it with different "
            "settings would not continue the same run. Pass the checkpoint's settings (on the "
            "command line, --resume alone reuses them), or choose another --out folder. Only "
            f"{', '.join(MAY_CHANGE)} may change on resume."
        )
    if saved["epochs"] != asked["epochs"]:
        return [
            f"note: epochs changed from {saved['epochs']} to {asked['epochs']}: the run "
            f"continues to epoch {asked['epochs']}, with the learning-rate schedule of "
            f"{asked['epochs']} epochs from here on."
        ]
    return []


def run_changes(state: dict, precision: str, data_path: str, device: str) -> list[str]:
    """One note for each way of running that differs from the checkpoint's (nothing refused)."""
    notes = []
    # Checkpoints from before these were recorded: the per-image path, the device unknown.
    started = state.get("data_path", "per-image")
    if started != data_path:
        notes.append(
            f"note: this run started on the {started} data path and continues on the "
            f"{data_path} one, whose augmentations are drawn with other random numbers; pass "
            f"--data-path {started} (data_path={started!r}) to continue it exactly."
        )
    if (was := state.get("precision", precision)) != precision:
        notes.append(
            f"note: this run trained in {was} and continues in {precision}: the numbers are "
            "rounded differently from here on, so it will not match an uninterrupted run bit "
            f"for bit; pass --precision {was} to keep it."
        )
    if (was := state.get("device", device)) != device:
        notes.append(
            f"note: this run trained on {was} and continues on {device}: the same recipe, but "
            "another device's kernels round the last bits differently."
        )
    return notes
