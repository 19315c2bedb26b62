"""Evaluating a classifier: its logits on every image of a loader, loss and accuracy.

The model runs in eval mode (no DropPath) without gradients, with the same precision as training
(`support.runtime`), and everything comes back to the CPU as float32, for metrics and pictures.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .support.plan import resolve_precision
from .support.runtime import autocast


def predict(
    model: nn.Module, loader, device=None, precision: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of every image in `loader`: `(N, classes)` (float32) and `(N,)`.

    `device` defaults to the model's device, and the images are moved there, from wherever
    the loader made them; `precision="auto"` follows the trainer's rule
    (`mixer_edu.support.plan.auto_precision`).
    """
    logits, labels = _predict_on_device(model, loader, device, precision)
    return logits.cpu(), labels.cpu()


@torch.no_grad()
def _predict_on_device(model, loader, device, precision):
    """`predict`, leaving the results on the device: a GPU never waits for a copy mid-way."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    all_logits, all_labels = [], []
    for images, labels in loader:
        if precision == "auto":  # the rule looks at the batch size
            precision = resolve_precision(precision, device, len(images))
        with autocast(device, precision):
            all_logits.append(model(images.to(device)).float())
        all_labels.append(labels.to(device))
    return torch.cat(all_logits), torch.cat(all_labels)


def evaluate(
    model: nn.Module, loader, device=None, precision: str = "auto", label_smoothing: float = 0.0
) -> dict:
    """Mean cross-entropy `loss` and accuracy `acc` of `model` on `loader` (in eval mode).

    Computed on the device; the two numbers are read once, at the end."""
    logits, labels = _predict_on_device(model, loader, device, precision)
    loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    return {"loss": loss.item(), "acc": (logits.argmax(1) == labels).float().mean().item()}
