"""The Mixer's blocks run on a table stored tokens first: what `MixerBlock.forward` computes,
with fewer copies and one large matrix product per token-mixing layer.

`MixerBlock.forward` is the paper's: the token-mixing MLP acts on the last axis, so the block
turns the table `(B, N, C)` into `(B, C, N)` and back. In memory that turn is not free:
`nn.Linear` copies the transposed view before it multiplies, the result is transposed back for
the residual sum, and the backward pass makes the same copies for the gradients.

Stored as `(N, B, C)` instead, the table needs no turn at all:
- token mixing is the MLP with its weights on the left, `W1 (D_S, N) @ table (N, B*C)`: one
  matrix product over every image and channel, reading the table in place. The gradient of
  `W1` is one product as well (`dU (D_S, B*C) @ tableᵀ`);
- LayerNorm and the channel-mixing MLP act on the last axis, C, whatever order the other two
  axes are stored in;
- DropPath draws one number per image, along the image axis wherever it lies.

This is the layout of `nn.MultiheadAttention`'s `[seq_len, batch, d_model]`, which the Mixer's
token mixer as a drop-in for attention uses too (`mixer_edu.seq_mixing`); both mix with
`mixer_edu.mlp.mlp_along_first_axis`.

`MlpMixer.forward_features` calls `run_blocks` (the blocks and the final LayerNorm) when
`can_run` allows it; `MlpMixer.tokens_first_in_memory = False` switches it off. The results
agree with the plain blocks to float rounding: a matrix product may add up its terms in another
order when its operands are stored differently (tests/test_tokens_first.py states the
tolerance).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.modules import module as module_globals

from ..drop_path import DropPath
from ..mlp import Mlp, mlp_along_first_axis


def can_run(blocks: nn.Sequential, block_type: type[nn.Module]) -> bool:
    """Whether `run_blocks(blocks, x, norm)` computes what `norm(blocks(x))` computes.

    It does for the paper's blocks (`block_type`, i.e. `MixerBlock`, with `Mlp` across the tokens
    and `DropPath`), except when
    - a hook is registered on one of their modules (it would see `(N, B, C)` tables), or
    - a dropout inside them is active (its random numbers would fall in another order).
    """
    global_hooks = (
        module_globals._global_forward_hooks,
        module_globals._global_forward_pre_hooks,
        module_globals._global_backward_hooks,
    )
    if any(global_hooks):  # torch.nn.modules.module.register_module_forward_hook and friends
        return False
    for block in blocks:
        if not (
            type(block) is block_type
            and type(block.mlp_tokens) is Mlp
            and type(block.drop_path) is DropPath
        ):
            return False
        for module in block.modules():
            if module._forward_hooks or module._forward_pre_hooks or module._backward_hooks:
                return False
            if isinstance(module, nn.Dropout) and module.training and module.p > 0:
                return False
    return True


def run_blocks(blocks: nn.Sequential, x: Tensor, norm: nn.Module) -> Tensor:
    """`norm(blocks(x))` computed on a table stored tokens first.

    Args:
        blocks: the model's `MixerBlock`s (`can_run(blocks)` must be True).
        x: the token table `(B, N, C)`.
        norm: the model's final LayerNorm. It runs on the tokens-first table too: its backward
            pass hands the blocks their gradient stored tokens first, whatever layout the
            gradient arrives in. (Otherwise every token-mixing layer would copy it.)

    Returns:
        `(B, N, C)`, contiguous.
    """
    table = x.transpose(0, 1).contiguous()  # (N, B, C)
    for block in blocks:
        mixed = mlp_along_first_axis(block.mlp_tokens, block.norm1(table))  # across N
        table = table + per_image(block.drop_path, mixed)
        mixed = block.mlp_channels(block.norm2(table))  # on the last axis, C, as in the block
        table = table + per_image(block.drop_path, mixed)
    return norm(table).transpose(0, 1).contiguous()  # (N, B, C) -> (B, N, C)


def per_image(drop_path: DropPath, table: Tensor) -> Tensor:
    """`drop_path` on a table stored tokens first: one draw per image, on the image axis.

    Args:
        drop_path: the block's `DropPath`.
        table: `(N, B, C)`.

    Returns:
        `(N, B, C)`, still stored tokens first.
    """
    return drop_path(table.transpose(0, 1)).transpose(0, 1)  # DropPath wants (B, ...)
