"""The optimiser's set-up: AdamW with selective weight decay, and the warm-up cosine schedule.

- **AdamW** (Adam with decoupled weight decay): the optimiser the Mixer paper and timm use.
  Weight decay pulls weight matrices towards zero; biases and LayerNorm parameters are not
  decayed (shrinking them has no regularising effect, it only shifts or rescales activations).
- **Linear warmup, then cosine decay.** At the start the weights are random and Adam's running
  averages are empty, so big steps are unstable: the learning rate rises linearly from almost 0
  to the peak over `warmup_steps`, then follows half a cosine down to `final` x peak at the
  last step. The image classifier (`mixer_edu.train`) and the text model (`mixer_edu.mlm`) use
  the same schedule.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay the weight matrices; leave biases and LayerNorm parameters (1-D) alone."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def lr_factor(step: int, warmup_steps: int, total_steps: int, final: float = 0.0) -> float:
    """The learning rate at `step` as a fraction of the peak: linear warmup, then cosine to `final`.

    Step 0 already uses a small non-zero rate (1 / warmup_steps of the peak).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, final: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler that sets the learning rate to `lr_factor(step, ...)` x the peak each step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_steps, total_steps, final)
    )
