"""The Mixer as a very special CNN (Section 2 of the paper), written out as convolutions.

The paper remarks that, in the extreme case, a Mixer is a CNN: its channel-mixing MLPs are 1x1
convolutions, and its token-mixing MLPs are single-channel depthwise convolutions with a full
receptive field and parameter sharing. This module builds both views from a trained `Mlp`, so a
student can check the remark number by number, and goes the other way too: a small depthwise
convolution is a (very sparse) token-mixing matrix.

Shapes: a Mixer's table is `(B, N, C)` with N = h * w patches read row by row; the same numbers
as an image are `(B, C, h, w)`.

- **Channel mixing = 1x1 convolution.** `Linear(C, D_C)` on every token is a `Conv2d(C, D_C, 1)`
  on the `(B, C, h, w)` image: the kernel sees one position and all channels.
- **Token mixing = one shared single-channel convolution with an h x w kernel.** Row k of fc1's
  `(D_S, N)` weight, laid on the grid, is an `h x w` filter that covers the whole grid (a full
  receptive field, so it fits in one position: no sliding). Each of the C channels is filtered
  on its own (depthwise) with the *same* filters (parameter sharing across channels), which is
  why we fold the channels into the batch: `(B, N, C) -> (B*C, 1, h, w)`. fc2 maps the D_S values
  back to the h x w grid, a transposed convolution with the same kind of full-size filters.
- **A k x k depthwise convolution is a token-mixing matrix.** With "same" padding it maps the N
  values of a channel to N values linearly, so it is an `(N, N)` matrix M with at most k*k
  non-zeros per row, the same kernel in every row, shifted (`depthwise_conv_as_token_mixing`).
  A CNN's locality and weight sharing are exactly these zeros and repetitions; the Mixer's
  token-mixing weights may be any dense matrix, so a Mixer can learn a convolution but is not
  told to.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .mlp import Mlp


def _check_grid(num_tokens: int, grid: tuple[int, int]) -> tuple[int, int]:
    rows, columns = grid
    if rows * columns != num_tokens:
        raise ValueError(
            f"grid {rows}x{columns} has {rows * columns} positions but the table has "
            f"{num_tokens} tokens; pass the patch grid the model was built with (model.grid_size)."
        )
    return rows, columns


def channel_mixing_as_conv(mlp: Mlp) -> nn.Sequential:
    """The channel-mixing `Mlp(C -> D_C -> C)` as two 1x1 convolutions on `(B, C, h, w)`."""
    convs = []
    for linear in (mlp.fc1, mlp.fc2):
        conv = nn.Conv2d(linear.in_features, linear.out_features, kernel_size=1)
        with torch.no_grad():
            conv.weight.copy_(linear.weight[:, :, None, None])  # (out, in) -> (out, in, 1, 1)
            conv.bias.copy_(linear.bias)
        convs.append(conv)
    return nn.Sequential(convs[0], nn.GELU(), convs[1])


def token_mixing_as_conv(mlp: nn.Module, x: Tensor, grid: tuple[int, int]) -> Tensor:
    """Apply a token-mixing MLP (`fc1`: N -> D_S, `fc2`: D_S -> N) to `x` `(B, N, C)` as convs.

    fc1 becomes D_S single-channel `h x w` filters (a full receptive field), shared by every
    channel; fc2 a transposed convolution with D_S filters of the same size back onto the grid.
    Returns `(B, N, C)`, the same numbers as `mlp` applied across the tokens (up to rounding).
    """
    batch, num_tokens, channels = x.shape
    rows, columns = _check_grid(num_tokens, grid)
    images = rearrange(x, "b (h w) c -> (b c) 1 h w", h=rows, w=columns)  # channels -> batch
    filters_in = rearrange(mlp.fc1.weight, "k (h w) -> k 1 h w", h=rows, w=columns)
    hidden = F.gelu(F.conv2d(images, filters_in, mlp.fc1.bias))  # (B*C, D_S, 1, 1)
    filters_out = rearrange(mlp.fc2.weight, "(h w) k -> k 1 h w", h=rows, w=columns)
    out = F.conv_transpose2d(hidden, filters_out)  # (B*C, 1, h, w)
    out = out + rearrange(mlp.fc2.bias, "(h w) -> 1 1 h w", h=rows, w=columns)
    return rearrange(out, "(b c) 1 h w -> b (h w) c", b=batch, c=channels)


def depthwise_conv_as_token_mixing(kernel: Tensor, grid: tuple[int, int]) -> Tensor:
    """The `(N, N)` token-mixing matrix of one `k x k` kernel applied with "same" zero padding.

    Row i holds the kernel's weights at the columns of the positions it reads around position i
    (fewer at the border, where the padding reads zeros). So `matrix @ x` on a `(B, N, C)` table
    equals a depthwise convolution of every channel with this one shared kernel (`groups=C`).
    """
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
        raise ValueError(
            f"kernel must be a square 2-D tensor of odd size (e.g. 3x3); got shape "
            f"{tuple(kernel.shape)}. Even sizes have no centre for 'same' padding."
        )
    rows, columns = grid
    size, half = kernel.shape[0], kernel.shape[0] // 2
    matrix = kernel.new_zeros(rows * columns, rows * columns)
    for r in range(rows):
        for c in range(columns):
            for dr in range(size):
                for dc in range(size):
                    rr, cc = r + dr - half, c + dc - half  # the position the kernel reads
                    if 0 <= rr < rows and 0 <= cc < columns:
                        matrix[r * columns + c, rr * columns + cc] = kernel[dr, dc]
    return matrix
