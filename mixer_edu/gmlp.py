"""gMLP (Liu et al., 2021, "Pay Attention to MLPs"): token mixing as a multiplicative gate.

A Mixer block has two residual branches, one MLP across tokens and one across channels
(`mixer_edu.mixer`). A gMLP block has a *single* branch: a channel MLP whose hidden layer passes
through a **spatial gating unit** (SGU), the only place where tokens meet. For a table X of
N tokens by C channels:

    Z  = GELU(LayerNorm(X) · Uᵀ)           U: (D, C), D = mlp_ratio * C     (B, N, C) -> (B, N, D)
    Z1, Z2 = Z[..., :D/2], Z[..., D/2:]    split the channels in two halves  -> 2 x (B, N, D/2)
    G  = W · LayerNorm(Z2) + b             W: (N, N), b: (N,)   across tokens  (B, N, D/2)
    Y  = X + (Z1 ⊙ G) · Vᵀ                 V: (C, D/2)                        (B, N, C)

The gate G is a linear map *across tokens*, like the Mixer's token-mixing MLP but with a single
N x N layer and no non-linearity of its own: row i of W says how much token i listens to every
token j. Unlike the Mixer, the result does not get added to the tokens, it *multiplies* the other
half channel by channel. Tokens can therefore switch each other's features on and off, a first
taste of the input-dependent interactions that attention computes with its softmax(QKᵀ).

**Why the initialisation matters.** The paper initialises W near zero and b to ones, so at the
start G ≈ 1 and the unit returns Z1 ⊙ 1 = Z1: each block begins as an ordinary per-token MLP,
and the spatial mixing grows in only as far as training finds it useful. With the usual random
initialisation of W instead, G starts as a random mix of normalised features with mean about 0, so
every block multiplies half of its hidden units by noise before training has begun.
`GMlp(near_identity_gate=False)` builds that variant, for comparison (notebook 06).

**The two LayerNorms.** The block norm before the channel projection uses eps 1e-6, as every norm
of the Mixer does; the gate's norm uses PyTorch's default eps 1e-5. timm's gMLP is built that way
and its checkpoints were trained that way, so we keep both values.

The module and parameter names (`norm`, `mlp_channels.fc1`, `mlp_channels.gate.norm`,
`mlp_channels.gate.proj`, `mlp_channels.fc2`) are those of timm's `SpatialGatingBlock`,
`GatedMlp` and `SpatialGatingUnit`, so a timm gMLP checkpoint loads into `GMlp` with
`strict=True` and gives the same outputs. The model itself is `MlpMixer` (stem, blocks, norm,
pooling, head) with this block swapped in.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from .drop_path import DropPath
from .mixer import MlpMixer, hidden_widths, mixer_layer_norm
from .support.timm_compat import LayerOptions
from .support.validation import check_positive_int, check_probability

GATE_NORM_EPS = 1e-5  # nn.LayerNorm's default, as in timm's SpatialGatingUnit


def mix_tokens(linear: nn.Linear, x: Tensor) -> Tensor:
    """Apply `linear` along the token axis (axis 1) of `x`: `W · x + b`, weights on the left.

    Args:
        linear: `nn.Linear(N, S)` with weight `(S, N)` and bias `(S,)`.
        x: `(B, N, C)`.

    Returns:
        `(B, S, C)`; what `linear(x.transpose(1, 2)).transpose(1, 2)` gives, to float rounding,
        computed without copying the transposed table.
    """
    return mix_tokens_by(linear.weight, linear.bias, x)


def mix_tokens_by(weight: Tensor, bias: Tensor, x: Tensor) -> Tensor:
    """`mix_tokens` given the Linear's weight `(S, N)` and bias `(S,)` rather than the module
    (TorchScript cannot pass a module to a function): `(B, N, C) -> (B, S, C)`."""
    weights = weight.expand(x.shape[0], -1, -1)  # (S, N) viewed as (B, S, N), no copy
    biases = bias.unsqueeze(-1)  # (S, 1): broadcasts over the C channels
    return torch.baddbmm(biases, weights, x)  # (B, S, N) @ (B, N, C) + (S, 1) -> (B, S, C)


class SpatialGatingUnit(nn.Module):
    """Split the channels in two; gate the first half by a token-mixed copy of the second.

    Args:
        dim: channels D of the input (the gated MLP's hidden width); must be even.
        num_tokens: number of tokens N (fixed: the gate's weights are an N x N matrix).
        near_identity_gate: initialise the token projection to W ≈ 0 (N(0, 1e-6)), b = 1, so the
            unit starts as `x -> x[..., :D/2]`. False keeps the model's default initialisation.
        device, dtype: where and in what precision to create the parameters.

    Shapes:
        `(B, N, D) -> (B, N, D/2)`.
    """

    def __init__(
        self, dim: int, num_tokens: int, near_identity_gate: bool = True, device=None, dtype=None
    ):
        super().__init__()
        check_positive_int(dim, "dim")
        check_positive_int(num_tokens, "num_tokens")
        if dim % 2 != 0:
            raise ValueError(
                f"the spatial gating unit splits its {dim} input channels into two halves, so "
                f"dim must be even; choose an even hidden width (e.g. {dim + 1})."
            )
        self.num_tokens = num_tokens
        self.near_identity_gate = near_identity_gate
        factory_kwargs = dict(device=device, dtype=dtype)  # as in torch.nn
        self.norm = nn.LayerNorm(dim // 2, eps=GATE_NORM_EPS, **factory_kwargs)
        self.proj = nn.Linear(
            num_tokens, num_tokens, **factory_kwargs
        )  # weight (N, N): row i = what token i gathers

    @torch.no_grad()
    def init_weights(self) -> None:
        """W ~ N(0, 1e-6) and b = 1: the gate starts at ≈ 1, the unit as the identity on Z1.

        `MlpMixer.init_weights` calls this after its default initialisation, so it overrides
        the Xavier init the projection would otherwise get.
        """
        if self.near_identity_gate:
            nn.init.normal_(self.proj.weight, std=1e-6)
            nn.init.ones_(self.proj.bias)

    def gate(self, x: Tensor) -> Tensor:
        """The gate G = W · LayerNorm(Z2) + b alone: `(B, N, D) -> (B, N, D/2)`."""
        _, z2 = x.chunk(2, dim=-1)
        return mix_tokens_by(self.proj.weight, self.proj.bias, self.norm(z2))  # (B, N, D/2)

    def forward(self, x: Tensor) -> Tensor:
        z1, _ = x.chunk(2, dim=-1)  # (B, N, D) -> (B, N, D/2): the half that gets gated
        return z1 * self.gate(x)  # elementwise, channel by channel

    def extra_repr(self) -> str:
        return f"num_tokens={self.num_tokens}, near_identity_gate={self.near_identity_gate}"


class GatedMlp(nn.Module):
    """A channel MLP with a gate between its two layers (timm's `GatedMlp`).

    fc1 -> GELU -> dropout -> gate -> fc2 -> dropout, on the last axis, with timm's attribute
    names. In gMLP the gate is a `SpatialGatingUnit`, which halves the width.

    Args:
        in_features: channels C of each token.
        hidden_features: width D of the hidden layer (before the gate halves it); must be even.
        act_layer: the non-linearity after fc1.
        gate_layer: builds the gate as `gate_layer(D)`, e.g.
            `partial(SpatialGatingUnit, num_tokens=N)`; None for no gate (a plain MLP, as in timm).
        drop: dropout after the activation and after fc2.
        device, dtype: where and in what precision to create the parameters.

    Shapes:
        `(B, N, C) -> (B, N, D) -> (B, N, D/2) -> (B, N, C)`.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        act_layer: type[nn.Module] = nn.GELU,
        gate_layer=None,
        drop: float = 0.0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        check_positive_int(in_features, "in_features")
        check_positive_int(hidden_features, "hidden_features")
        factory_kwargs = dict(device=device, dtype=dtype)  # as in torch.nn
        self.fc1 = nn.Linear(in_features, hidden_features, **factory_kwargs)
        self.act = act_layer()
        self.drop1 = nn.Dropout(check_probability(drop, "drop"))
        if gate_layer is None:
            self.gate, gated_width = nn.Identity(), hidden_features
        else:
            self.gate, gated_width = (
                gate_layer(hidden_features, **factory_kwargs),
                hidden_features // 2,
            )
        self.fc2 = nn.Linear(gated_width, in_features, **factory_kwargs)
        self.drop2 = nn.Dropout(check_probability(drop, "drop"))

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc1(x)  # (B, N, C) -> (B, N, D)
        x = self.act(x)
        x = self.drop1(x)
        x = self.gate(x)  # (B, N, D) -> (B, N, D/2): the only step that mixes tokens
        x = self.fc2(x)  # (B, N, D/2) -> (B, N, C)
        return self.drop2(x)


class SpatialGatingBlock(nn.Module):
    """One gMLP layer: `x + DropPath(GatedMlp(LayerNorm(x)))`.

    Called like `MixerBlock`, so `MlpMixer` can build a stack of them.

    Args:
        dim: channels C of each token.
        num_tokens: number of tokens N.
        mlp_ratio: hidden width D as a multiple of C (the paper uses 6).
        near_identity_gate: see `SpatialGatingUnit`.
        drop: dropout inside the MLP.
        drop_path: DropPath probability on the residual branch.
        **timm_options: as for `MixerBlock` (`support.timm_compat.LayerOptions`); `mlp_layer`
            is called as timm calls it, `mlp_layer(C, D, act_layer=..., gate_layer=...,
            drop=...)`, our `GatedMlp` by default.

    Shapes:
        `(B, N, C) -> (B, N, D) -> (B, N, D/2) -> (B, N, C)`, then added to the input.
    """

    __jit_unused_properties__ = ["spatial_gating"]  # a submodule: TorchScript cannot return it

    def __init__(
        self,
        dim: int,
        num_tokens: int,
        mlp_ratio: float = 6.0,
        near_identity_gate: bool = True,
        drop: float = 0.0,
        drop_path: float = 0.0,
        **timm_options,
    ):
        super().__init__()
        check_positive_int(dim, "dim")
        if isinstance(mlp_ratio, (tuple, list)):
            raise TypeError(
                f"a gMLP block has one MLP, so mlp_ratio must be one number (the paper uses 6), "
                f"got {mlp_ratio!r}; the (token, channel) pair is for Mixer blocks."
            )
        hidden, _ = hidden_widths(mlp_ratio, dim)
        layers = LayerOptions.read(timm_options, mlp_layer=GatedMlp, norm_layer=mixer_layer_norm)
        factory_kwargs = layers.factory_kwargs
        gate = partial(
            SpatialGatingUnit, num_tokens=num_tokens, near_identity_gate=near_identity_gate
        )
        self.norm = layers.norm_layer(dim, **factory_kwargs)
        self.mlp_channels = layers.mlp_layer(
            dim, hidden, act_layer=layers.act_layer, gate_layer=gate, drop=drop, **factory_kwargs
        )
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop_path(self.mlp_channels(self.norm(x)))  # (B, N, C)

    @property
    def spatial_gating(self) -> SpatialGatingUnit:
        return self.mlp_channels.gate

    def token_mixing_weight(self) -> Tensor:
        """W of the spatial gating unit, `(num_tokens, num_tokens)` = `(N, N)`.

        The only weight that mixes tokens in a gMLP block: row i holds how much token i gathers
        from each of the N tokens. This is the parameter itself, not a copy: detach (and move to
        the CPU) before plotting it.
        """
        return self.mlp_channels.gate.proj.weight


class GMlp(MlpMixer):
    """The gMLP classifier: `MlpMixer` with spatial gating blocks.

    Takes `MlpMixer`'s keywords (stem, depth, width, norm, activation, dropout, head) plus:

    Args:
        mlp_ratio: hidden width of each block's gated MLP as a multiple of `embed_dim`
            (default 6, as in the paper and timm).
        mlp_layer: the gated MLP class (our `GatedMlp`; timm's `GatedMlp` works too).
        near_identity_gate: initialise every gate near the identity (the paper's choice). False
            leaves the gates with the default Xavier initialisation, to see why it matters.

    Shapes:
        `(B, in_chans, img_size, img_size) -> (B, num_classes)`.
    """

    def __init__(
        self,
        *,
        mlp_ratio: float = 6.0,
        mlp_layer=GatedMlp,
        near_identity_gate: bool = True,
        **kwargs,
    ):
        if "block_layer" in kwargs:
            raise TypeError("GMlp always uses SpatialGatingBlock; build an MlpMixer to choose.")
        block = partial(SpatialGatingBlock, near_identity_gate=near_identity_gate)
        super().__init__(mlp_ratio=mlp_ratio, block_layer=block, mlp_layer=mlp_layer, **kwargs)
        self.near_identity_gate = near_identity_gate

    def spatial_weights(self, block: int = 0) -> Tensor:
        """The gate's token-to-token matrix W of one block, `(N, N)`: row i is what token i
        gathers from every token j; reshaped to `grid_size`, a picture over the image."""
        return self.blocks[block].spatial_gating.proj.weight.detach()
