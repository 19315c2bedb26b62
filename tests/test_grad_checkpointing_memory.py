"""Gradient checkpointing holds less memory during a training pass (measured, not timed)."""

import torch

from mixer_edu import MlpMixer
from mixer_edu.tools.bench_memory import peak_step_memory


def test_checkpointing_lowers_the_peak_memory_of_a_training_pass():
    model = MlpMixer(img_size=32, patch_size=4, num_blocks=6, embed_dim=64, num_classes=10)
    images, labels = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    peaks = {}
    for enabled in (False, True):
        model.set_grad_checkpointing(enabled)
        peaks[enabled] = peak_step_memory(model, images, labels)
    # Without checkpointing every block's activations are held until the backward pass; with
    # it only each block's input is (plus one block's insides while it is recomputed).
    assert 0 < peaks[True] < 0.6 * peaks[False]
    assert model.stem.proj.weight.grad is not None  # the pass really ran backward
