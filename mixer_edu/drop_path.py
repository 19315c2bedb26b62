"""DropPath (stochastic depth): randomly skip a residual branch for whole samples.

In a residual block `x + f(x)`, DropPath replaces `f(x)` by zero for a random subset of the
samples in the batch, so for those samples the block is the identity and the network is
effectively shallower. Unlike dropout, which zeroes single elements, DropPath makes *one* Bernoulli
draw per sample and zeroes (or keeps) the whole branch output of that sample:

    mask_b ~ Bernoulli(keep_prob),   keep_prob = 1 - drop_prob,   one draw per sample b
    DropPath(f(x))_b = f(x)_b * mask_b / keep_prob

Dividing by `keep_prob` keeps the expected value unchanged, E[mask_b / keep_prob] = 1, so at test
time, when DropPath is switched off (the identity), the next layer sees activations of the same
average size as during training.

How much to drop in each block is a schedule across depth (`drop_path_rates`): timm's Mixer uses
the same rate in every block; the stochastic-depth paper (Huang et al. 2016) increases it
linearly from 0 at the first block to the full rate at the last.

The random draw matches timm's `drop_path` call for call, so under the same seed both drop the
same samples.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .support.validation import check_positive_int, check_probability

SCHEDULES = ("constant", "linear")


def drop_path(
    x: Tensor,
    drop_prob: float = 0.0,
    training: bool = False,
    scale_by_keep: bool = True,
) -> Tensor:
    """Zero whole samples of `x` with probability `drop_prob`; rescale the rest by 1/keep_prob.

    Args:
        x: `(B, ...)`, any number of axes after the batch axis.
        drop_prob: probability of dropping each sample, in [0, 1).
        training: when False (evaluation), return `x` unchanged.
        scale_by_keep: divide the kept samples by `keep_prob` so the expectation is unchanged.

    Returns:
        A tensor of the same shape as `x`.
    """
    if not torch.jit.is_scripting():  # TorchScript cannot compile the check's message
        check_probability(drop_prob, "drop_prob")
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    # One draw per sample: shape (B, 1, 1, ...) broadcasts over every other axis.
    mask_shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = x.new_empty(mask_shape).bernoulli_(keep_prob)
    if scale_by_keep:
        mask.div_(keep_prob)
    return x * mask


class DropPath(nn.Module):
    """Module form of `drop_path`: active in `train()` mode, the identity in `eval()` mode.

    Args:
        drop_prob: probability of dropping a sample's branch, in [0, 1).
        scale_by_keep: rescale kept samples by 1/keep_prob (default True).
    """

    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True):
        super().__init__()
        self.drop_prob = check_probability(drop_prob, "drop_prob")
        self.scale_by_keep = scale_by_keep

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.drop_prob, self.training, self.scale_by_keep)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"


def drop_path_rates(drop_path_rate: float, depth: int, schedule: str = "constant") -> list[float]:
    """The DropPath probability of each of `depth` blocks.

    Args:
        drop_path_rate: the rate of the deepest block, in [0, 1).
        depth: number of blocks.
        schedule: `"constant"` (every block gets `drop_path_rate`, as timm's Mixer) or
            `"linear"` (0 at the first block rising to `drop_path_rate` at the last, as in the
            stochastic-depth paper).

    Returns:
        A list of `depth` floats.
    """
    check_probability(drop_path_rate, "drop_path_rate")
    check_positive_int(depth, "depth")
    if schedule == "constant":
        return [drop_path_rate] * depth
    if schedule == "linear":
        return torch.linspace(0.0, drop_path_rate, depth).tolist()
    raise ValueError(f"unknown drop-path schedule {schedule!r}; use one of {SCHEDULES}.")
