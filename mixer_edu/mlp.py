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
"""

from __future__ import annotations

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
