"""The MLP: the only kind of layer a Mixer has, besides LayerNorm and the stem.

Two fully connected layers with a GELU non-linearity in between, applied independently to every
vector along the last axis:

    Mlp(x) = fc2( dropout( GELU( fc1(x) ) ) ),  followed by dropout

    x:      (..., in_features)
    fc1:    (..., in_features)     -> (..., hidden_features)
    fc2:    (..., hidden_features) -> (..., out_features)

Because `nn.Linear` acts on the last axis only, the *same* weights are used for every position
along the other axes. A Mixer uses this MLP twice per block: once on columns of the token table
(token mixing, weights shared across channels) and once on its rows (channel mixing, weights shared
across tokens). See `mixer_edu.mixer`.

The attribute names `fc1`, `act`, `drop1`, `fc2`, `drop2` are timm's, so timm checkpoints load.

The same MLP can act along the *first* axis instead, with its weights on the left:
`fc1(x) = W1 · x + b1` for x viewed as `(L, everything else)`, one matrix product over all the
columns at once (`mlp_along_first_axis`). That is token mixing on a table stored tokens first,
`(N, B, C)`: the layout of `nn.MultiheadAttention` that `mixer_edu.seq_mixing` uses, and the one
the Mixer's fast path stores its table in (`mixer_edu.support.tokens_first`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .support.validation import check_positive_int, check_probability, to_pair


class Mlp(nn.Module):
    """Linear -> GELU -> Dropout -> Linear -> Dropout, on the last axis.

    Args:
        in_features: size of the input vectors.
        hidden_features: size of the hidden layer (default: `in_features`).
        out_features: size of the output vectors (default: `in_features`).
        act_layer: the non-linearity, a module class (default `nn.GELU`, as in the paper).
        drop: dropout probability after the activation and after fc2; a float for both, or a pair.
        device, dtype: where and in what precision to create the parameters.

    Shapes:
        `(..., in_features) -> (..., out_features)`.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float | tuple[float, float] = 0.0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        # Only None means "same as the input": a width of 0 is an error, not a default.
        out_features = in_features if out_features is None else out_features
        hidden_features = in_features if hidden_features is None else hidden_features
        for value, name in [
            (in_features, "in_features"),
            (hidden_features, "hidden_features"),
            (out_features, "out_features"),
        ]:
            check_positive_int(value, name)
        drop1, drop2 = to_pair(drop)

        self.fc1 = nn.Linear(in_features, hidden_features, device=device, dtype=dtype)
        self.act = act_layer()
        self.drop1 = nn.Dropout(check_probability(drop1, "drop"))
        self.fc2 = nn.Linear(hidden_features, out_features, device=device, dtype=dtype)
        self.drop2 = nn.Dropout(check_probability(drop2, "drop"))

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc1(x)  # (..., in) -> (..., hidden)
        x = self.act(x)
        x = self.drop1(x)
        x = self.fc2(x)  # (..., hidden) -> (..., out)
        return self.drop2(x)


def linear_along_first_axis(linear: nn.Linear, x: Tensor) -> Tensor:
    """Apply `linear` along the first axis of `x`: `W · x + b`, weights on the left.

    Args:
        linear: `nn.Linear(L, S)` with weight `(S, L)` and bias `(S,)`.
        x: `(L, B, D)`.

    Returns:
        `(S, B, D)`; what `linear(x.permute(2, 1, 0)).permute(2, 1, 0)` gives, to float
        rounding, without copying the permuted tensor.
    """
    length, batch, channels = x.shape
    columns = x.reshape(length, batch * channels)  # (L, B, D) -> (L, B*D): one column per channel
    mixed = torch.addmm(linear.bias.unsqueeze(1), linear.weight, columns)  # (S, L) @ (L, B*D)
    return mixed.view(-1, batch, channels)  # (S, B*D) -> (S, B, D)


def mlp_along_first_axis(mlp: Mlp, x: Tensor) -> Tensor:
    """`mlp` applied along the first axis of `x`: both layers with their weights on the left.

    Args:
        mlp: `Mlp(L, H)`: fc1's weight is `(H, L)`, fc2's `(L, H)`.
        x: `(L, B, D)`.

    Returns:
        `(L, B, D)`; what `mlp(x.permute(2, 1, 0)).permute(2, 1, 0)` gives, to float rounding.
    """
    x = linear_along_first_axis(mlp.fc1, x)  # (L, B, D) -> (H, B, D)
    x = mlp.act(x)
    x = mlp.drop1(x)
    x = linear_along_first_axis(mlp.fc2, x)  # (H, B, D) -> (L, B, D)
    return mlp.drop2(x)
