"""MLP-Mixer (Tolstikhin et al., 2021): vision with nothing but MLPs.

After the stem (`mixer_edu.patching`), an image is a table X of shape (N, C): N patches ("tokens")
as rows, C channels as columns. Every Mixer block updates this table twice, with two MLPs
(`mixer_edu.mlp`) that act along different axes:

1. **Token mixing** lets the patches talk to each other. One MLP is applied to every *column*
   of the table: it reads the values of one channel at all N positions and mixes them. Its weights
   are shared across the C channels, and it is the only place where information moves between
   positions in the image. Written with the weights on the left:

       U = X + W2 · GELU(W1 · LayerNorm(X))        W1: (D_S, N),  W2: (N, D_S)

2. **Channel mixing** works inside each patch. One MLP is applied to every *row*: it reads the C
   channels of one patch and mixes them, with weights shared across the N patches (like a 1x1
   convolution). Written with the weights on the right:

       Y = U + GELU(LayerNorm(U) · W3ᵀ) · W4ᵀ       W3: (D_C, C),  W4: (C, D_C)

Both updates are residual (`x + f(x)`), with a pre-LayerNorm over the channels (eps 1e-6) and
DropPath (`mixer_edu.drop_path`) on the branch. The paper uses D_S = C/2 and D_C = 4C.

After the last block: LayerNorm, the mean over the N tokens (global average pooling), dropout,
and a linear classifier head.

A note on the transpose. The usual way to apply an MLP along the token axis is to transpose the
table so tokens are last, apply the MLP, and transpose back:
`mlp(x.transpose(1, 2)).transpose(1, 2)`. We compute the same numbers as W1 · X, multiplying from
the left (`torch.baddbmm`), which avoids copying the transposed table in memory.

The module and parameter names (`stem`, `blocks`, `norm1`, `mlp_tokens`, `norm2`,
`mlp_channels`, `norm`, `head`) are those of timm's `MlpMixer`, so a timm checkpoint loads into
this model with `strict=True` and gives the same outputs. The constructors take timm's keywords
too (rectangular images and patches, `mlp_layer`, `norm_layer`, `act_layer`, `stem_norm`, `nlhb`,
`device`/`dtype`), and `support.timm_compat` adds timm's other methods (intermediate features,
pruning, gradient checkpointing); none of this changes the two updates above.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor, nn

from .drop_path import DropPath, drop_path_rates
from .mlp import Mlp
from .patching import PatchEmbedding, Size
from .support.timm_compat import TimmCompatMixin, checkpoint_blocks
from .support.validation import check_positive_int, check_probability

LAYER_NORM_EPS = 1e-6  # as in the paper's JAX code and timm


def mix_tokens(linear: nn.Linear, x: Tensor) -> Tensor:
    """Apply `linear` along the token axis (axis 1) of `x`: `W · x + b`, weights on the left.

    Args:
        linear: `nn.Linear(N, S)` with weight `(S, N)` and bias `(S,)`.
        x: `(B, N, C)`.

    Returns:
        `(B, S, C)`; the same numbers as `linear(x.transpose(1, 2)).transpose(1, 2)`.
    """
    weight = linear.weight.expand(x.shape[0], -1, -1)  # (S, N) viewed as (B, S, N), no copy
    bias = linear.bias.unsqueeze(-1)  # (S, 1): broadcasts over the C channels
    return torch.baddbmm(bias, weight, x)  # (B, S, N) @ (B, N, C) + (S, 1) -> (B, S, C)


class TokenMixingMlp(Mlp):
    """The `Mlp` applied across tokens: to every channel's column of the (N, C) table.

    Same parameters as `Mlp(num_tokens, hidden_features)`; only the axis it acts on differs.

    Shapes:
        `(B, N, C) -> (B, N, C)`.
    """

    def forward(self, x: Tensor) -> Tensor:
        x = mix_tokens(self.fc1, x)  # (B, N, C) -> (B, D_S, C)
        x = self.act(x)
        x = self.drop1(x)
        x = mix_tokens(self.fc2, x)  # (B, D_S, C) -> (B, N, C)
        return self.drop2(x)


# The paper's LayerNorm: over the channels of each token, eps 1e-6 (timm's default norm_layer).
mixer_layer_norm = partial(nn.LayerNorm, eps=LAYER_NORM_EPS)


class MixerBlock(nn.Module):
    """One Mixer layer: token mixing, then channel mixing, each a pre-norm residual branch.

    Args (those of timm's `MixerBlock`):
        dim: channels C of each token.
        seq_len: number of tokens N (fixed: the token-mixing weights have N inputs).
        mlp_ratio: hidden widths as multiples of C, `(token_mixing, channel_mixing)`;
            the paper's `(0.5, 4.0)` gives D_S = C/2 and D_C = 4C. Both must be positive.
        mlp_layer: the MLP class of both branches, called as `mlp_layer(in, hidden,
            act_layer=..., drop=...)`; `Mlp` by default (see `token_mixing_mlp` for the tokens).
        norm_layer: the normalisation before each branch, called as `norm_layer(dim)`;
            LayerNorm with eps 1e-6 by default.
        act_layer: the MLPs' non-linearity.
        drop: dropout inside both MLPs.
        drop_path: DropPath probability on both residual branches.
        device, dtype: where and in what precision to create the parameters.

    Shapes:
        `(B, N, C) -> (B, N, C)`.
    """

    def __init__(
        self,
        dim: int,
        seq_len: int,
        mlp_ratio: float | tuple[float, float] = (0.5, 4.0),
        mlp_layer=Mlp,
        norm_layer=mixer_layer_norm,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float = 0.0,
        drop_path: float = 0.0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        check_positive_int(dim, "dim")
        check_positive_int(seq_len, "seq_len")
        tokens_hidden, channels_hidden = hidden_widths(mlp_ratio, dim)
        factory_kwargs = dict(device=device, dtype=dtype)  # as in torch.nn
        mlp_args = dict(act_layer=act_layer, drop=drop, **factory_kwargs)
        self.norm1 = norm_layer(dim, **factory_kwargs)
        self.mlp_tokens = token_mixing_mlp(mlp_layer, seq_len, tokens_hidden, **mlp_args)
        self.drop_path = DropPath(drop_path)
        self.norm2 = norm_layer(dim, **factory_kwargs)
        self.mlp_channels = mlp_layer(dim, channels_hidden, **mlp_args)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.mlp_tokens(self.norm1(x)))  # mix across tokens (B, N, C)
        x = x + self.drop_path(self.mlp_channels(self.norm2(x)))  # mix across channels (B, N, C)
        return x

    def token_mixing_weight(self) -> Tensor:
        """W1 of the token-mixing MLP, `(token_hidden, num_tokens)` = `(D_S, N)`.

        Row k holds how much hidden unit k takes from each of the N patches; reshaped to the
        patch grid it is the unit's picture (`mixer_edu.weights.token_mixing_units`). This is the
        parameter itself, not a copy: detach (and move to the CPU) before plotting it.
        """
        return self.mlp_tokens.fc1.weight

    # The paper's names for the two MLPs; the attributes keep timm's names for its checkpoints.
    @property
    def token_mixing(self) -> nn.Module:
        return self.mlp_tokens

    @property
    def channel_mixing(self) -> nn.Module:
        return self.mlp_channels


class MlpMixer(TimmCompatMixin, nn.Module):
    """The full MLP-Mixer classifier.

    Args (the keywords of timm's `MlpMixer`, with the same meaning and defaults):
        num_classes: classes of the linear head; 0 gives a model without a head.
        img_size: side of square input images, or `(height, width)`.
        in_chans: channels of the input images.
        patch_size: side of square patches, or `(height, width)`; must divide `img_size`.
        num_blocks: number of Mixer blocks (the paper's "layers").
        embed_dim: channels C of each token (the paper's "hidden size").
        mlp_ratio: hidden widths of the (token, channel) MLPs as multiples of `embed_dim`.
        block_layer: the block class, called as `block_layer(embed_dim, num_patches, mlp_ratio,
            mlp_layer=..., norm_layer=..., act_layer=..., drop=..., drop_path=...)`;
            `MixerBlock` by default (gMLP swaps in its own).
        mlp_layer, norm_layer, act_layer: the blocks' MLP class, normalisation and
            non-linearity (see `MixerBlock`); `norm_layer` is also the final norm.
        drop_rate: dropout before the head.
        proj_drop_rate: dropout inside the MLPs.
        drop_path_rate: DropPath probability (of every block, or of the last one with the
            linear schedule).
        nlhb: initialise the head bias to -log(num_classes) ("negative log head bias") instead of 0.
        stem_norm: normalise the tokens right after the stem, with `norm_layer`.
        global_pool: `"avg"` (mean over tokens) or `""` (return all tokens from `forward_head`).
        drop_path_schedule: `"constant"` (timm's choice) or `"linear"` across depth (ours).
        device, dtype: where and in what precision to create the parameters.

    Shapes:
        `forward`: `(B, in_chans, H, W) -> (B, num_classes)`
        `forward_features`: `(B, in_chans, H, W) -> (B, N, embed_dim)`
        `forward_head`: `(B, N, embed_dim) -> (B, num_classes)`

    timm's other methods (`forward_intermediates`, `prune_intermediate_layers`,
    `set_grad_checkpointing`, `group_matcher`, `get_classifier`) come from `TimmCompatMixin`.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        img_size: Size = 224,
        in_chans: int = 3,
        patch_size: Size = 16,
        num_blocks: int = 8,
        embed_dim: int = 512,
        mlp_ratio: float | tuple[float, float] = (0.5, 4.0),
        block_layer=MixerBlock,
        mlp_layer=Mlp,
        norm_layer=mixer_layer_norm,
        act_layer: type[nn.Module] = nn.GELU,
        drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        nlhb: bool = False,
        stem_norm: bool = False,
        global_pool: str = "avg",
        drop_path_schedule: str = "constant",
        device=None,
        dtype=None,
    ):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0 (0: no head), got {num_classes!r}.")
        check_positive_int(num_blocks, "num_blocks")
        check_global_pool(global_pool)
        factory_kwargs = dict(device=device, dtype=dtype)  # as in torch.nn
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.global_pool = global_pool
        self.embed_dim = self.num_features = self.head_hidden_size = embed_dim
        self.grad_checkpointing = False  # see TimmCompatMixin.set_grad_checkpointing

        self.stem = PatchEmbedding(
            img_size,
            patch_size,
            in_chans,
            embed_dim,
            norm_layer if stem_norm else None,
            **factory_kwargs,
        )
        rates = drop_path_rates(drop_path_rate, num_blocks, drop_path_schedule)
        self.blocks = nn.Sequential(
            *[
                block_layer(
                    embed_dim,
                    self.stem.num_patches,
                    mlp_ratio,
                    mlp_layer=mlp_layer,
                    norm_layer=norm_layer,
                    act_layer=act_layer,
                    drop=proj_drop_rate,
                    drop_path=rate,
                    **factory_kwargs,
                )
                for rate in rates
            ]
        )
        self.norm = norm_layer(embed_dim, **factory_kwargs)
        self.head_drop = nn.Dropout(check_probability(drop_rate, "drop_rate"))
        self.head = (
            nn.Linear(embed_dim, num_classes, **factory_kwargs)
            if num_classes > 0
            else nn.Identity()
        )
        reduction = self.stem.feat_ratio()
        self.feature_info = [
            dict(module=f"blocks.{i}", num_chs=embed_dim, reduction=reduction)
            for i in range(num_blocks)
        ]
        self.init_weights(nlhb=nlhb)

    @property
    def num_patches(self) -> int:
        return self.stem.num_patches

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.stem.grid_size

    @torch.no_grad()
    def init_weights(self, nlhb: bool = False) -> None:
        """Initialise as the paper's code and timm do.

        - stem: LeCun normal (truncated normal with variance 1 / fan_in), zero bias;
        - Linear layers in the blocks: Xavier uniform, biases ~ N(0, 1e-6) inside the MLPs;
        - head: zero weights, so the untrained model predicts the same logit for every class;
          a zero bias, or -log(num_classes) with `nlhb=True` (under a sigmoid, as with a
          binary cross-entropy loss, each class then starts at probability 1/(num_classes+1));
        - LayerNorm (and BatchNorm/GroupNorm): weight 1, bias 0.

        A submodule with its own `init_weights` (e.g. gMLP's gating unit) runs it afterwards, so
        it can override the defaults for its parameters.
        """
        head_bias = -math.log(self.num_classes) if nlhb and self.num_classes > 0 else 0.0
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                if name.startswith("head"):
                    nn.init.zeros_(module.weight)
                    nn.init.constant_(module.bias, head_bias)
                    continue
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    if "mlp" in name:
                        nn.init.normal_(module.bias, std=1e-6)
                    else:
                        nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv2d):
                lecun_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if module is not self and hasattr(module, "init_weights"):
                module.init_weights()

    def forward_features(self, images: Tensor) -> Tensor:
        x = self.stem(images)  # (B, C_in, H, W) -> (B, N, C)
        # The stem's (B, N, C) is a view of the convolution's output, which lies in memory one
        # channel after another. Copy it once into row-major order: otherwise every residual
        # sum inherits that layout, and every LayerNorm (forward and backward) copies it again.
        x = x.contiguous()
        if self.grad_checkpointing:
            x = checkpoint_blocks(self.blocks, x)  # the same numbers, less memory (timm_compat)
        else:
            x = self.blocks(x)  # (B, N, C)
        return self.norm(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        if self.global_pool == "avg":
            x = x.mean(dim=1)  # (B, N, C) -> (B, C): average over the tokens
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)  # (B, C) -> (B, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(images))

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the head with a fresh zero-initialised one for `num_classes` (fine-tuning);
        `global_pool` (`"avg"` or `""`) changes the pooling too, as in timm."""
        if global_pool is not None:
            self.global_pool = check_global_pool(global_pool)
        self.num_classes = num_classes
        if num_classes > 0:
            weight = self.stem.proj.weight
            self.head = nn.Linear(
                self.embed_dim, num_classes, device=weight.device, dtype=weight.dtype
            )
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        else:
            self.head = nn.Identity()
        self.head.train(self.training)


def check_global_pool(global_pool: str) -> str:
    if global_pool not in ("avg", ""):
        raise ValueError(
            f"global_pool must be 'avg' (mean over tokens) or '' (no pooling), got {global_pool!r}."
        )
    return global_pool


def lecun_normal_(weight: Tensor) -> Tensor:
    """LeCun normal init: a normal with variance 1 / fan_in, truncated at two standard deviations.

    The truncation shrinks the spread, so the normal's std is divided by 0.8796 (the std of a
    standard normal cut at +-2) to keep the variance at exactly 1 / fan_in, as JAX does.
    """
    fan_in = weight[0].numel()  # in_channels * kernel_h * kernel_w
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
    return nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


# --------------------------------------------------------------------------------------------
# Helpers for timm's options: hidden widths from ratios, and any MLP class across tokens.
# --------------------------------------------------------------------------------------------


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def hidden_widths(mlp_ratio: float | tuple[float, ...], dim: int) -> tuple[int, ...]:
    """The hidden widths `int(ratio * dim)`; every ratio must give at least one hidden unit.

    Accepts one ratio (returned for both MLPs) or a pair. A ratio of 0 would otherwise build a
    silent MLP of width `dim` (`Mlp` reads a width of 0 as "same as the input" in timm).
    """
    ratios = _pair(mlp_ratio)
    for ratio in ratios:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
            raise TypeError(f"mlp_ratio must be a number or a pair of numbers, got {mlp_ratio!r}.")
        if ratio <= 0:
            raise ValueError(
                f"mlp_ratio must be positive, got {mlp_ratio!r}; the paper uses (0.5, 4.0) for "
                "the (token, channel) MLPs of a Mixer and 6 for gMLP."
            )
    widths = tuple(int(ratio * dim) for ratio in ratios)
    if min(widths) < 1:
        raise ValueError(
            f"mlp_ratio {mlp_ratio!r} gives hidden widths {widths} for dim={dim}; every MLP "
            f"needs at least one hidden unit, so use ratios of at least 1/{dim}."
        )
    return widths


def token_mixing_mlp(mlp_layer, num_tokens: int, hidden_features: int, **kwargs) -> nn.Module:
    """Build `mlp_layer(num_tokens, hidden_features, **kwargs)` so that it mixes across tokens.

    The paper's `Mlp` becomes a `TokenMixingMlp` (weights on the left, no transposed copy). Any
    other MLP class acts on the last axis, so its input is transposed to `(B, C, N)` before it
    runs and its output back to `(B, N, C)` after, by two forward hooks; hooks rather than a
    wrapper module, so that its parameters keep timm's names (`mlp_tokens.fc1.weight`).

    Shapes of the returned module: `(B, N, C) -> (B, N, C)`.
    """
    if mlp_layer is Mlp:
        return TokenMixingMlp(num_tokens, hidden_features, **kwargs)
    mlp = mlp_layer(num_tokens, hidden_features, **kwargs)
    mlp.register_forward_pre_hook(_tokens_last)
    mlp.register_forward_hook(_tokens_back)
    return mlp


def _tokens_last(module: nn.Module, args: tuple) -> tuple:
    return (args[0].transpose(1, 2), *args[1:])  # (B, N, C) -> (B, C, N)


def _tokens_back(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
    return output.transpose(1, 2)  # (B, C, N) -> (B, N, C)
