"""Pictures of what a Mixer sees and learns, from a model or from a training run's checkpoint.

Every function returns a matplotlib `Figure` and never calls `plt.show()` (a notebook cell ends
with `plt.show()` itself; a script saves the figure with `fig.savefig(path)`). Each figure carries
the numbers it draws as `figure.shown`, a dict of numpy arrays and lists, so a test (or a curious
student) can check that a picture shows exactly the weights it claims to show. Models and tensors
may be on any device (CPU, CUDA, Apple MPS): the pictures read them from the CPU.

One module per family of pictures, in the order of the course:

- `patches`: `plot_patches`, an image cut into its patch grid, the same patches as a *sequence* of
  tokens, and the token table `(N, P*P*C)` that the stem projects. Image -> patches -> table.
- `token_mixing`: `plot_token_mixing`, the paper's Figure 5: each hidden unit of a block's
  token-mixing MLP drawn on the patch grid, opposite-phase pairs side by side, smooth to fine;
  `plot_paper_token_mixing`, the same for Google's pretrained Mixer-B/16 (None offline).
- `stem`: `plot_stem_filters`, the patch-embedding filters as RGB images (grey = 0).
- `channel_mixing`: `plot_channel_mixing`, the channel-mixing MLP's hidden units evaluated at
  every patch of one image (a channel-mixing unit has no picture in its weights).
- `token_norms`: `plot_token_norms`, the length of every token after every block for one image
  (`token_norms`): where the residual stream grows, not what it encodes.
- `over_training`: `plot_token_mixing_over_training` and `save_token_mixing_animation`, the same
  token-mixing units in every snapshot of a run, as a grid (rows = epochs) or a GIF.
- `training`: `plot_training_curves`, `plot_confusion_matrix`, `plot_misclassified`.
- `layout`: what they share: titles (which say "synthetic stand-in" when the data was), the
  red-white-blue weight colours, tiling small pictures, `to_numpy` (any device -> CPU).
- `render` and `cli`: every picture of a checkpoint; `python -m mixer_edu.viz CHECKPOINT --out
  DIR` writes them as PNG (and a GIF when the run saved snapshots) and prints their paths,
  `render_checkpoint(checkpoint, out)` does the same from Python.
"""

from .channel_mixing import plot_channel_mixing
from .layout import GAP_COLOUR, STANDIN_LABEL, WEIGHT_CMAP, dataset_title, tile, to_numpy
from .over_training import plot_token_mixing_over_training, save_token_mixing_animation
from .patches import plot_patches
from .render import render_checkpoint
from .stem import plot_stem_filters
from .token_mixing import MODES, plot_paper_token_mixing, plot_token_mixing
from .token_norms import plot_token_norms
from .training import (
    confusion_counts,
    plot_confusion_matrix,
    plot_misclassified,
    plot_training_curves,
)

__all__ = [
    "GAP_COLOUR",
    "MODES",
    "STANDIN_LABEL",
    "WEIGHT_CMAP",
    "confusion_counts",
    "dataset_title",
    "plot_channel_mixing",
    "plot_confusion_matrix",
    "plot_misclassified",
    "plot_paper_token_mixing",
    "plot_patches",
    "plot_stem_filters",
    "plot_token_mixing",
    "plot_token_mixing_over_training",
    "plot_token_norms",
    "plot_training_curves",
    "render_checkpoint",
    "save_token_mixing_animation",
    "tile",
    "to_numpy",
]
