"""The paper's own weights: Google's pretrained MLP-Mixer, loaded into our model through timm.

The paper's authors released Mixer-B/16 and Mixer-L/16 weights pre-trained on ImageNet-21k
(`goog_in21k`) and fine-tuned on ImageNet-1k (`goog_in21k_ft_in1k`). timm hosts them on the
Hugging Face hub under names such as `mixer_b16_224.goog_in21k_ft_in1k` (architecture, dot,
weight tag). Because our modules keep timm's parameter names (`mixer_edu.mixer`), timm's state
dict loads into `MlpMixer` unchanged, with `strict=True`, and the two models then compute the
same outputs. `load_pretrained(name)` does exactly that; `from_timm(model)` converts any timm
Mixer you already have (for example one you built with random weights, as the tests do).

(The `miil_*` tags are Mixer-B/16 weights trained later by Alibaba's MIIL group, not by the
paper's authors; they load the same way. The paper's Figure 5 itself shows a model trained on
the private JFT-300M data set, which was never released: the ImageNet-21k weights are the closest
public ones.)

**Offline.** Downloading needs internet access to the hub. Where it is not available,
`load_pretrained` prints one plain sentence and returns `None`, so a notebook can skip the cell's
picture and go on; nothing else in the course depends on these weights. Weights downloaded
earlier are found in the local Hugging Face cache and load without any network. timm itself is
only needed here: it is a test dependency of the course, not a runtime one.
"""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

from torch import nn

from ..mixer import LAYER_NORM_EPS, MlpMixer
from ..models import MODELS

DEFAULT_WEIGHTS = "mixer_b16_224.goog_in21k_ft_in1k"
HUB_HOST = "huggingface.co"

# What each timm weight tag means, for figure titles.
WEIGHT_TAGS = {
    "goog_in21k": "Google's ImageNet-21k weights",
    "goog_in21k_ft_in1k": "Google's ImageNet-21k weights, fine-tuned on ImageNet-1k",
    "miil_in21k": "MIIL's ImageNet-21k weights",
    "miil_in21k_ft_in1k": "MIIL's ImageNet-21k weights, fine-tuned on ImageNet-1k",
}


def describe_weights(name: str) -> str:
    """A readable label for a timm weight name, e.g. 'Mixer-B/16, Google's ImageNet-21k weights'.

    `mixer_b16_224.goog_in21k` -> "Mixer-B/16 (mixer_b16_224.goog_in21k: Google's ImageNet-21k
    weights)".
    """
    architecture, _, tag = name.partition(".")
    pretty = MODELS[architecture].title if architecture in MODELS else architecture
    what = WEIGHT_TAGS.get(tag, "pretrained weights")
    return f"{pretty} ({name}: {what})"


def mixer_config_from_timm(timm_model: nn.Module) -> dict:
    """The `MlpMixer` keywords that rebuild the architecture of a timm `MlpMixer`.

    Raises:
        TypeError: when the timm model is not an MLP-Mixer with timm's plain `MixerBlock`
            (ResMLP, gMLP or the gated-MLP Mixer variants have other layers).
    """
    from timm.layers import Mlp as TimmMlp
    from timm.models.mlp_mixer import MixerBlock as TimmMixerBlock
    from timm.models.mlp_mixer import MlpMixer as TimmMlpMixer

    if not isinstance(timm_model, TimmMlpMixer):
        raise TypeError(
            f"expected a timm MLP-Mixer (e.g. timm.create_model('mixer_b16_224')), "
            f"got {type(timm_model).__name__}."
        )
    other = {type(block).__name__ for block in timm_model.blocks} - {"MixerBlock"}
    if other or not all(type(block) is TimmMixerBlock for block in timm_model.blocks):
        raise TypeError(
            f"this timm model has {', '.join(sorted(other))} blocks (ResMLP, gMLP or another "
            "variant); only the plain Mixer, with timm's MixerBlock, converts to mixer_edu."
        )
    first = timm_model.blocks[0]
    if type(first.mlp_tokens) is not TimmMlp or not isinstance(first.mlp_tokens.act, nn.GELU):
        raise TypeError(
            "this timm Mixer uses a different MLP or activation than the paper's "
            f"({type(first.mlp_tokens).__name__} with {type(first.mlp_tokens.act).__name__}); "
            "only Mlp with GELU converts to mixer_edu."
        )
    if not isinstance(first.norm1, nn.LayerNorm) or first.norm1.eps != LAYER_NORM_EPS:
        raise TypeError(
            f"this timm Mixer normalises with {first.norm1!r}; mixer_edu uses "
            f"LayerNorm(eps={LAYER_NORM_EPS}) as the paper does."
        )
    stem = timm_model.stem
    # timm keeps (height, width) pairs; MlpMixer takes a side for squares, pairs for rectangles.
    img_size, patch_size = _side_or_pair(stem.img_size), _side_or_pair(stem.patch_size)
    dim = timm_model.embed_dim
    hidden = (first.mlp_tokens.fc1.out_features, first.mlp_channels.fc1.out_features)
    mlp_ratio = tuple(width_ / dim for width_ in hidden)
    if tuple(int(ratio * dim) for ratio in mlp_ratio) != hidden:  # the ratio must round-trip
        raise TypeError(f"hidden widths {hidden} are not expressible as ratios of dim {dim}.")
    return dict(
        num_classes=timm_model.num_classes,
        img_size=img_size,
        in_chans=stem.proj.in_channels,
        patch_size=patch_size,
        num_blocks=len(timm_model.blocks),
        embed_dim=dim,
        mlp_ratio=mlp_ratio,
        global_pool=timm_model.global_pool,
    )


def _side_or_pair(size: tuple[int, int]) -> int | tuple[int, int]:
    """`(S, S) -> S`; a rectangle `(height, width)` stays a pair."""
    height, width = size
    return height if height == width else (height, width)


def from_timm(timm_model: nn.Module) -> MlpMixer:
    """Our `MlpMixer` with the architecture and the weights of a timm `MlpMixer`, in eval mode.

    The state dict is loaded with `strict=True`: every tensor has the same name and shape in both
    implementations, so nothing is renamed, dropped or guessed.
    """
    model = MlpMixer(**mixer_config_from_timm(timm_model))
    model.load_state_dict(timm_model.state_dict(), strict=True)
    return model.to(next(timm_model.parameters()).device).eval()


def hub_reachable(host: str = HUB_HOST, timeout: float = 3.0) -> bool:
    """Whether a connection to the hub can be opened (port 443) within `timeout` seconds.

    Behind a proxy a direct connection tells nothing, so then the answer is True and the hub
    client (which uses the proxy) finds out. Checking first saves an offline user the minute
    the hub client spends retrying before it gives up.
    """
    if urllib.request.getproxies().get("https"):
        return True
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _pretrained_cfg(name: str):
    import timm
    from timm.models import get_pretrained_cfg

    architecture = name.partition(".")[0]
    try:
        cfg = get_pretrained_cfg(name) if timm.is_model(name) else None
    except RuntimeError:  # timm: a known architecture with an unknown weight tag
        cfg = None
    if not architecture.startswith("mixer_") or cfg is None or not (cfg.hf_hub_id or cfg.url):
        known = ", ".join(timm.list_pretrained("mixer_*"))
        raise ValueError(f"{name!r} is not a pretrained MLP-Mixer in timm; known: {known}.")
    return cfg


def cached_weights(name: str) -> Path | None:
    """The weight file of `name` in the local Hugging Face cache, or None if not downloaded yet."""
    from huggingface_hub import try_to_load_from_cache

    cfg = _pretrained_cfg(name)
    if not cfg.hf_hub_id:
        return None
    for filename in (cfg.hf_hub_filename, "model.safetensors", "pytorch_model.bin"):
        if filename:
            found = try_to_load_from_cache(cfg.hf_hub_id, filename)
            if isinstance(found, str):  # otherwise None or a "known to be missing" marker
                return Path(found)
    return None


def _network_errors() -> tuple[type[BaseException], ...]:
    """What a failed download raises: OSError covers the hub's errors, urllib's and requests'."""
    errors: list[type[BaseException]] = [OSError]
    try:
        import httpx

        errors.append(httpx.HTTPError)
    except ImportError:
        pass
    return tuple(errors)


def load_pretrained(name: str = DEFAULT_WEIGHTS, *, verbose: bool = True) -> MlpMixer | None:
    """Our `MlpMixer` with the pretrained weights `name` from timm's hub, or None when offline.

    Args:
        name: a timm pretrained Mixer, `architecture.tag`, e.g. `mixer_b16_224.goog_in21k_ft_in1k`
            (the default) or `mixer_l16_224.goog_in21k`; `timm.list_pretrained("mixer_*")` lists
            them all.
        verbose: print one line saying where the weights came from.

    Returns:
        The model in eval mode on the CPU, or None (after printing why) when the weights cannot
        be downloaded or timm is not installed.

    Raises:
        ValueError: `name` is not a pretrained Mixer in timm.
    """
    try:
        import timm
    except ImportError:
        print(
            f"Skipping the pretrained weights {name}: they are loaded through timm, which is not "
            "installed (pip install timm); nothing else is affected."
        )
        return None
    _pretrained_cfg(name)
    cached = cached_weights(name)
    if cached is not None:  # no network needed
        timm_model = timm.create_model(
            name, pretrained=True, pretrained_cfg_overlay=dict(file=str(cached))
        )
        source = f"the local cache ({cached})"
    else:
        if not hub_reachable():
            _say_offline(name, f"{HUB_HOST} cannot be reached")
            return None
        try:
            timm_model = timm.create_model(name, pretrained=True)
        except _network_errors() as error:
            _say_offline(name, f"the download failed ({type(error).__name__})")
            return None
        source = "the Hugging Face hub"
    model = from_timm(timm_model)
    if verbose:
        print(f"Loaded {describe_weights(name)} from {source}.")
    return model


def _say_offline(name: str, what: str) -> None:
    print(
        f"Skipping the pretrained weights {name}: {what}, and downloading them needs internet "
        "access; nothing else is affected."
    )
