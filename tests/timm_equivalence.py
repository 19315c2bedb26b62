"""The one body every "same as timm" test shares."""

import torch
from torch import nn

from mixer_edu.support.validation import to_pair

from .helpers import randomize_


def assert_equivalent_to_timm(ours: nn.Module, theirs: nn.Module, images: torch.Tensor) -> None:
    """`ours` and timm's `theirs` are the same model: the same parameter names and shapes,
    timm's random weights load strictly into ours and ours into timm's, and both give the same
    logits and features, within 1e-5 (the two compute the same maths along different code paths,
    which may round differently in the last bits)."""
    ours_shapes = {name: value.shape for name, value in ours.state_dict().items()}
    assert ours_shapes == {name: value.shape for name, value in theirs.state_dict().items()}
    ours.eval(), theirs.eval()
    for source, target, seed in [(theirs, ours, 0), (ours, theirs, 1)]:
        randomize_(source, seed=seed)
        target.load_state_dict(source.state_dict(), strict=True)
        with torch.no_grad():
            torch.testing.assert_close(ours(images), theirs(images), rtol=0, atol=1e-5)
            torch.testing.assert_close(
                ours.forward_features(images), theirs.forward_features(images), rtol=0, atol=1e-5
            )


def images_for(config: dict, batch: int = 3) -> torch.Tensor:
    """A random batch of the size a model built from `config` takes (square or not)."""
    height, width = to_pair(config["img_size"])
    return torch.randn(batch, config.get("in_chans", 3), height, width)


def assert_same_as_timm_by_name(name: str) -> None:
    """`create_model(name)` and `timm.create_model(name)` are the same model."""
    import timm

    from mixer_edu import create_model

    ours, theirs = create_model(name), timm.create_model(name)
    assert_equivalent_to_timm(ours, theirs, torch.randn(2, 3, 224, 224))
