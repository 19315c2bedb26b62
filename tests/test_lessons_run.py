"""The code a lesson shows is the code that runs: a student's print in `MixerBlock.forward` prints.

Each test below wraps the lessons' functions in a recorder (the original still runs) and shows
that they are called by every way the course runs a model: `model(images)`, a default training
epoch on both data paths, evaluation and prediction, `forward_intermediates`, a short comparison
run and the pictures. A second copy of any of them (a faster block, a batched crop of its own)
would leave its recorder silent.
"""

import pytest
import torch

from mixer_edu import data, evaluation
from mixer_edu import train as training
from mixer_edu.config import recipe
from mixer_edu.drop_path import DropPath
from mixer_edu.mixer import MixerBlock, MlpMixer
from mixer_edu.mlp import Mlp
from mixer_edu.models import create_model
from mixer_edu.patching import PatchEmbedding
from mixer_edu.tools.compare import load_images, train_briefly
from mixer_edu.viz.token_norms import token_norms
from mixer_edu.weights import channel_mixing_responses

MODULE_FORWARDS = {
    "MixerBlock.forward": MixerBlock,
    "Mlp.forward": Mlp,
    "DropPath.forward": DropPath,
    "PatchEmbedding.forward": PatchEmbedding,
}


@pytest.fixture
def calls(monkeypatch):
    """`{name: how many times it ran}` for the lessons' forwards, `data.crop_and_flip` and
    `train.train_step`, counted from the moment the fixture is used."""
    counts = {name: 0 for name in [*MODULE_FORWARDS, "crop_and_flip", "train_step"]}

    def recorded(name, function):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return function(*args, **kwargs)

        return wrapper

    for name, cls in MODULE_FORWARDS.items():
        monkeypatch.setattr(cls, "forward", recorded(name, cls.forward))
    monkeypatch.setattr(data, "crop_and_flip", recorded("crop_and_flip", data.crop_and_flip))
    monkeypatch.setattr(training, "train_step", recorded("train_step", training.train_step))
    return counts


def small_mixer(**changes) -> MlpMixer:
    settings = dict(num_classes=10, img_size=32, patch_size=4, num_blocks=2, embed_dim=16)
    return MlpMixer(**{**settings, **changes})


def model_forwards_ran(calls, blocks=2):
    assert calls["PatchEmbedding.forward"] >= 1
    assert calls["MixerBlock.forward"] >= blocks
    assert calls["Mlp.forward"] >= 2 * blocks  # token mixing and channel mixing
    assert calls["DropPath.forward"] >= 2 * blocks


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_calling_the_model_runs_every_lesson_forward(calls, mode):
    model = small_mixer(drop_path_rate=0.1)
    getattr(model, mode)()
    model(torch.randn(2, 3, 32, 32))
    model_forwards_ran(calls)


def test_forward_intermediates_and_the_pictures_run_the_blocks(calls):
    model = small_mixer().eval()
    images = torch.randn(2, 3, 32, 32)
    model.forward_intermediates(images)
    model_forwards_ran(calls)
    for picture in (
        lambda: token_norms(model, images),
        lambda: channel_mixing_responses(model, images),
    ):
        calls.update(dict.fromkeys(calls, 0))
        picture()
        model_forwards_ran(calls, blocks=1)


def test_evaluation_and_prediction_run_the_blocks(calls):
    model = small_mixer()
    batches = [(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,)))]
    evaluation.evaluate(model, batches, "cpu")
    model_forwards_ran(calls)
    calls.update(dict.fromkeys(calls, 0))
    evaluation.predict(model, batches, "cpu")
    model_forwards_ran(calls)


@pytest.mark.parametrize("data_path", ["device", "per-image"])
def test_a_default_training_epoch_runs_the_lessons_on_every_data_path(
    calls, data_root, tmp_path, data_path
):
    config = recipe("standin", fast=True, epochs=1, train_images=128, test_images=64)
    training.train(
        config,
        out=tmp_path / "run",
        data_root=data_root,
        data_path=data_path,
        num_workers=0,
        progress=False,
    )
    steps = 128 // config.batch_size
    assert calls["train_step"] == steps
    model_forwards_ran(calls, blocks=steps * 2)
    # Every training image is cropped and flipped by the lesson's function: in batches on the
    # device path, one at a time (in the DataLoader) on the per-image path.
    assert calls["crop_and_flip"] == (steps if data_path == "device" else 128)


def test_a_comparison_run_trains_with_the_course_step(calls, data_root, monkeypatch):
    monkeypatch.setenv("MIXER_EDU_DATA", str(data_root))
    train, test = load_images("standin", True, limit=64), load_images("standin", False, limit=32)
    train_briefly(small_mixer(), train, test, epochs=1, batch_size=32)
    assert calls["train_step"] == 2 and calls["crop_and_flip"] == 2
    model_forwards_ran(calls, blocks=4)


def test_the_recorder_notices_a_second_copy_of_the_block(calls, monkeypatch):
    """A model that ran its own copy of the block would leave `MixerBlock.forward` unrecorded."""
    model = create_model("mixer_cifar_tiny")

    def copied_features(images):
        x = model.stem(images)
        for block in model.blocks:  # the block's computation, written a second time
            x = x + block.mlp_tokens(block.norm1(x).transpose(1, 2)).transpose(1, 2)
            x = x + block.mlp_channels(block.norm2(x))
        return model.norm(x)

    monkeypatch.setattr(model, "forward_features", copied_features)
    model(torch.randn(1, 3, 32, 32))
    assert calls["MixerBlock.forward"] == 0 and calls["Mlp.forward"] > 0
