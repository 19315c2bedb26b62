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

The whole model in about 20 lines, with the paper's widths (D_S = C/2, D_C = 4C) and nothing
else: no dropout, no DropPath, PyTorch's default initialisation. `MlpMixer` below is the same
network (the same parameters, in the same order) with those extras and timm's names:

>>> from einops.layers.torch import Rearrange, Reduce
>>> class PreNormResidual(nn.Module):  # x + f(LayerNorm(x)), LayerNorm over the C channels
...     def __init__(self, channels, f):
...         super().__init__()
...         self.norm, self.f = nn.LayerNorm(channels, eps=1e-6), f
...     def forward(self, x):
...         return x + self.f(self.norm(x))
>>> def mlp(width, hidden):  # acts on the last axis
...     return nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
>>> def mixer_sketch(image=224, patch=16, channels=768, depth=12, classes=1000):
...     tokens = (image // patch) ** 2  # N
...     def across_tokens():  # the transpose: (B, N, C) -> (B, C, N), MLP over N, and back
...         return nn.Sequential(Rearrange("b n c -> b c n"), mlp(tokens, channels // 2),
...                              Rearrange("b c n -> b n c"))
...     return nn.Sequential(
...         nn.Conv2d(3, channels, patch, stride=patch),  # (B, 3, H, W) -> (B, C, h, w)
...         Rearrange("b c h w -> b (h w) c"),  # the token table (B, N, C)
...         *[nn.Sequential(PreNormResidual(channels, across_tokens()),  # token mixing
...                         PreNormResidual(channels, mlp(channels, 4 * channels)))  # channels
...           for _ in range(depth)],
...         nn.LayerNorm(channels, eps=1e-6),
...         Reduce("b n c -> b c", "mean"),  # global average pooling over the tokens
...         nn.Linear(channels, classes))
>>> sum(p.numel() for p in mixer_sketch().parameters())  # Mixer-B/16: the paper's 59M
59880472

The module and parameter names (`stem`, `blocks`, `norm1`, `mlp_tokens`, `norm2`,
`mlp_channels`, `norm`, `head`) are those of timm's `MlpMixer`, so a timm checkpoint loads into
this model with `strict=True` and gives the same outputs. timm's other constructor keywords
(`block_layer`, `mlp_layer`, `norm_layer`, `act_layer`, `stem_norm`, `nlhb`, `global_pool`,
`device`, `dtype`) and methods (intermediate features, pruning, gradient checkpointing) live in
`support.timm_compat`; none of them changes the two updates above.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor, nn

from .drop_path import DropPath, drop_path_rates
from .mlp import Mlp
from .patching import PatchEmbedding, Size
from .support.timm_compat import (
    LayerOptions,
    TimmCompatMixin,
    TimmOptions,
    checkpoint_blocks,
    feature_info,
)
from .support.validation import check_positive_int, check_probability, to_pair

LAYER_NORM_EPS = 1e-6  # as in the paper's JAX code and timm


# The paper's LayerNorm: over the channels of each token, eps 1e-6 (timm's default norm_layer).
mixer_layer_norm = partial(nn.LayerNorm, eps=LAYER_NORM_EPS)


class MixerBlock(nn.Module):
    """One Mixer layer: token mixing, then channel mixing, each a pre-norm residual branch.

    Args (timm's, with the same meaning and defaults):
        dim: channels C of each token.
        num_tokens: number of tokens N (fixed: the token-mixing weights have N inputs).
        mlp_ratio: hidden widths as multiples of C, `(token_mixing, channel_mixing)`;
            the paper's `(0.5, 4.0)` gives D_S = C/2 and D_C = 4C. Both must be positive.
        drop: dropout inside both MLPs.
        drop_path: DropPath probability on both residual branches.
        **timm_options: other layer classes (`mlp_layer`, `norm_layer`, `act_layer`), `device`
            and `dtype`; see `support.timm_compat.LayerOptions`. The paper's: `Mlp`, LayerNorm
            with eps 1e-6, GELU.

    Shapes:
        `(B, N, C) -> (B, N, C)`.
    """

    # Properties that return a submodule: TorchScript cannot compile them, and forward needs none.
    __jit_unused_properties__ = ["token_mixing", "channel_mixing"]

    def __init__(
        self,
        dim: int,
        num_tokens: int,
        mlp_ratio: float | tuple[float, float] = (0.5, 4.0),
        drop: float = 0.0,
        drop_path: float = 0.0,
        **timm_options,
    ):
        super().__init__()
        check_positive_int(dim, "dim")
        check_positive_int(num_tokens, "num_tokens")
        tokens_hidden, channels_hidden = hidden_widths(mlp_ratio, dim)
        # The paper's layers, unless timm's keywords ask for others.
        layers = LayerOptions.read(timm_options, mlp_layer=Mlp, norm_layer=mixer_layer_norm)
        mlp_args = dict(act_layer=layers.act_layer, drop=drop, **layers.factory_kwargs)
        self.norm1 = layers.norm_layer(dim, **layers.factory_kwargs)
        self.mlp_tokens = layers.mlp_layer(num_tokens, tokens_hidden, **mlp_args)
        self.drop_path = DropPath(drop_path)
        self.norm2 = layers.norm_layer(dim, **layers.factory_kwargs)
        self.mlp_channels = layers.mlp_layer(dim, channels_hidden, **mlp_args)

    def forward(self, x: Tensor) -> Tensor:
        # Token mixing: an MLP acts on the last axis, so turn the tokens last and back again.
        # (B, N, C) -> (B, C, N) -> mlp_tokens over N -> (B, C, N) -> (B, N, C)
        x = x + self.drop_path(self.mlp_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2))
        # Channel mixing: the channels are already last. (B, N, C) -> (B, N, C)
        x = x + self.drop_path(self.mlp_channels(self.norm2(x)))
        return x

    def token_mixing_weight(self) -> Tensor:
        """W1 of the token-mixing MLP, `(tokens_hidden, num_tokens)` = `(D_S, N)`.

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

    Args (timm's keywords, with the same meaning and defaults):
        num_classes: classes of the linear head; 0 gives a model without a head.
        img_size: side of square input images, or `(height, width)`.
        in_chans: channels of the input images.
        patch_size: side of square patches, or `(height, width)`; must divide `img_size`.
        num_blocks: number of Mixer blocks (the paper's "layers").
        embed_dim: channels C of each token (the paper's "hidden size").
        mlp_ratio: hidden widths of the (token, channel) MLPs as multiples of `embed_dim`.
        drop_rate: dropout before the head.
        proj_drop_rate: dropout inside the MLPs.
        drop_path_rate: DropPath probability (of every block, or of the last one with the
            linear schedule).
        drop_path_schedule: `"constant"` (timm's choice) or `"linear"` across depth (ours).
        **timm_options: timm's other keywords (other layer classes, `stem_norm`, `nlhb`,
            `global_pool`, `device`, `dtype`), explained in `support.timm_compat.TimmOptions`.

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
        drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        drop_path_schedule: str = "constant",
        **timm_options,
    ):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0 (0: no head), got {num_classes!r}.")
        check_positive_int(num_blocks, "num_blocks")
        # The paper's layers, unless timm's keywords ask for others.
        timm = TimmOptions.read(
            timm_options, block_layer=MixerBlock, mlp_layer=Mlp, norm_layer=mixer_layer_norm
        )
        norm_layer, factory_kwargs = timm.norm_layer, timm.factory_kwargs
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.global_pool = check_global_pool(timm.global_pool)
        self.embed_dim = self.num_features = self.head_hidden_size = embed_dim
        self.grad_checkpointing = False  # see TimmCompatMixin.set_grad_checkpointing

        stem_norm = norm_layer if timm.stem_norm else None
        self.stem = PatchEmbedding(
            img_size, patch_size, in_chans, embed_dim, stem_norm, **factory_kwargs
        )
        rates = drop_path_rates(drop_path_rate, num_blocks, drop_path_schedule)
        self.blocks = nn.Sequential(
            *[
                timm.block_layer(
                    embed_dim,
                    self.stem.num_tokens,  # N
                    mlp_ratio,
                    mlp_layer=timm.mlp_layer,
                    norm_layer=norm_layer,
                    act_layer=timm.act_layer,
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
        self.feature_info = feature_info(num_blocks, embed_dim, self.stem.feat_ratio())
        self.init_weights(nlhb=timm.nlhb)

    @property
    def num_tokens(self) -> int:
        """N, the number of tokens (patches) of an image."""
        return self.stem.num_tokens

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
        if self.grad_checkpointing and not torch.jit.is_scripting():
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


class NoTokenMixing(nn.Module):
    """A token-mixing branch switched off, for the ablation of notebook 02.

    Put in place of a block's `mlp_tokens`, it adds nothing to the residual stream, so no token
    ever sees another: the blocks become channel mixing alone, applied to every patch on its own,
    and the model can no longer tell where a patch was.

    Shapes:
        `(B, N, C) -> (B, N, C)`, zeros.
    """

    def forward(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)


def without_token_mixing(model: MlpMixer) -> MlpMixer:
    """`model` with every block's token-mixing MLP replaced by `NoTokenMixing` (in place)."""
    for block in model.blocks:
        block.mlp_tokens = NoTokenMixing()
    return model


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


def hidden_widths(mlp_ratio: float | tuple[float, ...], dim: int) -> tuple[int, ...]:
    """The hidden widths `int(ratio * dim)`; every ratio must give at least one hidden unit.

    Accepts one ratio (returned for both MLPs) or a pair. A ratio of 0 would otherwise build a
    silent MLP of width `dim` (`Mlp` reads a width of 0 as "same as the input" in timm).
    """
    ratios = to_pair(mlp_ratio)
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
