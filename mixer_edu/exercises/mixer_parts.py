"""Exercise 9's diagnosis, part by part: which step of the student's Mixer goes wrong, and how.

The forward pass is a chain of tables, each made from the one before by one step:

    images -stem-> tokens -block 0: token mixing-> . -channel mixing-> . -block 1 ...
           -final LayerNorm and pooling-> pooled (B, C) -head-> logits

`forward(model, images, **mistakes)` computes that chain with any step done in a typical wrong
way (the `STEM`, `TOKEN`, `CHANNEL` and `POOL` mistakes below, each with its hint). The checker
finds the student's mistake in two ways:

1. **Located.** While the student's code runs, forward hooks on the model's layers record the
   table each layer was given. The table entering block i (what `blocks.i` or `blocks.i.norm1`
   reads), the one after its token mixing (what `norm2` reads), the one after the last block
   (what `model.norm` reads) and the pooled vector (what `model.head` reads) are compared with the
   reference's; the first that differs names the step that made it, and that step is recomputed
   from the (right) table before it in each typical wrong way.
2. **Everywhere.** If the student's code calls none of those layers (it uses their weights
   directly), the whole forward pass is recomputed with each mistake made in every block, and the
   logits compared.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .feedback import close, max_difference
from .sandbox import run_student_code


def _mlp(mlp: nn.Module, x: Tensor, how: str = "") -> Tensor:
    """A Mixer Mlp (fc1, GELU, fc2) on the last axis, or with one typical slip."""
    act = {"no GELU": lambda h: h, "tanh GELU": lambda h: F.gelu(h, approximate="tanh"),
           "ReLU": F.relu}.get(how, F.gelu)  # fmt: skip
    fc1_bias = None if how == "no fc1 bias" else mlp.fc1.bias
    fc2_bias = None if how == "no fc2 bias" else mlp.fc2.bias
    return F.linear(act(F.linear(x, mlp.fc1.weight, fc1_bias)), mlp.fc2.weight, fc2_bias)


def _tokens(block: nn.Module, y: Tensor, how: str = "") -> Tensor:
    """The token-mixing MLP across the N tokens of each channel, `(B, N, C) -> (B, N, C)`."""
    if how == "no transpose":
        return _mlp(block.mlp_tokens, y)
    if how == "reshape":
        b, n, c = y.shape
        return _mlp(block.mlp_tokens, y.reshape(b, c, n)).reshape(b, n, c)
    return _mlp(block.mlp_tokens, y.transpose(1, 2), how).transpose(1, 2)


MLP_SLIPS = {
    "no GELU": "has no GELU between its two layers, so it is a single linear map",
    "tanh GELU": "uses GELU's tanh approximation; the Mixer uses the exact GELU",
    "ReLU": "uses ReLU between its two layers; the Mixer uses GELU",
    "no fc1 bias": "leaves out the bias of its first layer (fc1): use the whole Linear layer",
    "no fc2 bias": "leaves out the bias of its second layer (fc2): use the whole Linear layer",
}

# Token-mixing step of block i, (x, block) -> x after token mixing.
TOKEN = {
    "no norm": (
        lambda x, b: x + _tokens(b, x),
        "the token-mixing MLP reads the table without its LayerNorm (norm1)",
    ),
    "no residual": (
        lambda x, b: _tokens(b, b.norm1(x)),
        "the residual around token mixing is missing: the block's input is not added back",
    ),
    "normed residual": (
        lambda x, b: b.norm1(x) + _tokens(b, b.norm1(x)),
        "the residual adds the normalised table; it adds the block's input itself",
    ),
    "post-norm": (
        lambda x, b: x + b.norm1(_tokens(b, x)),
        "norm1 is applied to the token-mixing MLP's output (post-norm); it normalises its input",
    ),
    "no transpose": (
        lambda x, b: x + _tokens(b, b.norm1(x), "no transpose"),
        "mlp_tokens is applied along the last axis, the channels; it must mix the N tokens of "
        "each channel, so the table has to be turned for it and turned back",
    ),
    "reshape": (
        lambda x, b: x + _tokens(b, b.norm1(x), "reshape"),
        "the table was reinterpreted (reshape or view) for mlp_tokens instead of turned: a "
        "reshape keeps the memory order and scrambles tokens with channels",
    ),
    "norm2": (
        lambda x, b: x + _tokens(b, b.norm2(x)),
        "token mixing reads norm2's output; it has its own LayerNorm, norm1",
    ),
    "channels first": (
        lambda x, b: x + _mlp(b.mlp_channels, b.norm2(x)),
        "channel mixing runs before token mixing; a Mixer block mixes the tokens first",
    ),
    **{
        slip: (
            lambda x, b, slip=slip: x + _tokens(b, b.norm1(x), slip),
            f"the token-mixing MLP (mlp_tokens) {hint}",
        )
        for slip, hint in MLP_SLIPS.items()
    },
}

# Channel-mixing step of block i, (x after token mixing, block, block input) -> block output.
CHANNEL = {
    "no norm": (
        lambda x, b, x0: x + _mlp(b.mlp_channels, x),
        "the channel-mixing MLP reads the table without its LayerNorm (norm2)",
    ),
    "no residual": (
        lambda x, b, x0: _mlp(b.mlp_channels, b.norm2(x)),
        "the residual around channel mixing is missing: its input is not added back",
    ),
    "normed residual": (
        lambda x, b, x0: b.norm2(x) + _mlp(b.mlp_channels, b.norm2(x)),
        "the residual adds the normalised table; it adds the branch's input itself",
    ),
    "post-norm": (
        lambda x, b, x0: x + b.norm2(_mlp(b.mlp_channels, x)),
        "norm2 is applied to the channel-mixing MLP's output (post-norm); it normalises its input",
    ),
    "side by side": (
        lambda x, b, x0: x + _mlp(b.mlp_channels, b.norm2(x0)),
        "channel mixing reads the block's input instead of the result of token mixing: the two "
        "branches run one after the other, not side by side",
    ),
    "norm1": (
        lambda x, b, x0: x + _mlp(b.mlp_channels, b.norm1(x)),
        "channel mixing reads norm1's output; it has its own LayerNorm, norm2",
    ),
    **{
        slip: (
            lambda x, b, x0, slip=slip: x + _mlp(b.mlp_channels, b.norm2(x), slip),
            f"the channel-mixing MLP (mlp_channels) {hint}",
        )
        for slip, hint in MLP_SLIPS.items()
    },
}


def _conv_tokens(model: nn.Module, images: Tensor, how: str = "") -> Tensor:
    proj = model.stem.proj
    bias = None if how == "no bias" else proj.bias
    y = F.conv2d(images, proj.weight, bias, stride=proj.stride)  # (B, C, h, w)
    b, c = y.shape[:2]
    if how == "columns":
        return y.transpose(2, 3).flatten(2).transpose(1, 2)
    if how == "no transpose":
        return y.flatten(2)
    if how == "reshape":
        return y.reshape(b, -1, c)
    if how == "unrolled":  # patches unrolled (row, column, channel) against (channel, row, column)
        p = proj.kernel_size[0]
        patches = F.unfold(images, p, stride=p)  # (B, 3*P*P, N), (c p1 p2)
        patches = patches.view(b, images.shape[1], p * p, -1).transpose(1, 2).flatten(1, 2)
        return F.linear(patches.transpose(1, 2), proj.weight.flatten(1), bias)
    return y.flatten(2).transpose(1, 2)


STEM = {
    how: (lambda model, images, how=how: _conv_tokens(model, images, how), hint)
    for how, hint in {
        "columns": "the stem numbers the patches column by column; the Mixer (and timm's "
        "weights) number them row by row, left to right and then top to bottom",
        "no transpose": "the stem's table is channels first, (B, C, N): the convolution's "
        "(B, C, h, w) output was flattened or reshaped without being turned; the blocks read one "
        "row per patch, (B, N, C)",
        "reshape": "the stem's output (B, C, h, w) was reshaped to (B, N, C) instead of turned: "
        "a reshape keeps the memory order and mixes patches with channels",
        "no bias": "the stem's bias is missing: use the whole convolution (model.stem.proj)",
        "unrolled": "the stem pairs pixels with the wrong weights: the patches are unrolled "
        "(row, column, channel), but the convolution's flattened filters are (channel, row, "
        "column)",
    }.items()
}


def _linear_tokens(model: nn.Module, images: Tensor, pattern: str) -> Tensor:
    """The stem as a Linear on patches unrolled in `pattern` (its weights read `(p1 p2 c)`)."""
    proj = model.stem.proj
    p = proj.kernel_size[0]
    weight = rearrange(proj.weight, "d c p1 p2 -> d (p1 p2 c)")  # conv_to_linear's order
    patches = rearrange(images, f"b c (h p1) (w p2) -> {pattern}", p1=p, p2=p)
    return F.linear(patches, weight, proj.bias)


# A stem written as the student's patchify and a Linear: the patch order of their patchify.
STEM.update({
    "patch (c p1 p2)": (
        lambda model, images: _linear_tokens(model, images, "b (h w) (c p1 p2)"),
        "the stem's patches are unrolled channel first, (c p1 p2), but the stem's Linear (timm's "
        "weights, converted by conv_to_linear) reads (row, column, channel): check the patchify "
        "you brought from exercise 1",
    ),
    "patch (p2 p1 c)": (
        lambda model, images: _linear_tokens(model, images, "b (h w) (p2 p1 c)"),
        "the stem's patches are unrolled column by column inside each patch, (p2 p1 c); the "
        "stem's Linear reads each patch row by row, (p1 p2 c): check your patchify",
    ),
})  # fmt: skip


def _pooled(model: nn.Module, x: Tensor, how: str = "") -> Tensor:
    return {
        "no norm": lambda: x.mean(dim=1),
        "norm after pooling": lambda: model.norm(x.mean(dim=1)),
        "channels": lambda: model.norm(x).mean(dim=2),
        "max": lambda: model.norm(x).amax(dim=1),
        "sum": lambda: model.norm(x).sum(dim=1),
        "first token": lambda: model.norm(x)[:, 0],
    }.get(how, lambda: model.norm(x).mean(dim=1))()


POOL = {
    "no norm": "the final LayerNorm (model.norm) is missing: normalise the tokens after the "
    "last block",
    "norm after pooling": "model.norm is applied after pooling; the Mixer normalises every "
    "token, then averages",
    "channels": "the pooling averages over the channels (the last axis); the Mixer averages "
    "over the N tokens, so that one C-vector per image reaches the head",
    "max": "the pooling takes the maximum over the tokens; the Mixer takes their mean",
    "sum": "the pooling sums the tokens; the Mixer averages them (divide by N)",
    "first token": "the head reads the first token only (ViT's class token); the Mixer has no "
    "class token and averages all N tokens",
}


def forward(model, images, stem="", token="", channel="", pool="", order=None) -> Tensor:
    """The Mixer's logits, with the named step (if any) made in its typical wrong way."""
    if stem == "norm first":
        x = model.norm(_conv_tokens(model, images))
    else:
        x = STEM[stem][0](model, images) if stem else _conv_tokens(model, images)
    for block in order if order is not None else model.blocks:
        x0 = x
        x = TOKEN[token][0](x, block) if token else x + _tokens(block, block.norm1(x))
        x = CHANNEL[channel][0](x, block, x0) if channel else x + _mlp(
            block.mlp_channels, block.norm2(x)
        )  # fmt: skip
    return model.head(_pooled(model, x, pool))


def everywhere(model, images) -> list[tuple[Callable[[], Tensor], str]]:
    """Each typical mistake made in every block (or in the stem, or the pooling), and its hint."""
    blocks = list(model.blocks)
    candidates = [(lambda h=h: forward(model, images, pool=h), POOL[h]) for h in POOL]
    candidates += [(lambda h=h: forward(model, images, stem=h), STEM[h][1]) for h in STEM]
    candidates += [(lambda h=h: forward(model, images, token=h), TOKEN[h][1]) for h in TOKEN]
    candidates += [(lambda h=h: forward(model, images, channel=h), CHANNEL[h][1]) for h in CHANNEL]
    if len(blocks) > 1:
        candidates += [
            (lambda: forward(model, images, order=blocks[:1]),
             "only the first block runs: apply every block of model.blocks, one after the other"),
            (lambda: forward(model, images, order=blocks[-1:]),
             "only the last block runs: apply every block of model.blocks, one after the other"),
            (lambda: forward(model, images, order=blocks[::-1]),
             "the blocks run in reverse order; apply model.blocks from first to last"),
            (lambda: forward(model, images, order=blocks[:1] * len(blocks)),
             "the first block runs again and again: apply each block of model.blocks once, "
             "one after the other"),
        ]  # fmt: skip
    candidates.append(
        (
            lambda: forward(model, images, stem="norm first", pool="no norm"),
            "model.norm is applied to the stem's tokens, before the blocks; the final LayerNorm "
            "comes after the last block",
        )
    )
    candidates.append(
        (
            lambda: forward(model, images).softmax(dim=-1),
            "the output is probabilities (a softmax); the model returns logits, and the loss "
            "(cross-entropy) applies the softmax itself",
        )
    )
    return candidates


def record_tables(function, model: nn.Module, images: Tensor) -> dict[str, Tensor]:
    """The first table each layer of `model` is given while `function(model, images)` runs."""
    seen: dict[str, Tensor] = {}

    def remember(name):
        def hook(module, args):
            if name not in seen and args and isinstance(args[0], Tensor):
                seen[name] = args[0].detach().clone()

        return hook

    handles = [
        layer.register_forward_pre_hook(remember(name))
        for name, layer in model.named_modules()
        if name
    ]
    try:
        with torch.no_grad():
            run_student_code(function, model, images.clone())
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _first(seen: dict[str, Tensor], *names: str) -> Tensor | None:
    for name in names:
        if name in seen:
            return seen[name]
    return None


def _matching(table: Tensor, candidates) -> str | None:
    for compute, hint in candidates:
        try:
            mistaken = compute()
        except Exception:  # noqa: BLE001, S112 - a mistake that cannot happen in this case
            continue
        if mistaken.shape == table.shape and close(table, mistaken):
            return hint
    return None


def _differs(where: str, table: Tensor, expected: Tensor, candidates, step: str) -> str:
    """The hint for the first student table that differs from the reference's."""
    if table.shape != expected.shape:
        return (
            f"{where} has shape {tuple(table.shape)}, the reference's {tuple(expected.shape)}: "
            f"look at {step}"
        )
    hint = _matching(table, candidates)
    if hint is not None:
        return f"{where} differs from the reference's: {hint}"
    difference, index = max_difference(table, expected)
    return (
        f"{where} is the first table that differs from the reference's (largest difference "
        f"{difference:.3g} at index {index}); everything before it is right, so look at {step}"
    )


def _pool_candidates(model, x: Tensor):
    candidates = [(lambda h=h: _pooled(model, x, h), POOL[h]) for h in POOL]
    mean = model.norm(x).mean(dim=1)
    return candidates, mean


def _scaled_mean(pooled: Tensor, mean: Tensor, tokens: int) -> str | None:
    """A hint if `pooled` is the mean times a constant (a sum divided by a fixed number)."""
    scale = (pooled * mean).sum() / (mean * mean).sum()
    if abs(scale.item() - 1.0) > 1e-3 and close(pooled, scale * mean):
        return (
            f"the pooled vector is {scale.item():.4g} times the mean of the tokens: the sum is "
            f"divided by {tokens / scale.item():.4g}, but this model has N = {tokens} tokens; "
            "take the number of tokens from the table, not a fixed number"
        )
    return None


def _locate_in_block(seen, i: int, block, x0: Tensor, last: bool) -> tuple[str | None, Tensor]:
    """(the hint if block i's recorded tables differ, else None; the block's right output)."""
    mid = x0 + _tokens(block, block.norm1(x0))
    table = seen.get(f"blocks.{i}.norm2")
    tokens = [(lambda h=h: TOKEN[h][0](x0, block), TOKEN[h][1]) for h in TOKEN]
    if table is not None and not (table.shape == mid.shape and close(table, mid)):
        where = f"in block {i}, the table after token mixing"
        return _differs(where, table, mid, tokens, f"block {i}'s token mixing"), mid
    out = mid + _mlp(block.mlp_channels, block.norm2(mid))
    names = ("norm",) if last else (f"blocks.{i + 1}", f"blocks.{i + 1}.norm1")
    table = _first(seen, *names)
    if table is None or (table.shape == out.shape and close(table, out)):
        return None, out
    channels = [(lambda h=h: CHANNEL[h][0](mid, block, x0), CHANNEL[h][1]) for h in CHANNEL]
    if f"blocks.{i}.norm2" not in seen:  # token mixing was not seen: its mistakes too
        channels += [
            (lambda c=c: c() + _mlp(block.mlp_channels, block.norm2(c())), hint)
            for c, hint in tokens
        ]
    return _differs(f"the output of block {i}", table, out, channels, f"block {i}"), out


def locate(seen: dict[str, Tensor], model: nn.Module, images: Tensor) -> str | None:
    """Compare the student's recorded tables with the reference's, step by step (docstring)."""
    blocks = list(model.blocks)
    with torch.no_grad():
        x = _conv_tokens(model, images)
        table = _first(seen, "blocks", "blocks.0", "blocks.0.norm1")
        if table is not None and not (table.shape == x.shape and close(table, x)):
            stem = [(lambda h=h: STEM[h][0](model, images), STEM[h][1]) for h in STEM]
            return _differs("the table entering block 0", table, x, stem, "the stem")
        for i, block in enumerate(blocks):
            hint, x = _locate_in_block(seen, i, block, x, last=i == len(blocks) - 1)
            if hint is not None:
                return hint
        pooled = seen.get("head")
        candidates, mean = _pool_candidates(model, x)
        if pooled is not None and not (pooled.shape == mean.shape and close(pooled, mean)):
            hint = _scaled_mean(pooled, mean, x.shape[1]) if pooled.shape == mean.shape else None
            if hint is not None:
                return hint
            where = "the vector the head reads"
            return _differs(where, pooled, mean, candidates, "the final LayerNorm and the pooling")
        if pooled is not None:
            return (
                "every table up to the pooled vector the head reads is right, but the logits "
                "differ: apply model.head once to the pooled vector, and return its output as it is"
            )
    return None
