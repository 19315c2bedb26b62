"""Classroom exercises: checkers that test a student's own code and say what is wrong.

Each exercise notebook in `notebooks/exercises/` asks the student to write one piece of the
Mixer; a checker from this package then runs the student's code on several inputs, compares it
with the package's reference and with properties the piece must have, prints one line per check
(a tick, or a cross with a hint that names the mistake, never the solution) and returns True or
False. The modules, in the order of the exercises:

1. `patchify`             - `check_patchify`: the patch order of the stem;
2. `token_mixing`         - `check_token_mixing`: an MLP across the tokens (the transpose);
3. `mixer_block`          - `check_mixer_block`: two pre-norm residual branches;
4. `drop_path`            - `check_drop_path`: one coin per sample, rescaled, off in eval mode;
5. `label_smoothing`      - `check_smoothed_cross_entropy`, `check_smoothing_predictions`;
6. `token_mixing_picture` - `check_picture_answers`: reading a token-mixing picture;
7. `spatial_gating`       - `check_spatial_gating`: gMLP's spatial gating unit;
8. `causal_mixing`        - `check_causal_token_mixing`: token mixing masked to be causal;
9. `mixer_model`          - `check_mixer_model`: a Mixer of the student's own parts 1-4, timm's
   logits, trained a few steps (`mixer_parts` names the part that is wrong);
10. `vit_twin`            - `check_vit_twin`: a ViT rearranged to undo a fixed shuffle.

What they share: `sandbox` runs the student's code (a time limit, no exit, output captured),
`feedback` prints one line per check, `checks` holds the opening every checker makes (a tensor of
the right dtype, device and shape; inputs and given weights unchanged) and the gradient check.
`generate` makes the student notebooks from the instructor notebooks, reading nbgrader's markup
(`python -m mixer_edu.exercises.generate [--check]`).
"""

from .causal_mixing import check_causal_token_mixing
from .drop_path import check_drop_path
from .label_smoothing import check_smoothed_cross_entropy, check_smoothing_predictions
from .mixer_block import check_mixer_block
from .mixer_model import check_mixer_model
from .patchify import check_patchify
from .spatial_gating import check_spatial_gating
from .token_mixing import check_token_mixing
from .token_mixing_picture import check_picture_answers
from .vit_twin import check_vit_twin

__all__ = [
    "check_causal_token_mixing",
    "check_drop_path",
    "check_mixer_block",
    "check_mixer_model",
    "check_patchify",
    "check_picture_answers",
    "check_smoothed_cross_entropy",
    "check_smoothing_predictions",
    "check_spatial_gating",
    "check_token_mixing",
    "check_vit_twin",
]
