"""The masked-language-model experiment's data: text, a character vocabulary, and BERT's masking.

`mixer_edu.mlm` trains and compares the encoders on it; see that module for the experiment.

- `load_corpus` / `clean_text`: Python's own documentation topics (`pydoc_data.topics`, offline),
  normalised to printable ASCII with single spaces.
- `CharVocabulary`: one id per printable ASCII character, plus `[MASK]`.
- `MlmData`: the text cut into blocks, every 10th held out; random training windows.
- `mask_tokens`: pick 15% of the positions; 80% become `[MASK]`, 10% a random character, 10% stay.

Shapes: a batch of token ids is `(B, L)`, `L` = `num_tokens` characters.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import torch
from torch import Tensor

from .support.validation import check_positive_int

IGNORE_INDEX = -100  # cross_entropy skips targets with this value: the positions not picked
MASK_SYMBOL = "\N{FULL BLOCK}"  # how decode() shows a [MASK]

# ------------------------------------------------------------------------------------------------
# The corpus and the character vocabulary
# ------------------------------------------------------------------------------------------------

_TYPOGRAPHY = str.maketrans(
    {"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'", "\u2013": "-", "\u2014": "--"}
)
_RULE_LINE = re.compile(r"^\s*([^\w\s])\1{2,}\s*$", re.MULTILINE)  # ****, ====, ---- underlines


def clean_text(text: str) -> str:
    """Normalise text to printable ASCII with single spaces.

    Curly quotes and dashes become ASCII, accents are dropped (é -> e), other non-ASCII
    characters are removed, lines that only underline a title (`*****`) are removed, and every
    run of whitespace (newlines and indentation included) becomes one space.
    """
    text = _RULE_LINE.sub("", text.translate(_TYPOGRAPHY).replace("\u2026", "..."))
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"\s+", " ", text).strip()


def load_corpus() -> str:
    """The English documentation topics that ship with Python (`pydoc_data`), cleaned."""
    try:
        from pydoc_data.topics import topics
    except ImportError as error:  # some minimal system Pythons leave pydoc_data out
        raise RuntimeError(
            "this Python has no pydoc_data module (its documentation topics); install the full "
            "standard library (e.g. Debian's libpython3-stdlib) or pass your own text to "
            "MlmData(text)."
        ) from error
    return clean_text("\n\n".join(topics[name] for name in sorted(topics)))


@dataclass(frozen=True)
class CharVocabulary:
    """Characters <-> ids: one id per character of `chars`, then one for `[MASK]`."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> CharVocabulary:
        """The characters that occur in `text`, sorted."""
        return cls("".join(sorted(set(text))))

    @classmethod
    def printable(cls) -> CharVocabulary:
        """The 95 printable ASCII characters, space to `~`: everything `clean_text` leaves."""
        return cls("".join(map(chr, range(32, 127))))

    @property
    def mask_id(self) -> int:
        return len(self.chars)

    @property
    def size(self) -> int:
        """Number of ids: the characters plus `[MASK]`."""
        return len(self.chars) + 1

    def encode(self, text: str) -> Tensor:
        """`str` of length T -> int64 ids `(T,)`."""
        index = {char: i for i, char in enumerate(self.chars)}
        unknown = sorted(set(text) - index.keys())
        if unknown:
            raise ValueError(
                f"characters {unknown[:10]} are not in the vocabulary; clean the text with "
                "clean_text() or build the vocabulary from it with CharVocabulary.from_text()."
            )
        return torch.tensor([index[char] for char in text], dtype=torch.long)

    def decode(self, ids: Tensor) -> str:
        """ids `(T,)` -> `str`, with `[MASK]` shown as a full block."""
        return "".join(MASK_SYMBOL if i == self.mask_id else self.chars[i] for i in ids.tolist())


class MlmData:
    """The text as ids, split into training and held-out blocks, and batches drawn from them.

    The text is cut into blocks of `16 * num_tokens` characters and every 10th block is held out, so
    the held-out text is spread over the whole corpus but never overlaps the training text.

    Args:
        text: the corpus (default `load_corpus()`).
        num_tokens: length L of every sequence.
        heldout_every: hold out one block in this many.
        vocab: the characters the model knows. Default: the printable ASCII characters for the
            default corpus (so the model's size does not depend on the Python version whose
            documentation it reads), else the characters of `text`.
    """

    def __init__(
        self,
        text: str | None = None,
        num_tokens: int = 64,
        heldout_every: int = 10,
        vocab: CharVocabulary | None = None,
    ):
        self.num_tokens = check_positive_int(num_tokens, "num_tokens")
        if text is None:
            text, vocab = load_corpus(), vocab or CharVocabulary.printable()
        self.text = text
        self.vocab = vocab or CharVocabulary.from_text(text)
        self.block_len = 16 * num_tokens
        ids = self.vocab.encode(self.text)
        num_blocks = len(ids) // self.block_len
        if num_blocks < 2:
            raise ValueError(
                f"the text has {len(ids)} characters, too few for two blocks of "
                f"{self.block_len} (16 * num_tokens={num_tokens}); use more text or a smaller "
                "num_tokens."
            )
        blocks = ids[: num_blocks * self.block_len].view(num_blocks, self.block_len)
        heldout = torch.arange(num_blocks) % heldout_every == heldout_every - 1
        if not heldout.any():  # a small text: hold out the last block
            heldout[-1] = True
        self.train_blocks = blocks[~heldout]  # (n_train, 16 L)
        self.heldout_blocks = blocks[heldout]  # (n_heldout, 16 L)

    def train_batch(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """Windows of L characters from random places in the training blocks: `(batch_size, L)`."""
        rows = torch.randint(len(self.train_blocks), (batch_size,), generator=generator)
        last_start = self.block_len - self.num_tokens
        starts = torch.randint(last_start + 1, (batch_size,), generator=generator)
        columns = starts.unsqueeze(1) + torch.arange(self.num_tokens)  # (B, L)
        return self.train_blocks[rows.unsqueeze(1), columns]

    def heldout_sequences(self, max_sequences: int | None = None) -> Tensor:
        """The held-out text cut into consecutive sequences, `(S, L)`, at most `max_sequences`."""
        sequences = self.heldout_blocks.reshape(-1, self.num_tokens)
        return sequences if max_sequences is None else sequences[:max_sequences]


def mask_tokens(
    tokens: Tensor,
    vocab: CharVocabulary,
    generator: torch.Generator,
    mask_prob: float = 0.15,
) -> tuple[Tensor, Tensor]:
    """BERT's masking: pick `mask_prob` of the positions; 80% -> [MASK], 10% random, 10% kept.

    Args:
        tokens: ids `(B, L)`.

    Returns:
        `(inputs, targets)`, both `(B, L)`: the corrupted ids the model sees, and the original ids
        at the picked positions with `IGNORE_INDEX` everywhere else (no loss there).
    """
    picked = torch.rand(tokens.shape, generator=generator) < mask_prob
    action = torch.rand(tokens.shape, generator=generator)  # which of the three things to do
    random_chars = torch.randint(len(vocab.chars), tokens.shape, generator=generator)
    inputs = torch.where(picked & (action < 0.8), vocab.mask_id, tokens)
    inputs = torch.where(picked & (action >= 0.8) & (action < 0.9), random_chars, inputs)
    targets = torch.where(picked, tokens, IGNORE_INDEX)
    return inputs, targets
