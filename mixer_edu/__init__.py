"""mixer_edu: MLP-Mixer built step by step, one idea per module.

Read the modules in this order, each top to bottom:

1. `patching`  - images to patches to tokens, the stem;
2. `mlp`       - the two-layer MLP;
3. `drop_path` - stochastic depth;
4. `mixer`     - token mixing, channel mixing, the block and the full model;
5. `models`    - the paper's model family and small CIFAR-sized models.

Then, imported on their own (e.g. `from mixer_edu import viz`): `data` (CIFAR-10, the stand-in,
augmentations), `config` (the recipe), `train` (the step, the epoch, the optimiser, a run),
`evaluation`; `weights` and `viz` (what a Mixer learns); `gmlp`, `seq_mixing` and `mlm` (beyond
vision); `baselines`, `permutation`, `paper` (Mixer beside a CNN and a ViT); `exercises`.

The machinery (device and precision planning, distributed, checkpoints, timm compatibility, the
benches, the notebooks' helpers) sits in `mixer_edu.support`; a student need not open it.
"""

from .drop_path import DropPath, drop_path, drop_path_rates
from .gmlp import mix_tokens
from .mixer import MixerBlock, MlpMixer
from .mlp import Mlp
from .models import MODEL_CONFIGS, create_model, list_models, model_config
from .patching import PatchEmbedding, conv_to_linear, linear_to_conv, patchify, unpatchify

__all__ = [
    "MODEL_CONFIGS",
    "DropPath",
    "MixerBlock",
    "Mlp",
    "MlpMixer",
    "PatchEmbedding",
    "conv_to_linear",
    "create_model",
    "drop_path",
    "drop_path_rates",
    "linear_to_conv",
    "list_models",
    "mix_tokens",
    "model_config",
    "patchify",
    "unpatchify",
]
