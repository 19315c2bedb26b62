"""Helpers shared by the tests."""

import torch


@torch.no_grad()
def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter random values, so that no comparison passes because weights are zero.

    A freshly built Mixer has a zero head (its logits are all 0, whatever the input) and biases of
    size 1e-6; comparing two such models would prove nothing. Matrices get a standard deviation
    of 1 / sqrt(fan_in), as a trained network roughly has; vectors (biases, norms) N(0, 0.5).
    """
    generator = torch.Generator().manual_seed(seed)
    for parameter in module.parameters():
        noise = torch.randn(parameter.shape, generator=generator)
        scale = parameter[0].numel() ** -0.5 if parameter.ndim > 1 else 0.5
        parameter.copy_(noise * scale)
    return module
