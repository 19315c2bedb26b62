"""mixer_edu: MLP-Mixer built step by step, one idea per module.

Read the modules in this order, each top to bottom:

1. `patching`  - images to patches to tokens, the stem;
2. `mlp`       - the two-layer MLP;
3. `drop_path` - stochastic depth;
4. `mixer`     - token mixing, channel mixing, the block and the full model;
5. `models`    - the paper's model family and small CIFAR-sized models.

`timm_compat` gives the model timm's other methods (intermediate features, pruning, gradient
checkpointing) and `token_norms`, the size of every token after every block.

Then, imported on their own (e.g. `from mixer_edu import viz`), layer by layer:

- data and training: `data` and `device_data` (CIFAR-10, augmentations, loaders), `standin`
  (the offline stand-in), `config` (the validated recipe), `train` (the loop), `optim`,
  `evaluation`, `metrics`, `checkpoint` (exact resume), `plan` and `distributed` (how a run
  runs), `runtime` (device, precision, seeds: the machine-specific settings);
- looking inside: `weights` and `viz` (what a Mixer learns), `pretrained` (the paper's weights);
- beyond: `gmlp` (spatial gating), `seq_mixing` and `mlm` (token mixing in place of
  self-attention);
- for the classroom: `course` (the notebooks' run modes), `exercises` (checkers), `bench` (speed
  next to timm).
"""

from .drop_path import DropPath, drop_path, drop_path_rates
from .mixer import MixerBlock, MlpMixer, TokenMixingMlp, mix_tokens
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
    "TokenMixingMlp",
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
