"""timm's model interface for our Mixer: its extra keywords, intermediate features, pruning.

Why this module exists: timm is the library most people use to train and fine-tune vision
models, and its tools (feature extractors, layer-wise learning-rate decay, memory-saving training)
call a few methods on every model. `MlpMixer` gets them from `TimmCompatMixin`, with the same
signatures and results as timm's `MlpMixer`, so a timm user can swap in our model. They are kept
here, apart from `mixer_edu.mixer`, because none of them is part of the idea of a Mixer: a reader
learning the model can skip this file.

`TimmOptions` reads timm's constructor keywords that the paper's model does not need (other
layer classes, a norm after the stem, the head bias, pooling, device and dtype), so that
`MlpMixer.__init__` lists only the paper's choices and takes these as `**timm_options`.

What each method is for:

- `forward_intermediates(images, indices=...)`: the token table after chosen blocks, as
  `(B, C, h, w)` feature maps (`output_fmt="NCHW"`) or `(B, N, C)` tables (`"NLC"`); for
  detection/segmentation heads, or to look at how the tokens change from block to block
  (`mixer_edu.viz.token_norms.token_norms`).
- `prune_intermediate_layers(indices)`: drop the blocks after the last one needed (and the head),
  so a feature extractor does no wasted work.
- `set_grad_checkpointing(True)`: keep only each block's input during the forward pass and
  recompute the block's insides during the backward pass. Training then stores far fewer
  activations (less memory) and runs each block's forward twice (more time); the numbers are the
  same. `python -m mixer_edu.tools.bench --grad-checkpointing` measures the saving.
- `group_matcher()`: regular expressions that group the parameters by depth (stem, block i, final
  norm), for optimisers that give each depth its own learning rate.
- `get_classifier()`: the head, to replace or inspect it.

`BlockFeatures` is what `create_model(name, features_only=True)` returns, as timm's
`create_model` does for its Mixer: the model cut after the last block needed, giving the token
table after chosen blocks as feature maps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

OUTPUT_FORMATS = ("NCHW", "NLC")


@dataclass(frozen=True, kw_only=True)
class LayerOptions:
    """timm's layer keywords of a block, beyond the paper's layers.

    Args:
        mlp_layer: the blocks' MLP class (timm's `Mlp`, `GluMlp`, `GatedMlp` work too).
        norm_layer: the normalisation before each branch (and at the end), `norm_layer(dim)`.
        act_layer: the MLPs' non-linearity (GELU in the paper).
        device, dtype: where and in what precision to create the parameters.
    """

    mlp_layer: Callable[..., nn.Module]
    norm_layer: Callable[..., nn.Module]
    act_layer: type[nn.Module] = nn.GELU
    device: torch.device | str | None = None
    dtype: torch.dtype | None = None

    @classmethod
    def read(cls, given: dict, **defaults):
        """The options from a module's `**timm_options`, over the module's `defaults`.

        Raises:
            TypeError: for a keyword that is neither the module's own nor one of timm's.
        """
        known = [field.name for field in fields(cls)]
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise TypeError(
                f"unexpected keyword(s) {unknown}; besides its own, this module takes timm's "
                f"{known}."
            )
        return cls(**{**defaults, **given})

    @property
    def factory_kwargs(self) -> dict:
        """`device` and `dtype`, as torch.nn's constructors take them."""
        return dict(device=self.device, dtype=self.dtype)


@dataclass(frozen=True, kw_only=True)
class TimmOptions(LayerOptions):
    """timm's `MlpMixer` keywords beyond the paper's model: `LayerOptions`, and

    Args:
        block_layer: the block class, called as `block_layer(embed_dim, num_tokens, mlp_ratio,
            mlp_layer=..., norm_layer=..., act_layer=..., drop=..., drop_path=...)`; gMLP swaps
            in its own.
        stem_norm: normalise the tokens right after the stem, with `norm_layer`.
        nlhb: initialise the head bias to -log(num_classes) ("negative log head bias").
        global_pool: `"avg"` (mean over tokens) or `""` (all tokens from `forward_head`).
    """

    block_layer: Callable[..., nn.Module]
    stem_norm: bool = False
    nlhb: bool = False
    global_pool: str = "avg"


def feature_info(num_blocks: int, channels: int, reduction: int) -> list[dict]:
    """timm's description of the feature maps `forward_intermediates` can return.

    Args:
        num_blocks: depth of the model (one feature map per block).
        channels: channels C of every map.
        reduction: how many pixels of the image one token covers along a side (the patch size).
    """
    return [
        dict(module=f"blocks.{i}", num_chs=channels, reduction=reduction) for i in range(num_blocks)
    ]


def take_indices(num_blocks: int, indices: int | Sequence[int] | None) -> tuple[list[int], int]:
    """Which blocks' outputs to take, as timm reads `indices`, and the last block needed.

    Args:
        num_blocks: depth of the model.
        indices: None for every block; an int n for the last n blocks; a list of block numbers,
            negative ones counting from the end (-1 is the last block).

    Returns:
        `(the block numbers counted from the start, in the order given; the largest of them)`.
    """
    if indices is None:
        indices = num_blocks
    if isinstance(indices, int) and not isinstance(indices, bool):
        if not 0 < indices <= num_blocks:
            raise ValueError(
                f"indices={indices} asks for the last {indices} blocks, but the model has "
                f"{num_blocks}; use 1 to {num_blocks}, or a list of block numbers."
            )
        taken = list(range(num_blocks - indices, num_blocks))
    else:
        taken = [num_blocks + i if i < 0 else i for i in indices]
        wrong = [i for i, t in zip(indices, taken, strict=True) if not 0 <= t < num_blocks]
        if wrong or not taken:
            raise ValueError(
                f"block indices {list(indices)} must be in 0..{num_blocks - 1} (or -{num_blocks}"
                f"..-1 from the end) and not empty; out of range: {wrong}."
            )
    return taken, max(taken)


def checkpoint_blocks(blocks: nn.Sequential, x: Tensor) -> Tensor:
    """Run the blocks one after another, checkpointing each: `(B, N, C) -> (B, N, C)`.

    Only each block's input is kept for the backward pass; the block runs again there to rebuild
    what it needs. The random state is saved and restored, so DropPath and dropout draw the same
    masks both times and the gradients equal those without checkpointing.
    """
    for block in blocks:
        x = checkpoint(block, x, use_reentrant=False)
    return x


class TimmCompatMixin:
    """timm's methods for a model with `stem`, `blocks`, `norm`, `head`, `grad_checkpointing`
    and `reset_classifier(num_classes, global_pool)`, as `MlpMixer` has."""

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Trade time for memory in training: see `checkpoint_blocks`."""
        self.grad_checkpointing = bool(enable)

    def get_classifier(self) -> nn.Module:
        """The classification head (`nn.Identity` when the model has none)."""
        return self.head

    def group_matcher(self, coarse: bool = False) -> dict:
        """Parameter groups by depth as regular expressions on parameter names (timm's format):
        the stem; then each block `blocks.i`, with the final norm placed after the last block."""
        return dict(stem=r"^stem", blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))])

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """The token table after chosen blocks, and the final features.

        Args:
            x: images `(B, in_chans, H, W)`.
            indices: which blocks (see `take_indices`): None for all, n for the last n, or a
                list of block numbers.
            norm: pass every intermediate through the final norm.
            stop_early: do not run the blocks after the last one taken.
            output_fmt: `"NCHW"` for feature maps `(B, C, h, w)` on the patch grid, `"NLC"` for
                token tables `(B, N, C)`.
            intermediates_only: return only the list.

        Returns:
            The list of intermediates, one per index in increasing block order; unless
            `intermediates_only`, preceded by the normalised final tokens `(B, N, C)` (after
            the last block run).
        """
        if output_fmt not in OUTPUT_FORMATS:
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}.")
        taken, last = take_indices(len(self.blocks), indices)
        x = self.stem(x).contiguous()  # (B, N, C), as in forward_features
        blocks = self.blocks[: last + 1] if stop_early else self.blocks
        intermediates = []
        for i, block in enumerate(blocks):
            x = checkpoint(block, x, use_reentrant=False) if self.grad_checkpointing else block(x)
            if i in taken:
                intermediates.append(self.norm(x) if norm else x)
        if output_fmt == "NCHW":
            rows, columns = self.stem.grid_size
            # (B, N, C) -> (B, h, w, C) -> (B, C, h, w): patches back on their grid
            intermediates = [
                y.reshape(y.shape[0], rows, columns, -1).permute(0, 3, 1, 2).contiguous()
                for y in intermediates
            ]
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    def prune_intermediate_layers(
        self,
        indices: int | Sequence[int] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> list[int]:
        """Keep only the blocks up to the last one `indices` needs; optionally drop the final
        norm and the head (and pooling). Returns the absolute indices, for
        `forward_intermediates`."""
        taken, last = take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[: last + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return taken


class FeatureInfo(list):
    """timm's description of a feature extractor's outputs: one dict per output, with `num_chs`
    (channels), `reduction` (pixels per token along a side) and `module` (where it comes from),
    and timm's accessors for each field."""

    def channels(self) -> list[int]:
        return [info["num_chs"] for info in self]

    def reduction(self) -> list[int]:
        return [info["reduction"] for info in self]

    def module_name(self) -> list[str]:
        return [info["module"] for info in self]


class BlockFeatures(nn.Module):
    """A Mixer as a feature extractor (`features_only=True`), built as timm builds its Mixer's.

    Like timm's `FeatureGetterNet`, it prunes the model (`prune_intermediate_layers`: the blocks
    after the last one needed, the final norm, the head) and calls `forward_intermediates`.

    Args:
        model: an `MlpMixer` (or `GMlp`); it is pruned in place and kept as `self.model`.
        out_indices: which blocks' outputs (see `take_indices`); timm's Mixer default, 3, is the
            last three blocks.

    Shapes:
        `(B, in_chans, H, W) -> [(B, C, h, w)]`: one feature map per index, on the patch grid.
    """

    def __init__(self, model: nn.Module, out_indices: int | Sequence[int] = 3):
        super().__init__()
        self.out_indices = model.prune_intermediate_layers(out_indices, prune_norm=True)
        self.model = model
        self.feature_info = FeatureInfo(model.feature_info[i] for i in self.out_indices)

    def forward(self, images: Tensor) -> list[Tensor]:
        return self.model.forward_intermediates(
            images, indices=self.out_indices, intermediates_only=True
        )
