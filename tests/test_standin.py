import pickle

import numpy as np
import pytest

from mixer_edu.support import standin


def test_generator_is_deterministic_and_the_seed_matters():
    images, labels = standin.generate(40, seed=3)
    again, again_labels = standin.generate(40, seed=3)
    other, _ = standin.generate(40, seed=4)
    assert images.dtype == np.uint8 and images.shape == (40, 32, 32, 3)
    assert np.array_equal(images, again) and np.array_equal(labels, again_labels)
    assert not np.array_equal(images, other)


def test_every_class_appears_equally_often():
    _, labels = standin.generate(200, seed=0)
    assert np.bincount(labels, minlength=10).tolist() == [20] * 10


def _nearest_centroid_accuracy(features, labels):
    half = len(labels) // 2
    centroids = np.stack([features[:half][labels[:half] == c].mean(0) for c in range(10)])
    distances = ((features[half:, None] - centroids[None]) ** 2).sum(-1)
    return (distances.argmin(1) == labels[half:]).mean()


def test_colour_alone_does_not_tell_the_classes_apart():
    images, labels = standin.generate(2000, seed=1)
    mean_colour = images.reshape(len(images), -1, 3).mean(1)  # (n, 3): the image's average RGB
    assert _nearest_centroid_accuracy(mean_colour, labels) < 0.16  # chance is 0.10


def test_stripe_classes_differ_in_orientation():
    images, labels = standin.generate(600, seed=2)
    grey = images.astype(np.float32).mean(-1)
    across_rows = np.abs(np.diff(grey, axis=1)).mean((1, 2))  # changes from row to row
    across_columns = np.abs(np.diff(grey, axis=2)).mean((1, 2))
    ratio = across_rows / across_columns
    assert ratio[labels == 0].mean() > 1.1  # horizontal stripes: change going down
    assert ratio[labels == 1].mean() < 0.9  # vertical stripes: change going across


def _spread(masks):
    """Variance of the foreground's row and column positions, each (n,)."""
    rows, columns = np.indices((32, 32))
    weight = masks.sum((1, 2))

    def variance(position):
        mean = (masks * position).sum((1, 2)) / weight
        return (masks * (position - mean[:, None, None]) ** 2).sum((1, 2)) / weight

    return variance(rows), variance(columns)


def test_blob_pairs_are_side_by_side_or_stacked_as_their_names_say():
    rng = np.random.default_rng(0)
    spread_y, spread_x = _spread(standin.draw_masks(8, 50, rng))  # blobs side by side
    assert (spread_x > 2 * spread_y).all()
    spread_y, spread_x = _spread(standin.draw_masks(9, 50, rng))  # blobs stacked
    assert (spread_y > 2 * spread_x).all()


def test_cifar_rows_hold_the_red_green_and_blue_planes_in_order():
    image = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    image[0, 0, 1, 0], image[0, 2, 0, 1], image[0, 31, 31, 2] = 10, 20, 30
    row = standin.to_cifar_rows(image)[0]
    assert row.shape == (3072,)
    assert row[1] == 10 and row[1024 + 2 * 32] == 20 and row[3071] == 30


def test_written_files_have_cifar10s_names_keys_and_types(tmp_path):
    folder = standin.write_cifar_files(tmp_path, train_per_batch=20, test_size=30)
    assert folder == tmp_path / "cifar-10-batches-py"
    for name, size in [*((f"data_batch_{i}", 20) for i in range(1, 6)), ("test_batch", 30)]:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        assert set(batch) == {"batch_label", "labels", "data", "filenames"}
        assert batch["data"].dtype == np.uint8 and batch["data"].shape == (size, 3072)
        assert len(batch["labels"]) == size and all(isinstance(x, int) for x in batch["labels"])
    with open(folder / "batches.meta", "rb") as f:
        assert pickle.load(f, encoding="latin1")["label_names"] == list(standin.STANDIN_CLASSES)
    manifest = standin.read_manifest(tmp_path)
    assert manifest["version"] == standin.STANDIN_VERSION
    assert manifest["md5"]["test_batch"] == standin.md5sum(folder / "test_batch")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".standin-")]  # no leftovers


def test_train_and_test_images_are_different(tmp_path):
    folder = standin.write_cifar_files(tmp_path, train_per_batch=20, test_size=100)
    rows = []
    for name in ("data_batch_1", "test_batch"):
        with open(folder / name, "rb") as f:
            rows.append({bytes(r) for r in pickle.load(f, encoding="latin1")["data"]})
    assert not rows[0] & rows[1]


def test_unknown_label_is_rejected():
    with pytest.raises(ValueError, match="0..9"):
        standin.draw_masks(10, 1, np.random.default_rng(0))
