"""What a Mixer learns, as numbers: the weights behind the course's pictures (`mixer_edu.viz`).

**Token-mixing units.** The first layer of a block's token-mixing MLP has the weight matrix
W1 of shape (D_S, N). Hidden unit k computes, for every channel separately,

    h_k = sum over patches n of W1[k, n] * x_n        (x_n: the value of that channel at patch n)

so row k says how much unit k listens to each of the N patches. The patches lie on an h x w grid
(`model.grid_size`), so row k reshaped to (h, w) is a picture: unit k's "receptive field" over
the whole image. Figure 5 of the paper shows these pictures for a Mixer-B/16 (14 x 14 grid);
`token_mixing_units` returns them, `(D_S, h, w)`.

**Pairs of opposite phase.** The paper observes that many units come in pairs w_i ≈ -w_j: the same
pattern with its sign flipped, like a light-on-dark and a dark-on-light detector. (One way to see
why: the GELU after W1 lets mostly positive responses through, so detecting a pattern in both
polarities takes two units.) We measure how opposite two units are by their cosine similarity

    cos(w_i, w_j) = <w_i, w_j> / (|w_i| |w_j|)        -1: exact opposites, 0: unrelated, +1: same

and pair them greedily: take the most negative cosine of all, pair those two units, remove them,
repeat. Only pairs with cos <= `max_cosine` (-0.5 by default: clearly opposite) are kept; the
remaining units are "unpaired". Greedy matching is simple to follow and exact whenever each unit
has one clear partner, which is the case the paper describes. (For reference: two random vectors
in 64 dimensions have a cosine of about 0 +- 0.125, so -0.5 is far beyond chance.)

**Spatial frequency.** To sort the pictures from smooth blobs to fine stripes we use the 2-D
discrete Fourier transform F of each unit's (h, w) picture. Frequency (u, v) has the radial
frequency r(u, v) = sqrt(f_u^2 + f_v^2) in cycles per patch (`torch.fft.fftfreq`: from 0 for a
constant picture up to 0.5 for a checkerboard along one axis, sqrt(0.5) diagonally). A unit's
spatial frequency is the power-weighted mean of r,

    frequency(w) = sum_uv |F_uv|^2 r(u, v) / sum_uv |F_uv|^2

A cosine grating with k cycles across an 8-patch grid gets exactly k / 8. The frequency of a
pair is the mean of its two units' (equal for exact opposites, since |F(-w)| = |F(w)|).
`figure5_order` sorts pairs from low to high frequency, then lists the unpaired units (also low to
high), which is the order of the paper's figure.

**Stem filters.** The stem (`mixer_edu.patching`) projects each P x P x C patch with a filter of
the same shape; `stem_filters` returns them as small images `(D, P, P, C)`.

**Channel mixing.** The channel-mixing MLP has no picture in its weights (its inputs are channels,
which have no position), but its hidden units can be *evaluated* at every patch of one image:
`channel_mixing_responses` returns the hidden activations GELU(fc1(LayerNorm(token))) as maps on
the patch grid, `(D_C, h, w)`. Every map is the same MLP applied to each patch on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .support.validation import check_image_batch, check_tensor

DEFAULT_MAX_COSINE = -0.5


# --------------------------------------------------------------------------------------------
# Reading weights out of a model.
# --------------------------------------------------------------------------------------------


def _blocks(model: nn.Module) -> nn.Sequential:
    blocks = getattr(model, "blocks", None)
    if blocks is None or not hasattr(model, "grid_size"):
        raise TypeError(
            f"expected a Mixer (e.g. mixer_edu.create_model('mixer_cifar_small')), "
            f"got {type(model).__name__}; a model loaded with timm converts with "
            "mixer_edu.tools.pretrained.from_timm(model)."
        )
    return blocks


def _check_block_index(model: nn.Module, block: int) -> nn.Module:
    blocks = _blocks(model)
    if isinstance(block, bool) or not isinstance(block, int):
        raise TypeError(f"block must be an int, got {block!r} ({type(block).__name__}).")
    if not -len(blocks) <= block < len(blocks):
        raise ValueError(
            f"block {block} does not exist: this model has {len(blocks)} blocks, "
            f"numbered 0 to {len(blocks) - 1}."
        )
    return blocks[block]


def token_mixing_weight(model: nn.Module, block: int = 0) -> Tensor:
    """The weight whose rows are the token-mixing pictures of `block` (the parameter itself).

    Every block says which weight mixes its tokens through its `token_mixing_weight()` method:
    for a Mixer block the first layer of the token-mixing MLP, `(D_S, N)`; for a gMLP block
    (`mixer_edu.gmlp`) the spatial gating projection, `(N, N)`, whose row i says how much token i
    gathers from every token.
    """
    layer = _check_block_index(model, block)
    try:
        method = layer.token_mixing_weight
    except AttributeError:
        raise TypeError(
            f"block {block} is a {type(layer).__name__}, which has no token_mixing_weight() "
            "method (MixerBlock and SpatialGatingBlock have one; add it to a new kind of block)."
        ) from None
    return method()


@torch.no_grad()
def token_mixing_units(model: nn.Module, block: int = 0) -> Tensor:
    """The token-mixing units of `block` as pictures on the patch grid.

    Returns:
        `(D_S, h, w)` float32 copy on the CPU, with `(h, w) = model.grid_size`: unit k's row of
        W1 `(D_S, N)`, reshaped row by row as the patches were numbered (`patchify`).
    """
    weight = token_mixing_weight(model, block).detach().float().cpu()  # (D_S, N)
    rows, columns = model.grid_size
    return rearrange(weight, "k (h w) -> k h w", h=rows, w=columns).clone()


@torch.no_grad()
def stem_filters(model: nn.Module) -> Tensor:
    """The stem's filters as small images.

    Returns:
        `(D, P, P, C)` float32 copy on the CPU: filter d of the patch projection, in the
        (row, column, channel) layout of an image, i.e. `conv.weight[d]` moved channels-last.
    """
    _blocks(model)
    weight = model.stem.proj.weight.detach().float().cpu()  # (D, C, P, P)
    return rearrange(weight, "d c p1 p2 -> d p1 p2 c").clone()


@torch.no_grad()
def channel_mixing_responses(model: nn.Module, images: Tensor, block: int = 0) -> Tensor:
    """The hidden units of `block`'s channel-mixing MLP, evaluated at every patch of the images.

    The activations are captured with a forward hook on the MLP's non-linearity while the model
    runs as usual (in eval mode), so they are exactly what the model computes.

    Args:
        model: a Mixer.
        images: `(B, C, H, W)`, normalised as the model expects, on any device (moved to the
            model's).
        block: which block.

    Returns:
        `(B, D_C, h, w)`: GELU(fc1(LayerNorm(token))) for each hidden unit, on the patch grid,
        on the CPU.
    """
    layer = _check_block_index(model, block)
    check_image_batch(images)
    mlp = getattr(layer, "mlp_channels", None)
    if mlp is None or not hasattr(mlp, "act"):
        raise TypeError(f"block {block} ({type(layer).__name__}) has no channel-mixing MLP.")
    captured = []
    handle = mlp.act.register_forward_hook(lambda module, args, output: captured.append(output))
    was_training = model.training
    try:
        model.eval()
        model(images.to(next(model.parameters()).device))
    finally:
        handle.remove()
        model.train(was_training)
    hidden = captured[0].detach().float().cpu()  # (B, N, D_C)
    rows, columns = model.grid_size
    return rearrange(hidden, "b (h w) d -> b d h w", h=rows, w=columns)


# --------------------------------------------------------------------------------------------
# Pairs of opposite phase and spatial frequency: pure functions of the pictures.
# --------------------------------------------------------------------------------------------


def _check_units(units) -> Tensor:
    check_tensor(units, "units")
    if units.ndim != 3:
        raise ValueError(
            f"units must have shape (K, h, w): K pictures on an h x w grid, got "
            f"{tuple(units.shape)}; token_mixing_units(model, block) returns this shape."
        )
    return units.detach().float().cpu()


def cosine_similarities(units: Tensor) -> Tensor:
    """Cosine similarity of every pair of units: `(K, h, w) -> (K, K)`; 0 for an all-zero unit."""
    flat = F.normalize(_check_units(units).flatten(1), dim=1)  # (K, h*w), unit length
    return flat @ flat.T


def pair_opposite_phase(
    units: Tensor, max_cosine: float = DEFAULT_MAX_COSINE
) -> tuple[list[tuple[int, int]], list[int]]:
    """Pair units of opposite phase greedily by the most negative cosine similarity.

    Repeatedly takes the two not-yet-paired units with the most negative cosine and pairs them,
    as long as that cosine is at most `max_cosine`.

    Args:
        units: `(K, h, w)`.
        max_cosine: the largest cosine that still counts as opposite phase, in [-1, 1].

    Returns:
        `(pairs, unpaired)`: pairs `(i, j)` in the order they were found (most opposite first),
        and the indices of the units left without a partner, in increasing order.
    """
    if isinstance(max_cosine, bool) or not isinstance(max_cosine, (int, float)):
        raise TypeError(f"max_cosine must be a number in [-1, 1], got {max_cosine!r}.")
    if not -1.0 <= max_cosine <= 1.0:
        raise ValueError(
            f"max_cosine must be in [-1, 1] (a cosine similarity), got {max_cosine}; "
            f"{DEFAULT_MAX_COSINE} keeps only clearly opposite pairs."
        )
    cosine = cosine_similarities(units)
    count = len(cosine)
    i, j = torch.triu_indices(count, count, offset=1)  # every pair once, i < j
    values = cosine[i, j]
    keep = values <= max_cosine
    i, j, values = i[keep], j[keep], values[keep]
    order = torch.argsort(values, stable=True)  # most negative first; ties keep (i, j) order
    used = torch.zeros(count, dtype=torch.bool)
    pairs = []
    for a, b in zip(i[order].tolist(), j[order].tolist(), strict=True):
        if not used[a] and not used[b]:
            used[a] = used[b] = True
            pairs.append((a, b))
    unpaired = torch.nonzero(~used).flatten().tolist()
    return pairs, unpaired


def radial_frequencies(height: int, width: int) -> Tensor:
    """`(height, width)`: r(u, v) = sqrt(f_u^2 + f_v^2) in cycles per patch, in FFT layout."""
    fy = torch.fft.fftfreq(height)  # (h,) cycles per patch along the rows
    fx = torch.fft.fftfreq(width)  # (w,)
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def spatial_frequency(units: Tensor) -> Tensor:
    """Power-weighted mean radial frequency of each unit's 2-D FFT, in cycles per patch.

    `(K, h, w) -> (K,)`; 0 for a constant (or all-zero) unit, k / w for a grating with k cycles
    across a grid of width w.
    """
    units = _check_units(units).double()  # double: exact gratings come out exact
    power = torch.fft.fft2(units).abs() ** 2  # (K, h, w)
    radius = radial_frequencies(*units.shape[-2:]).double()  # (h, w)
    total = power.sum(dim=(1, 2))
    weighted = (power * radius).sum(dim=(1, 2))
    return torch.where(total > 0, weighted / total.clamp_min(1e-300), 0.0).float()


def _positive_first(units: Tensor, i: int, j: int) -> tuple[int, int]:
    """Order a pair so that the first unit is positive (red) where the two differ most.

    For exact opposites that is the patch of the largest |weight|, where the first unit is
    positive and the second negative: the "on" and the "off" version of the same pattern.
    """
    difference = (units[i] - units[j]).flatten()
    strongest = difference.abs().argmax()
    return (i, j) if difference[strongest] >= 0 else (j, i)


@dataclass
class UnitOrder:
    """The order of Figure 5: pairs of opposite phase, low to high frequency, then the rest.

    Attributes:
        pairs: `(i, j)` unit indices; within a pair, unit i is positive where the two differ
            most (see `_positive_first`).
        unpaired: indices of units without a partner, low to high frequency.
        frequency: `(K,)` spatial frequency of every unit (cycles per patch).
        pair_cosine: the cosine similarity of each pair, in the order of `pairs`.
    """

    pairs: list[tuple[int, int]]
    unpaired: list[int]
    frequency: Tensor
    pair_cosine: list[float]

    @property
    def order(self) -> list[int]:
        """All unit indices in display order: the pairs flattened, then the unpaired units."""
        return [k for pair in self.pairs for k in pair] + list(self.unpaired)

    def pair_frequency(self) -> list[float]:
        """The frequency of each pair: the mean of its two units' frequencies."""
        return [(self.frequency[i] + self.frequency[j]).item() / 2 for i, j in self.pairs]


def figure5_order(units: Tensor, max_cosine: float = DEFAULT_MAX_COSINE) -> UnitOrder:
    """Pair units of opposite phase and sort them by spatial frequency, as in the paper's Fig. 5.

    Ties in frequency keep the order of the smaller unit index, so the result is deterministic.
    """
    units = _check_units(units)
    pairs, unpaired = pair_opposite_phase(units, max_cosine)
    frequency = spatial_frequency(units)
    pairs = [_positive_first(units, i, j) for i, j in pairs]

    def pair_key(pair):
        i, j = pair
        return ((frequency[i] + frequency[j]).item() / 2, min(i, j))

    pairs.sort(key=pair_key)
    unpaired = sorted(unpaired, key=lambda k: (frequency[k].item(), k))
    cosine = cosine_similarities(units)
    return UnitOrder(
        pairs=pairs,
        unpaired=unpaired,
        frequency=frequency,
        pair_cosine=[cosine[i, j].item() for i, j in pairs],
    )


def grating(height: int, width: int, cycles_y: int, cycles_x: int, phase: float = 0.0) -> Tensor:
    """A cosine grating `(height, width)` with whole numbers of cycles along each axis.

    cos(2 pi (cycles_y * y / height + cycles_x * x / width) + phase): a picture whose spatial
    frequency is known exactly, sqrt((cycles_y / height)^2 + (cycles_x / width)^2) cycles per
    patch. Useful to check `spatial_frequency` and to see what a "frequency" looks like.

    Args:
        height, width: the picture's size (the patch grid's rows and columns).
        cycles_y, cycles_x: whole cycles along each axis.
        phase: shift of the cosine, in radians.
    """
    ys = torch.arange(height, dtype=torch.float64)[:, None] / height
    xs = torch.arange(width, dtype=torch.float64)[None, :] / width
    return torch.cos(2 * math.pi * (cycles_y * ys + cycles_x * xs) + phase).float()
