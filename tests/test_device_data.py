import math

import pytest
import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2

from mixer_edu import data
from mixer_edu.data import crop_and_flip, random_crops
from mixer_edu.device_data import DeviceLoader, device_loaders
from mixer_edu.support import standin


def random_set(n=40, size=32, classes=10, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator)
    return images, torch.arange(n) % classes


def all_batches(loader, seed):
    return [(images.clone(), labels.clone()) for images, labels in loader.batches(seed)]


def same_batches(a, b):
    return len(a) == len(b) and all(
        torch.equal(x, y) and torch.equal(i, j) for (x, i), (y, j) in zip(a, b, strict=True)
    )


def pixels(images):
    """Normalised float batches back to their uint8 pixel values (exact after rounding)."""
    return (data.denormalize(images) * 255).round().to(torch.uint8)


# --------------------------------------------------------------------------------------------
# Batches: shapes, counts, the test split.
# --------------------------------------------------------------------------------------------


def test_training_batches_are_normalised_floats_with_integer_labels_and_drop_the_rest():
    images, labels = random_set(40)
    loader = DeviceLoader(images, labels, 16)
    batches = all_batches(loader, seed=0)
    assert len(loader) == len(batches) == 2  # 40 images: two full batches, 8 dropped
    for x, y in batches:
        assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32
        assert y.shape == (16,) and y.dtype == torch.int64
    kept = DeviceLoader(images, labels, 16, drop_last=False)
    assert len(kept) == 3 and [len(y) for _, y in kept.batches(0)] == [16, 16, 8]


def test_an_epoch_without_augmentation_shows_every_image_once_in_a_shuffled_order():
    images, labels = random_set(40)
    labels = torch.arange(40)  # each image its own label, to find it again
    loader = DeviceLoader(images, labels, 8, augment="none")
    seen = torch.cat([y for _, y in loader.batches(seed=3)])
    assert sorted(seen.tolist()) == list(range(40)) and seen.tolist() != list(range(40))
    x, y = next(loader.batches(seed=3))
    assert torch.equal(pixels(x), images[y])


def test_test_split_is_in_order_unaugmented_and_normalised_like_the_per_image_path():
    images, labels = random_set(20)
    loader = DeviceLoader(images, labels, 8, train=False)
    assert len(loader) == 3  # no batch dropped: 8 + 8 + 4
    x = torch.cat([x for x, _ in loader])
    y = torch.cat([y for _, y in loader])
    one_by_one = torch.stack([data.normalization()(tv_tensors.Image(image)) for image in images])
    assert torch.equal(x, one_by_one)  # the same function on the same uint8 values
    assert torch.equal(y, labels)


# --------------------------------------------------------------------------------------------
# Determinism.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_augment", ["none", "cutmix-mixup"])
def test_the_same_seed_gives_bit_identical_batches_and_another_seed_other_ones(batch_augment):
    images, labels = random_set(48)
    first = DeviceLoader(images, labels, 16, batch_augment=batch_augment)
    again = DeviceLoader(images, labels, 16, batch_augment=batch_augment)
    epoch_1 = all_batches(first, seed=1)
    all_batches(first, seed=2)  # what ran before does not matter: a resumed run starts here
    assert same_batches(all_batches(again, seed=1), epoch_1)
    assert same_batches(all_batches(first, seed=1), epoch_1)
    epoch_2 = all_batches(first, seed=2)
    assert not torch.equal(epoch_1[0][1], epoch_2[0][1])  # another order
    assert not torch.equal(epoch_1[0][0], epoch_2[0][0])  # other crops and flips


def test_without_a_seed_an_epoch_follows_torchs_global_seed_as_the_trainer_sets_it():
    loader = DeviceLoader(*random_set(32), 16)
    torch.manual_seed(7)
    first = [(x.clone(), y.clone()) for x, y in loader]
    torch.manual_seed(7)
    assert same_batches([(x.clone(), y.clone()) for x, y in loader], first)


def test_an_explicit_seed_leaves_the_callers_random_state_alone():
    loader = DeviceLoader(*random_set(32), 16, batch_augment="cutmix-mixup")
    state = torch.get_rng_state()
    all_batches(loader, seed=5)
    assert torch.equal(torch.get_rng_state(), state)


# --------------------------------------------------------------------------------------------
# Crops and flips.
# --------------------------------------------------------------------------------------------


def test_crop_and_flip_matches_slicing_each_padded_image():
    images, _ = random_set(6, size=8)
    padded = F.pad(images, (2, 2, 2, 2))  # (6, 3, 12, 12)
    index = torch.tensor([5, 0, 3, 3, 1])
    top, left = torch.tensor([0, 4, 2, 1, 3]), torch.tensor([4, 0, 2, 3, 1])
    flip = torch.tensor([False, True, False, True, True])
    out = crop_and_flip(padded, index, top, left, flip, (8, 8))
    for b in range(5):
        window = padded[index[b], :, top[b] : top[b] + 8, left[b] : left[b] + 8]
        assert torch.equal(out[b], window.flip(-1) if flip[b] else window)
    middle = torch.full((5,), 2)  # the centre of the padding, unflipped: the image itself
    assert torch.equal(
        crop_and_flip(padded, index, middle, middle, flip & False, (8, 8)), images[index]
    )


def marker_image(size=32):
    """uint8 (3, size, size): channel 0 is the row + 1, channel 1 the column + 1 (padding: 0)."""
    steps = torch.arange(1, size + 1, dtype=torch.uint8)
    return torch.stack(
        [steps[:, None].expand(size, size), steps[None, :].expand(size, size),
         torch.full((size, size), 200, dtype=torch.uint8)]
    )  # fmt: skip


def recover_crops(crops, padding=4):
    """(top, left, flip) of each crop of `marker_image()`, padded by `padding`: from pixel
    (16, 16), which every crop keeps, and its right neighbour, which tells the flip."""
    row, column, right = crops[:, 0, 16, 16], crops[:, 1, 16, 16], crops[:, 1, 16, 17]
    flip = right < column
    top = row.long() - 1 - (16 - padding)  # image row of output row 16: top + 16 - padding
    left = column.long() - 1 - (16 - padding) + flip.long()  # mirrored: left + 15 - padding
    return top, left, flip


def per_image_crops(n, seed, augment=None):
    """`n` crops of the marker image by the per-image path (data.augmentation by default)."""
    torch.manual_seed(seed)
    augment = augment or data.augmentation("crop-flip")
    image = tv_tensors.Image(marker_image())
    return torch.stack([augment(image).as_subclass(torch.Tensor) for _ in range(n)])


def device_crops(n, seed, padding=4):
    images = marker_image().expand(n, -1, -1, -1)
    loader = DeviceLoader(images, torch.zeros(n, dtype=torch.int64), n, padding=padding)
    return pixels(next(loader.batches(seed))[0])


def tables(top, left, flip):
    """Frequency tables: top (9), left (9), flip (2) and the joint (9 * 9 * 2) counts."""
    joint = (top * 9 + left) * 2 + flip.long()
    return {
        "top": torch.bincount(top, minlength=9),
        "left": torch.bincount(left, minlength=9),
        "flip": torch.bincount(flip.long(), minlength=2),
        "joint": torch.bincount(joint, minlength=162),
    }


def chi_square_critical(df, z=3.719):
    """The chi-square value exceeded with probability about 1e-4 (Wilson-Hilferty)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def same_distribution(a, b):
    """Two-sample chi-square test of counts `a` and `b`: True unless they differ at p ~ 1e-4."""
    a, b = a.double(), b.double()
    used = (a + b) > 0
    a, b = a[used], b[used]
    scale = math.sqrt(b.sum() / a.sum())
    statistic = ((a * scale - b / scale) ** 2 / (a + b)).sum().item()
    return statistic < chi_square_critical(max(1, len(a) - 1))


def uniform(counts):
    return same_distribution(counts, torch.full_like(counts, counts.sum().item() // len(counts)))


def test_device_crops_are_uniform_over_the_positions_and_flip_half_the_time():
    top, left, flip = recover_crops(device_crops(4000, seed=0))
    assert set(top.tolist()) == set(left.tolist()) == set(range(9))  # 2 * 4 + 1 positions
    counts = tables(top, left, flip)
    assert uniform(counts["top"]) and uniform(counts["left"]) and uniform(counts["joint"])
    assert abs(flip.float().mean().item() - 0.5) < 4 * 0.5 / math.sqrt(4000)


def test_device_and_per_image_paths_draw_the_same_crops_and_flips():
    per_image = tables(*recover_crops(per_image_crops(4000, seed=0)))
    device = tables(*recover_crops(device_crops(4000, seed=1)))
    for name in per_image:
        assert same_distribution(per_image[name], device[name]), name
    # The same comparison notices a path that pads differently or never flips.
    narrow = tables(*recover_crops(device_crops(4000, seed=1, padding=2)))
    assert not same_distribution(per_image["top"], narrow["top"])
    top, left, _ = recover_crops(device_crops(4000, seed=1))
    never = tables(top, left, torch.zeros_like(top, dtype=torch.bool))
    assert not same_distribution(per_image["flip"], never["flip"])


def test_the_per_image_crop_and_flip_draws_as_torchvisions_random_crop_and_flip():
    torchvision = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()])
    reference = tables(*recover_crops(per_image_crops(4000, seed=0, augment=torchvision)))
    ours = tables(*recover_crops(per_image_crops(4000, seed=1)))
    for name in reference:
        assert same_distribution(reference[name], ours[name]), name


def test_every_data_path_crops_and_flips_with_the_lessons_function(monkeypatch):
    calls = []
    real = data.crop_and_flip
    monkeypatch.setattr(data, "crop_and_flip", lambda *a: calls.append(len(a[1])) or real(*a))
    per_image_crops(3, seed=0)  # the DataLoader path: one image at a time
    device_crops(5, seed=0)  # the device path: the whole batch at once
    assert calls == [1, 1, 1, 5]


def test_random_crops_uses_only_the_given_generator():
    first = random_crops(100, 4, torch.Generator().manual_seed(3))
    again = random_crops(100, 4, torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert first[0].min() >= 0 and first[0].max() <= 8 and first[2].dtype == torch.bool


# --------------------------------------------------------------------------------------------
# CutMix and MixUp.
# --------------------------------------------------------------------------------------------


def constant_images(n=8):
    """Image i has every pixel 20 * (i + 1) and label i: a pixel tells its source image."""
    values = 20 * torch.arange(1, n + 1, dtype=torch.uint8)
    return values[:, None, None, None].expand(n, 3, 16, 16).contiguous(), torch.arange(n)


def test_cutmix_label_weights_are_the_areas_each_image_covers():
    images, labels = constant_images()
    loader = DeviceLoader(images, labels, 8, augment="none", batch_augment="cutmix", num_classes=8)
    mixed_any = False
    for seed in range(10):
        x, targets = next(loader.batches(seed))
        assert targets.shape == (8, 8) and (targets >= 0).all()
        torch.testing.assert_close(targets.sum(1), torch.ones(8))
        source = pixels(x)[:, 0].long() // 20 - 1  # (B, H, W): which image each pixel shows
        area = torch.stack([torch.bincount(s.flatten(), minlength=8) for s in source]) / 256
        torch.testing.assert_close(targets, area, rtol=0, atol=1e-6)
        mixed_any |= bool((targets.max(1).values < 1).any())
    assert mixed_any


def test_mixup_blends_images_in_the_proportions_of_their_labels():
    images, labels = constant_images()
    loader = DeviceLoader(images, labels, 8, augment="none", batch_augment="mixup", num_classes=8)
    normalised = data.normalization()(images)  # (8, 3, 16, 16)
    for seed in range(5):
        x, targets = next(loader.batches(seed))
        torch.testing.assert_close(targets.sum(1), torch.ones(8))
        expected = torch.einsum("bs,schw->bchw", targets, normalised)
        torch.testing.assert_close(x, expected, rtol=0, atol=1e-5)
        assert (targets.max(1).values < 1).all()  # mixup always blends


# --------------------------------------------------------------------------------------------
# Building it, and errors that say what to do.
# --------------------------------------------------------------------------------------------


def test_device_loaders_read_the_standin_like_make_loaders(tmp_path):
    standin.write_standin(tmp_path, train_per_batch=10, test_size=20)
    train, test = device_loaders("standin", 16, root=tmp_path, test_batch_size=8, download=False)
    assert (len(train), len(test)) == (3, 3)  # 50 training images: 3 full batches
    _, per_image_test = data.make_loaders(
        "standin", 16, root=tmp_path, num_workers=0, test_batch_size=8, download=False
    )
    for (x, y), (x_ref, y_ref) in zip(test, per_image_test, strict=True):
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
    assert "50 images (3, 32, 32)" in repr(train)


def test_bad_input_gets_errors_that_name_the_fix():
    images, labels = random_set(16)
    with pytest.raises(ValueError, match="make_loaders"):
        DeviceLoader(images, labels, 8, augment="randaugment")
    with pytest.raises(ValueError, match="uint8"):
        DeviceLoader(images.float(), labels, 8)
    with pytest.raises(ValueError, match="at least one image"):
        DeviceLoader(images[:0], labels[:0], 8, train=False)
    with pytest.raises(ValueError, match=r"one per image"):
        DeviceLoader(images, labels[:3], 8)
    with pytest.raises(ValueError, match="smaller batch_size"):
        DeviceLoader(images, labels, 32)
    with pytest.raises(ValueError, match="training batches only"):
        DeviceLoader(images, labels, 8, train=False, batch_augment="cutmix")
    with pytest.raises(TypeError, match="torch.from_numpy"):
        DeviceLoader(images.numpy(), labels, 8)
