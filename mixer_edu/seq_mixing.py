"""The Mixer's token-mixing MLP as a drop-in replacement for self-attention in a transformer.

A transformer layer and a Mixer block have the same outline: a residual branch that moves
information *between positions* (the token mixer), then a residual branch that works on every
position alone (the feed-forward MLP, the Mixer's channel mixing). Only the token mixer differs:

**Self-attention** computes its position-to-position weights from the input. For a sequence
X of L tokens by D channels (one head, to keep it short):

    A = softmax(X W_q (X W_k)ᵀ / sqrt(d))        (L, L), a new matrix for every input
    Attention(X) = A · X W_v · W_o

**MLP token mixing** (the Mixer's) *learns* them: an MLP applied along the sequence axis, to each
channel's column of L values, with the same weights for every input:

    MlpMixing(X) = W2 · GELU(W1 · X + b1) + b2    W1: (H, L), W2: (L, H)

So row i of W2 · W1 (up to the GELU in between) says how much position i reads from position j,
for every sentence alike: position 5 always listens to position 4 the same way, whatever the
characters are. That is what lets it run without queries and keys, and what sets it apart:

- it is **self-mixing only**. Attention can attend from one sequence to another (queries from the
  decoder, keys and values from the encoder); MLP mixing has no queries or keys, just one
  sequence and fixed weights;
- this module **takes no mask per call**. Attention hides a position by setting its score to
  -inf before the softmax, a different mask for every call if need be; MLP mixing has no per-input
  scores to hide, so `MlpTokenMixer` refuses `mask=`. That is this module's choice, not a limit of
  MLP mixing: a fixed mask belongs in the weights. A causal token mixer multiplies its `(L, L)`
  weights by a lower-triangular mask, so position i reads only positions up to i, as an
  autoregressive (left-to-right) model needs; exercise 8
  (`notebooks/exercises/08-Causal-Token-Mixing.ipynb`) builds one. Padding masks, which change
  from batch to batch, have no such fixed form;
- its **sequence length is fixed** when it is built, because W1 has exactly L inputs.

`MlpTokenMixer` has the call signature of an attention module, `(query, key, value, mask=None)`
on `[num_tokens, batch, d_model]` tensors (the layout of `nn.MultiheadAttention`), and raises a
`ValueError` that says which of the three calls it refuses, and why. `EncoderLayer` and
`TextEncoder` build a small pre-norm transformer encoder whose token mixer is a constructor choice,
`mixer="attention"` or `mixer="mlp"`, for the masked-language-model experiment in
`mixer_edu.mlm`.

A note on layout. In `[num_tokens, batch, d_model]` the sequence axis comes first, and `Mlp` acts
on the last axis, so the mixer turns the sequence axis last, applies the MLP, and turns it back:
the same transpose as in `MixerBlock.forward`.

An `EncoderLayer` with `mixer="mlp"` computes exactly what a `MixerBlock` computes on the same
weights (`mixer_edu.mixer`); only the layout of the tensor differs, `(L, B, D)` instead of
`(B, N, C)`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .mlp import Mlp
from .support.validation import check_positive_int, check_probability, check_tensor

MIXERS = ("attention", "mlp")
LAYER_NORM_EPS = 1e-6  # as in the Mixer, so an MLP-mixing layer equals a MixerBlock


def gelu_slope(x: Tensor) -> Tensor:
    """The derivative of the exact GELU, `Φ(x) + x φ(x)` (Φ, φ: the standard normal's cdf, pdf)."""
    cdf = 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return cdf + x * pdf


def _check_sequence(x: Tensor, name: str) -> Tensor:
    check_tensor(x, name)
    if x.ndim != 3:
        raise ValueError(
            f"{name} must have shape [num_tokens, batch, d_model] (sequence first, like "
            f"nn.MultiheadAttention), got {tuple(x.shape)}; for batch-first data use "
            "x.transpose(0, 1)."
        )
    return x


class MlpTokenMixer(nn.Module):
    """The Mixer's token-mixing MLP behind the call signature of self-attention.

    Args:
        num_tokens: the sequence length L it is built for (fixed: W1 has L inputs).
        hidden_features: hidden width H of the MLP across positions (default `num_tokens`).
        drop: dropout inside the MLP.

    Shapes:
        `(query, key, value)`: the same `[num_tokens, batch, d_model]` tensor ->
        `[num_tokens, batch, d_model]`.
    """

    def __init__(self, num_tokens: int, hidden_features: int | None = None, drop: float = 0.0):
        super().__init__()
        self.num_tokens = check_positive_int(num_tokens, "num_tokens")
        # A plain Mlp(L, H) with timm's names; forward applies its layers along the sequence.
        self.mlp = Mlp(num_tokens, hidden_features or num_tokens, drop=drop)

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None
    ) -> Tensor:
        self._check_call(query, key, value, mask)
        # Across positions: (L, B, D) -> (B, D, L) -> MLP over L -> (B, D, L) -> (L, B, D)
        return self.mlp(query.permute(1, 2, 0)).permute(2, 0, 1)

    def _check_call(self, query, key, value, mask) -> None:
        if not (query is key and key is value):
            raise ValueError(
                "MLP token mixing is self-mixing only: query, key and value must be the same "
                "tensor, e.g. mixer(x, x, x). Attention can read from another sequence because it "
                "compares queries with keys; MLP mixing has no queries or keys, only fixed "
                "position-to-position weights applied to a single sequence."
            )
        if mask is not None:
            raise ValueError(
                "this MLP token mixer does not take a per-call mask: its position-to-position "
                "weights are learned parameters, the same for every input, not scores computed "
                "from queries and keys that a mask could hide. Pass mask=None (use fixed-length "
                "sequences without padding). A fixed causal mask belongs in the weights (multiply "
                "them by a lower-triangular mask; exercise 8 builds one); "
                "use attention for padding masks that change from batch to batch."
            )
        _check_sequence(query, "query")
        if query.shape[0] != self.num_tokens:
            hidden = self.mlp.fc1.out_features
            raise ValueError(
                f"this MLP token mixer was built for num_tokens={self.num_tokens}, because its "
                f"weights are a {self.num_tokens} -> {hidden} -> {self.num_tokens} map over "
                "positions, but got "
                f"a sequence of length {query.shape[0]} (query shape {tuple(query.shape)}). "
                f"Cut or pad the sequences to {self.num_tokens}, or build the mixer with "
                f"num_tokens={query.shape[0]}."
            )

    @torch.no_grad()
    def mixing_matrix(self, x: Tensor) -> Tensor:
        """The average position-to-position matrix on inputs `x`, `(L, L)`.

        Entry (i, j) is the mean over the batch and channels of ∂ output_i / ∂ input_j. For a
        one-hidden-layer MLP that is `W2 · diag(s) · W1`, where s_k is hidden unit k's average
        GELU slope on `x`: the learned weights W2 · W1, each hidden unit weighted by how open
        its GELU is on real data.

        Args:
            x: `(L, B, D)`, what the mixer sees (in an encoder: the normalised layer input).
        """
        _check_sequence(x, "x")
        pre_activations = []  # what the GELU receives in the mixer's own forward: (B, D, H)
        hook = self.mlp.act.register_forward_hook(
            lambda _, args, out: pre_activations.append(args[0])
        )
        try:
            self(x, x, x)
        finally:
            hook.remove()
        slope = gelu_slope(pre_activations[0]).mean(dim=(0, 1))  # (H,)
        return self.mlp.fc2.weight @ (slope.unsqueeze(1) * self.mlp.fc1.weight)  # (L, L)

    def extra_repr(self) -> str:
        return f"num_tokens={self.num_tokens}"


class SelfAttention(nn.Module):
    """Multi-head softmax self-attention (torch's `nn.MultiheadAttention`), same signature.

    Args:
        d_model: channels D of every token.
        num_heads: attention heads; must divide `d_model`.
        drop: dropout on the attention weights.

    `mask` (optional) is a boolean `(L, L)` tensor, True where query position i may look at key
    position j (e.g. `torch.ones(L, L).tril().bool()` for causal attention).

    Set `keep_maps = True` to store the last call's attention weights in `self.maps`,
    `(B, num_heads, L, L)`, each row a probability distribution over the key positions. It is off
    by default because computing the weights explicitly is slower than the fused kernel.

    Shapes:
        `[num_tokens, batch, d_model] -> [num_tokens, batch, d_model]`.
    """

    def __init__(self, d_model: int, num_heads: int = 4, drop: float = 0.0):
        super().__init__()
        check_positive_int(d_model, "d_model")
        check_positive_int(num_heads, "num_heads")
        if d_model % num_heads != 0:
            raise ValueError(
                f"num_heads={num_heads} must divide d_model={d_model}: each head gets "
                f"d_model / num_heads channels; try num_heads in "
                f"{[h for h in range(1, 17) if d_model % h == 0]}."
            )
        self.attention = nn.MultiheadAttention(
            d_model, num_heads, dropout=check_probability(drop, "drop")
        )
        self.keep_maps = False
        self.maps: Tensor | None = None

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None
    ) -> Tensor:
        for tensor, name in [(query, "query"), (key, "key"), (value, "value")]:
            _check_sequence(tensor, name)
        blocked = None if mask is None else ~mask.bool()  # torch's convention: True = blocked
        out, maps = self.attention(
            query,
            key,
            value,
            attn_mask=blocked,
            need_weights=self.keep_maps,
            average_attn_weights=False,
        )
        if self.keep_maps:
            self.maps = maps.detach()  # (B, heads, L_query, L_key)
        return out


class EncoderLayer(nn.Module):
    """One pre-norm transformer encoder layer with a choice of token mixer.

        x = x + TokenMixer(LayerNorm(x))     attention or MLP mixing: between positions
        x = x + FeedForward(LayerNorm(x))    an MLP on every position: between channels

    Args:
        d_model: channels D of every token.
        num_tokens: sequence length L (used by the MLP mixer, whose weights fix it).
        mixer: `"attention"` or `"mlp"`.
        num_heads: attention heads (attention only).
        mlp_ratio: feed-forward hidden width as a multiple of `d_model`.
        token_mlp_hidden: hidden width of the MLP mixer (MLP only; default `num_tokens`).
        drop: dropout in both branches.

    Shapes:
        `[num_tokens, batch, d_model] -> [num_tokens, batch, d_model]`.
    """

    def __init__(
        self,
        d_model: int,
        num_tokens: int,
        mixer: str = "attention",
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        token_mlp_hidden: int | None = None,
        drop: float = 0.0,
    ):
        super().__init__()
        check_mixer(mixer)
        self.norm1 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        if mixer == "attention":
            self.token_mixer = SelfAttention(d_model, num_heads, drop=drop)
        else:
            self.token_mixer = MlpTokenMixer(num_tokens, token_mlp_hidden, drop=drop)
        self.norm2 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.feed_forward = Mlp(d_model, int(mlp_ratio * d_model), drop=drop)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h = self.norm1(x)  # (L, B, D)
        x = x + self.token_mixer(h, h, h, mask=mask)  # the same tensor three times: self-mixing
        return x + self.feed_forward(self.norm2(x))  # (L, B, D)


class TextEncoder(nn.Module):
    """A small transformer encoder over token ids, with a head that predicts every token.

    token ids -> token embedding (+ learned position embedding) -> `num_layers` x `EncoderLayer`
    -> LayerNorm -> Linear to `vocab_size` logits at every position (what a masked language
    model needs).

    Attention treats its input as a *set*: permute the positions and the outputs permute the same
    way, so without position embeddings it could not tell "dog bites man" from "man bites dog".
    The MLP mixer's weights are tied to positions (column j of W1 always reads position j), so it
    knows the order without them; by default only the attention encoder gets them.

    Args:
        vocab_size: number of token ids.
        num_tokens: length L of every sequence (the maximum for attention, exact for MLP mixing).
        mixer: `"attention"` or `"mlp"`.
        d_model: channels D of every token.
        num_layers: encoder layers.
        num_heads, mlp_ratio, token_mlp_hidden, drop: see `EncoderLayer`.
        position_embedding: add learned position embeddings (default: only for attention).

    Shapes:
        `forward`: tokens `(B, L)` (batch first, int64) -> logits `(B, L, vocab_size)`. Inside,
        the layers run on `[num_tokens, batch, d_model]`, the layout of `nn.MultiheadAttention`.
    """

    def __init__(
        self,
        vocab_size: int,
        num_tokens: int,
        mixer: str = "attention",
        d_model: int = 128,
        num_layers: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        token_mlp_hidden: int | None = None,
        drop: float = 0.0,
        position_embedding: bool | None = None,
    ):
        super().__init__()
        check_positive_int(vocab_size, "vocab_size")
        check_positive_int(num_tokens, "num_tokens")
        check_positive_int(num_layers, "num_layers")
        self.mixer = check_mixer(mixer)
        self.num_tokens = num_tokens
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        if position_embedding is None:
            position_embedding = mixer == "attention"
        self.position_embedding = (
            nn.Parameter(torch.zeros(num_tokens, 1, d_model)) if position_embedding else None
        )
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, num_tokens, mixer, num_heads, mlp_ratio, token_mlp_hidden, drop)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.head = nn.Linear(d_model, vocab_size)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Embeddings ~ N(0, 0.02) as in BERT and GPT-2; the layers keep PyTorch's defaults.

        (Unlike the Mixer's classifier, the head is not zeroed: measured on the masked-character
        task, a zero head kept the attention encoder at the most-common-character guess about
        twice as long.)
        """
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        if self.position_embedding is not None:
            nn.init.normal_(self.position_embedding, std=0.02)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embed(tokens)  # (B, L) -> (L, B, D)
        for layer in self.layers:
            x = layer(x)  # (L, B, D)
        return self.head(self.norm(x)).transpose(0, 1)  # (L, B, D) -> (B, L, vocab_size)

    def embed(self, tokens: Tensor) -> Tensor:
        """Token ids `(B, L)` -> embedded sequence `(L, B, D)`."""
        check_tensor(tokens, "tokens")
        if tokens.ndim != 2 or tokens.dtype != torch.long:
            raise ValueError(
                f"tokens must be a (batch, num_tokens) tensor of int64 token ids, got shape "
                f"{tuple(tokens.shape)} and dtype {tokens.dtype}."
            )
        length = tokens.shape[1]
        if length > self.num_tokens:
            raise ValueError(
                f"the encoder was built for sequences of at most num_tokens={self.num_tokens} "
                "tokens, "
                f"got {length}; cut the text into pieces of {self.num_tokens}."
            )
        x = self.token_embedding(tokens.T)  # (L, B) -> (L, B, D): sequence first
        if self.position_embedding is not None:
            x = x + self.position_embedding[:length]  # (L, 1, D) broadcasts over the batch
        return x

    @torch.no_grad()
    def token_mixing_maps(self, tokens: Tensor) -> list[Tensor]:
        """What each layer's token mixer does on `tokens`, as position-to-position pictures.

        Attention: the attention weights, `(B, num_heads, L, L)` per layer (each row sums to 1),
        different for every input. MLP mixing: `MlpTokenMixer.mixing_matrix`, `(L, L)` per layer,
        the learned weights averaged over this batch. `tokens` may be on any device (they are moved
        to the model's); the maps come back on the CPU, ready to plot.
        """
        maps = []
        x = self.embed(tokens.to(next(self.parameters()).device))
        for layer in self.layers:
            mixer = layer.token_mixer
            if isinstance(mixer, SelfAttention):
                mixer.keep_maps = True
                try:
                    next_x = layer(x)
                finally:
                    mixer.keep_maps = False
                maps.append(mixer.maps)
                mixer.maps = None
            else:
                maps.append(mixer.mixing_matrix(layer.norm1(x)))
                next_x = layer(x)
            x = next_x
        return [m.cpu() for m in maps]


def check_mixer(mixer: str) -> str:
    """Return `mixer` after checking it names a token mixer."""
    if mixer not in MIXERS:
        raise ValueError(
            f"mixer must be 'attention' (softmax self-attention) or 'mlp' (the Mixer's token "
            f"mixing), got {mixer!r}."
        )
    return mixer
