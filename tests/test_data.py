import json
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import CIFAR10

from mixer_edu import data
from mixer_edu.support import paths, standin


def test_standin_is_read_by_torchvisions_cifar10_class(data_root):
    train = data.load_dataset("standin", train=True, root=data_root)
    test = data.load_dataset("standin", train=False, root=data_root)
    assert isinstance(train, CIFAR10)  # torchvision's own reading code
    assert (len(train), len(test)) == (10_000, 2_000)
    assert tuple(train.classes) == standin.STANDIN_CLASSES == data.dataset_classes("standin")
    images, labels = standin.generate(2_000, standin.STANDIN_SEED + 1)  # the test images
    image, label = test[5]
    assert isinstance(image, Image.Image)
    assert np.array_equal(np.asarray(image), images[5]) and label == labels[5]


def test_loaders_give_normalised_batches_that_denormalize_back_to_the_pixels(data_root):
    train_loader, test_loader = data.make_loaders(
        "standin", batch_size=32, root=data_root, train_images=64, test_images=40
    )
    images, labels = next(iter(train_loader))
    assert images.shape == (32, 3, 32, 32) and images.dtype == torch.float32
    assert labels.shape == (32,) and labels.dtype == torch.int64
    assert len(train_loader) == 2 and len(test_loader) == 1
    test_images, _ = next(iter(test_loader))
    pixels = data.load_dataset("standin", train=False, root=data_root).data[:40]
    expected = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255  # (B, 3, 32, 32)
    torch.testing.assert_close(data.denormalize(test_images), expected, rtol=0, atol=1e-5)


def test_training_transform_crops_and_flips_but_keeps_the_size():
    image = Image.fromarray(standin.generate(10, seed=0)[0][0])
    torch.manual_seed(0)
    outputs = [data.train_transform()(image) for _ in range(8)]
    assert all(out.shape == (3, 32, 32) for out in outputs)
    assert any(not torch.equal(outputs[0], out) for out in outputs[1:])  # random each time
    for augment in ("none", "randaugment", "autoaugment"):
        assert data.train_transform(augment)(image).shape == (3, 32, 32)
    with pytest.raises(ValueError, match="augment must be one of"):
        data.train_transform("flip")


def test_loader_path_gives_the_same_images_as_the_per_image_transform(data_root):
    """make_loaders reads uint8 tensors and normalises per batch; the result is the same."""
    dataset = data.load_dataset("standin", train=False, root=data_root)
    _, test_loader = data.make_loaders(
        "standin", 8, root=data_root, train_images=8, test_images=16, test_batch_size=16
    )
    batch, labels = next(iter(test_loader))
    one_by_one = torch.stack([data.test_transform()(dataset[i][0]) for i in range(16)])
    torch.testing.assert_close(batch, one_by_one, rtol=0, atol=1e-6)
    assert labels.tolist() == dataset.targets[:16]


def test_batch_augmentation_gives_soft_labels_that_sum_to_one():
    images, labels = torch.randn(8, 3, 32, 32), torch.arange(8) % 10
    for kind in ("cutmix", "mixup", "cutmix-mixup"):
        mixed, targets = data.batch_augmentation(kind)(images, labels)
        assert mixed.shape == images.shape and targets.shape == (8, 10)
        torch.testing.assert_close(targets.sum(1), torch.ones(8))
    assert data.batch_augmentation("none") is None
    sometimes = data.batch_augmentation("cutmix", prob=0.5)
    torch.manual_seed(0)
    kinds = {sometimes(images, labels)[1].ndim for _ in range(20)}
    assert kinds == {1, 2}  # some batches keep their integer labels, others are mixed


def test_missing_cifar10_gives_a_clear_error_with_both_ways_out(tmp_path, monkeypatch):
    def offline(self):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(CIFAR10, "download", offline)  # never touch the network in a test
    with pytest.raises(data.DatasetUnavailableError) as error:
        data.load_dataset("cifar10", root=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "cifar-10-batches-py") in message  # where the files should be
    assert "cifar-10-python.tar.gz" in message and "MIXER_EDU_DATA" in message
    assert "--dataset standin" in message and "dataset='standin'" in message
    with pytest.raises(data.DatasetUnavailableError, match="download=False"):
        data.load_dataset("cifar10", root=tmp_path, download=False)


def _copy_standin(data_root, tmp_path):
    import shutil

    shutil.copytree(data.standin_root(data_root), data.standin_root(tmp_path))
    return data.standin_root(tmp_path) / "cifar-10-batches-py"


def test_corrupt_standin_file_gives_a_clear_error(data_root, tmp_path):
    folder = _copy_standin(data_root, tmp_path)
    raw = bytearray((folder / "data_batch_3").read_bytes())
    raw[5000] ^= 0xFF  # one flipped byte
    (folder / "data_batch_3").write_bytes(bytes(raw))
    with pytest.raises(
        data.DatasetUnavailableError, match=r"corrupt.*python -m mixer_edu.support.standin"
    ):
        data.load_dataset("standin", root=tmp_path)


def test_missing_standin_file_gives_a_clear_error(data_root, tmp_path):
    folder = _copy_standin(data_root, tmp_path)
    (folder / "test_batch").unlink()
    with pytest.raises(data.DatasetUnavailableError, match="incomplete or corrupt"):
        data.load_dataset("standin", train=False, root=tmp_path)


def test_missing_standin_is_generated_on_request_only(tmp_path):
    with pytest.raises(data.DatasetUnavailableError, match="python -m mixer_edu.support.standin"):
        data.load_dataset("standin", root=tmp_path, download=False)


def test_standin_from_an_older_generator_is_regenerated(tmp_path, capsys):
    standin.write_standin(tmp_path, train_per_batch=10, test_size=10)
    manifest_path = data.standin_root(tmp_path) / "cifar-10-batches-py" / standin.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["version"] = standin.STANDIN_VERSION - 1
    manifest_path.write_text(json.dumps(manifest))
    standin.write_standin(tmp_path, train_per_batch=10, test_size=10)
    assert "older generator" in capsys.readouterr().out
    assert standin.read_manifest(data.standin_root(tmp_path))["version"] == standin.STANDIN_VERSION


def test_dataset_names_and_labels():
    assert data.dataset_label("standin") == "synthetic stand-in"
    assert data.dataset_label("cifar10") == "CIFAR-10"
    assert len(data.CIFAR10_CLASSES) == 10 and data.dataset_classes("cifar10")[0] == "airplane"
    with pytest.raises(ValueError, match="'standin'"):
        data.dataset_label("mnist")


def test_data_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    assert data.default_data_root() == tmp_path
    assert data.standin_root() == tmp_path / "standin"
    monkeypatch.delenv(data.DATA_ENV)
    assert data.default_data_root().name == "data"


def test_a_checkout_keeps_data_and_runs_beside_pyproject_from_any_folder(monkeypatch, tmp_path):
    # Notebooks in notebooks/ and notebooks/exercises/solutions/ must find the same data and
    # each other's runs: both folders live in the checkout, not in the working directory.
    checkout = Path(__file__).resolve().parent.parent
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert paths.project_folder() == checkout
    assert data.default_data_root() == checkout / "data"


def test_batch_size_larger_than_the_data_is_rejected(data_root):
    with pytest.raises(ValueError, match="larger than the 50 training images"):
        data.make_loaders("standin", batch_size=64, root=data_root, train_images=50)
