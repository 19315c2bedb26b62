"""Data: CIFAR-10 (or its offline stand-in), normalised, augmented, in batches.

CIFAR-10 has 50,000 training and 10,000 test images of 32x32 pixels in 10 classes. torchvision's
`CIFAR10` dataset downloads it (`download=True`, about 170 MB, once) into `data/` and reads it
into one uint8 array. For training, every image then goes through a chain of transforms
(`torchvision.transforms.v2`):

    uint8 (3, 32, 32) -> random crop after 4 pixels of padding, random horizontal flip  (train)
                      -> [optional: RandAugment / AutoAugment]                          (train)
    a batch of them   -> float in [0, 1] -> per-channel normalisation: (x - mean) / std

Normalising with the training set's per-channel mean and standard deviation gives every input
channel mean 0 and variance 1, the scale the initialisation of the stem assumes. Cropping and
flipping show the model a slightly different image every epoch, so it cannot memorise pixels: a
cheap way to fight overfitting, which Mixers (with no convolutional prior) are prone to. The
random changes are made image by image; the normalisation, the same for every image, is done
once per batch (`NormalizeBatch`), which is cheaper.

Batch augmentations (CutMix, Mixup; `batch_augmentation`) blend pairs of images and their labels
and are applied to whole batches in the training loop.

**Without internet.** Where CIFAR-10 cannot be downloaded, `load_dataset("cifar10")` stops with
a short error that says where to put the files and how to use the stand-in instead; it never
switches data sets on its own. The stand-in (`support.standin`) is generated on first use in
CIFAR-10's exact on-disk format into `data/standin/`, and the same class reads it. The only
difference: torchvision checks the md5 sums of the real CIFAR-10 files, which generated files
cannot match, so for the stand-in `StandinCIFAR10` checks the md5 sums recorded in the
stand-in's own manifest instead, plus the shape of what it read. Everything computed on the
stand-in is labelled "synthetic stand-in" (`dataset_label`).

**Nothing in the data folder runs.** The files are pickles, and a pickle can run code. Both data
sets are read by `SafeCIFAR10` (`support.cifar_files`), torchvision's class with an unpickler
that builds plain data only; that module says why this, and not checksums, is the safeguard.

`MIXER_EDU_DATA` (or a `root` argument) moves the data folder elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Subset, default_collate
from torchvision import tv_tensors
from torchvision.datasets import CIFAR10
from torchvision.transforms import v2

from .support import standin
from .support.cifar_files import SafeCIFAR10
from .support.errors import DatasetUnavailableError
from .support.paths import DATA_ENV, check_folder, default_data_root
from .support.runtime import default_num_workers
from .support.standin import standin_root
from .support.validation import check_choice, check_positive_int

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
# Per-channel mean and standard deviation of the 50,000 CIFAR-10 training images (RGB, in [0, 1]).
# The stand-in goes through the same normalisation, so both share one pipeline.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

DATASETS = ("cifar10", "standin")
DATASET_LABELS = {"cifar10": "CIFAR-10", "standin": "synthetic stand-in"}
AUGMENTATIONS = ("none", "crop-flip", "randaugment", "autoaugment")
BATCH_AUGMENTATIONS = ("none", "cutmix", "mixup", "cutmix-mixup")
CIFAR10_URL = CIFAR10.url


def check_dataset_name(name: str) -> str:
    """Return `name` after checking it is one of `DATASETS`."""
    hint = "'cifar10' downloads CIFAR-10; 'standin' is the synthetic stand-in, generated offline."
    return check_choice(name, DATASETS, "dataset", hint)


def dataset_label(name: str) -> str:
    """The name to print and to put in plot titles: 'CIFAR-10' or 'synthetic stand-in'."""
    return DATASET_LABELS[check_dataset_name(name)]


def dataset_classes(name: str) -> tuple[str, ...]:
    """The 10 class names of the data set, in label order."""
    return CIFAR10_CLASSES if check_dataset_name(name) == "cifar10" else standin.STANDIN_CLASSES


# --------------------------------------------------------------------------------------------
# The stand-in: generated on request (`support.standin`), read by torchvision's CIFAR10 class.
# --------------------------------------------------------------------------------------------


class StandinCIFAR10(SafeCIFAR10):
    """`SafeCIFAR10`, reading the stand-in: the checksums come from its manifest.

    Everything else (file names, pickle format, `__getitem__`, transforms) is torchvision's. The
    checksums catch damaged files; a planted one is refused by `SafeCIFAR10`'s unpickler.
    Takes the folder that holds `cifar-10-batches-py/` (i.e. `standin_root(...)`), like CIFAR10.
    """

    def __init__(self, root: str | Path, train: bool = True, transform=None):
        manifest = standin.read_manifest(root)
        if manifest is None:
            raise DatasetUnavailableError(
                f"no synthetic stand-in in {Path(root) / standin.BASE_FOLDER} (its "
                f"{standin.MANIFEST} is missing); generate it with "
                "`python -m mixer_edu.support.standin`."
            )
        md5 = manifest["md5"]
        # Instance attributes shadow torchvision's class attributes with CIFAR-10's md5 sums.
        self.train_list = [[name, md5.get(name)] for name in standin.TRAIN_FILES]
        self.test_list = [[standin.TEST_FILE, md5.get(standin.TEST_FILE)]]
        self.meta = {**CIFAR10.meta, "md5": md5.get(standin.META_FILE)}
        try:
            super().__init__(root, train=train, transform=transform, download=False)
        except RuntimeError as error:  # torchvision: "Dataset not found or corrupted"
            raise DatasetUnavailableError(
                f"the synthetic stand-in in {Path(root) / standin.BASE_FOLDER} is incomplete or "
                f"corrupt ({error}); regenerate it with `python -m mixer_edu.support.standin`."
            ) from None
        self._check_format()

    def _check_format(self) -> None:
        data, targets = self.data, self.targets
        if data.dtype != np.uint8:
            raise DatasetUnavailableError(f"stand-in pixels are {data.dtype}, expected uint8.")
        if data.shape[1:] != (32, 32, 3) or len(targets) != len(data):
            raise DatasetUnavailableError(
                f"stand-in arrays have shape {data.shape} with {len(targets)} labels; expected "
                "(n, 32, 32, 3) with n labels. Regenerate it with "
                "`python -m mixer_edu.support.standin`."
            )
        if min(targets) < 0 or max(targets) >= len(self.classes):
            raise DatasetUnavailableError("stand-in labels are outside 0..9; regenerate it.")


def load_dataset(
    name: str,
    train: bool = True,
    root: str | Path | None = None,
    transform=None,
    download: bool = True,
) -> Dataset:
    """The training (`train=True`) or test split of `'cifar10'` or `'standin'`.

    Args:
        name: `'cifar10'` or `'standin'`.
        train: training split if True, else the test split.
        root: the data folder (default `default_data_root()`: `$MIXER_EDU_DATA` or `data/`).
        transform: applied to each PIL image (e.g. `train_transform()`); None keeps PIL images.
        download: for CIFAR-10, download it when it is missing; for the stand-in, generate it.

    Raises:
        DatasetUnavailableError: the files are missing or corrupt and could not be fetched; the
            message says where to put them and how to use the stand-in instead.
    """
    check_dataset_name(name)
    root = check_folder(root if root is not None else default_data_root(), "the data folder")
    if name == "standin":
        if download:
            standin.ensure_standin(root)  # only writes when missing or out of date
        return StandinCIFAR10(standin_root(root), train=train, transform=transform)
    try:
        return SafeCIFAR10(root, train=train, transform=transform, download=download)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; torchvision: RuntimeError
        if isinstance(error, DatasetUnavailableError):
            raise  # a file that is there but is not plain data: its message names the file
        # `from None`: the message says everything; the download's 30 frames would hide it.
        raise DatasetUnavailableError(_cifar10_missing_message(root, error, download)) from None


def _cifar10_missing_message(root: Path, error: Exception, download: bool) -> str:
    reason = " ".join(str(getattr(error, "reason", error)).split())[:80]
    tried = f"could not be downloaded ({reason})" if download else "download=False was given"
    return (
        f"CIFAR-10 is not in {root / 'cifar-10-batches-py'} and {tried}.\n"
        f"Either download {CIFAR10_URL} elsewhere and extract it into {root} (or set {DATA_ENV} "
        "to the folder that holds cifar-10-batches-py/),\n"
        "or use the synthetic stand-in: --dataset standin, dataset='standin' in Python, or "
        "MIXER_EDU_DATASET=standin for the notebooks (its results are not CIFAR-10 results)."
    )


# --------------------------------------------------------------------------------------------
# Augmentation: a random crop and a flip, the same code for one image and for a whole batch.
# --------------------------------------------------------------------------------------------

CROP_PADDING = 4  # zero pixels around each image before the random crop


def random_crops(
    n: int, padding: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random crop positions and flips for `n` images: `(top, left, flip)`, each of shape (n,).

    `top` and `left` are uniform over 0..2*padding (the corner of the crop in the padded image),
    `flip` is True with probability 1/2.

    Args:
        n: how many images.
        padding: the zero border p around each image.
        generator: a CPU generator (the device path's, seeded per epoch, so the draws repeat on
            resume), or None: torch's global one (seeded per epoch and per DataLoader worker).
    """
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    return top, left, flip


def crop_and_flip(
    padded: torch.Tensor,
    index: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    flip: torch.Tensor,
    size: tuple[int, int],
) -> torch.Tensor:
    """Cut one `size` window out of each chosen padded image, mirrored left-right where `flip`.

    Args:
        padded: images `(N, C, H + 2p, W + 2p)`, any dtype.
        index: which image each window comes from, `(B,)`.
        top, left: the window's corner in the padded image, `(B,)`.
        flip: mirror the window horizontally, `(B,)` bool.
        size: the window `(H, W)`.

    Returns:
        `(B, C, H, W)`; `output[b, c, i, j] = padded[index[b], c, top[b] + i, left[b] + j]`, or
        `left[b] + W - 1 - j` where `flip[b]`. Two gathers, no loop over images.
    """
    (height, width), (_, channels, padded_height, padded_width) = size, padded.shape
    device = padded.device
    # 1. The rows: every (image, channel, row) of the padded set is one row of `flat`.
    flat = padded.reshape(-1, padded_width)  # (N * C * (H + 2p), W + 2p), a view
    first_row = (index[:, None] * channels + torch.arange(channels, device=device)) * padded_height
    row_ids = first_row[:, :, None] + top[:, None, None] + torch.arange(height, device=device)
    rows = flat.index_select(0, row_ids.flatten())  # (B * C * H, W + 2p)
    rows = rows.view(len(index), channels, height, padded_width)
    # 2. The columns: a window starting at `left`, read backwards where flipped.
    columns = torch.arange(width, device=device)
    columns = torch.where(flip[:, None], width - 1 - columns, columns) + left[:, None]  # (B, W)
    columns = columns[:, None, None, :].expand(-1, channels, height, -1)  # (B, C, H, W)
    return rows.gather(3, columns)  # (B, C, H, W)


class RandomCropFlip(nn.Module):
    """The training crop-and-flip of one uint8 image `(3, H, W)`: `crop_and_flip` on a batch of 1.

    The image is padded by `padding` zero pixels, and one window of its size is cut out at a
    random corner, mirrored with probability 1/2, from torch's global generator (which the
    DataLoader seeds in each worker). The same as torchvision's `RandomCrop(size, padding)`
    followed by `RandomHorizontalFlip()`, drawn the same way.
    """

    def __init__(self, padding: int = CROP_PADDING):
        super().__init__()
        self.padding = padding

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        padded = F.pad(image, (self.padding,) * 4)[None]  # (1, 3, H + 2p, W + 2p)
        crop = random_crops(1, self.padding)  # drawn on the CPU, as the device path draws
        top, left, flip = (values.to(image.device) for values in crop)
        first = torch.zeros(1, dtype=torch.int64, device=image.device)
        out = crop_and_flip(padded, first, top, left, flip, tuple(image.shape[-2:]))[0]
        return tv_tensors.wrap(out, like=image) if isinstance(image, tv_tensors.Image) else out

    def extra_repr(self) -> str:
        return f"padding={self.padding}"


def augmentation(augment: str = "crop-flip") -> v2.Compose:
    """Random changes of one uint8 image `(3, 32, 32)`, for training.

    `'none'`; `'crop-flip'` (default): a random 32x32 crop of the image padded by 4 pixels on
    every side, then a horizontal flip with probability 1/2 (`RandomCropFlip`, the code the
    device path runs on whole batches); `'randaugment'` or `'autoaugment'` (torchvision's
    CIFAR-10 policy) after the crop and flip.
    """
    check_choice(augment, AUGMENTATIONS, "augment")
    steps = []
    if augment != "none":
        steps.append(RandomCropFlip())
    if augment == "randaugment":
        steps.append(v2.RandAugment(num_ops=2, magnitude=9))
    elif augment == "autoaugment":
        steps.append(v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10))
    return v2.Compose(steps or [v2.Identity()])


def normalization() -> v2.Compose:
    """uint8 images `(..., 3, H, W)` -> float, mean 0 and std 1 per channel (also for batches)."""
    return v2.Compose(
        [
            v2.ToDtype(torch.float32, scale=True),  # uint8 0..255 -> float 0..1
            v2.Normalize(CIFAR10_MEAN, CIFAR10_STD),  # (x - mean) / std, per channel
        ]
    )


def train_transform(augment: str = "crop-flip") -> v2.Compose:
    """The whole training transform of one PIL image: `augmentation`, then `normalization`."""
    return v2.Compose([v2.ToImage(), augmentation(augment), normalization()])


def test_transform() -> v2.Compose:
    """The evaluation transform of one PIL image: no augmentation, only `normalization`."""
    return v2.Compose([v2.ToImage(), normalization()])


test_transform.__test__ = False  # not a pytest test, despite its name


def batch_augmentation(
    kind: str = "none", num_classes: int = 10, alpha: float = 1.0, prob: float = 1.0
):
    """CutMix / Mixup for whole batches: `(images, labels) -> (images, soft_targets (B, classes))`.

    `'cutmix'` pastes a random rectangle of another image of the batch, `'mixup'` blends two
    images; the labels are mixed in the same proportion. `'cutmix-mixup'` picks one of the two
    per batch. With `prob < 1` a batch is mixed only with that probability (and otherwise
    passes unchanged, with its integer labels). Returns None for `'none'`.
    """
    check_choice(kind, BATCH_AUGMENTATIONS, "batch_augment")
    if kind == "none":
        return None
    cutmix = v2.CutMix(alpha=alpha, num_classes=num_classes)
    mixup = v2.MixUp(alpha=alpha, num_classes=num_classes)
    blends = {"cutmix": cutmix, "mixup": mixup, "cutmix-mixup": v2.RandomChoice([cutmix, mixup])}
    return blends[kind] if prob >= 1 else v2.RandomApply([blends[kind]], p=prob)


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation for plotting: `(..., 3, H, W)` -> the same shape, in [0, 1]."""
    mean = torch.tensor(CIFAR10_MEAN, device=images.device).view(3, 1, 1)
    std = torch.tensor(CIFAR10_STD, device=images.device).view(3, 1, 1)
    return (images.float() * std + mean).clamp(0.0, 1.0)


# --------------------------------------------------------------------------------------------
# Loaders.
# --------------------------------------------------------------------------------------------


class ImageTensors(Dataset):
    """The images a torchvision `CIFAR10` dataset has read, as uint8 tensors `(3, 32, 32)`.

    `CIFAR10[i]` turns every picture into a PIL image first; reading the uint8 array it loaded
    directly skips that conversion. `transform` acts on one uint8 image; the loader's
    `NormalizeBatch` normalises whole batches afterwards.
    """

    def __init__(self, dataset: CIFAR10, transform=None):
        self.images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2)  # (n, 3, 32, 32) view
        self.targets = dataset.targets
        self.classes = dataset.classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image = tv_tensors.Image(self.images[index])  # uint8 (3, 32, 32)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]


class NormalizeBatch:
    """A DataLoader `collate_fn`: stack the images and labels, then normalise the whole batch."""

    def __init__(self):
        self.normalize = normalization()

    def __call__(self, samples):
        images, labels = default_collate(samples)  # (B, 3, 32, 32) uint8, (B,)
        return self.normalize(images.as_subclass(torch.Tensor)), labels


def make_loaders(
    name: str,
    batch_size: int = 128,
    *,
    root: str | Path | None = None,
    augment: str = "crop-flip",
    num_workers: int | None = None,
    train_images: int | None = None,
    test_images: int | None = None,
    test_batch_size: int | None = None,
    download: bool = True,
) -> tuple[DataLoader, DataLoader]:
    """Training and test DataLoaders for `'cifar10'` or `'standin'`.

    Args:
        name: the data set.
        batch_size: training batch size; the last incomplete training batch is dropped, so every
            step sees the same number of images.
        root: the data folder (default `default_data_root()`).
        augment: the training augmentation (see `augmentation`).
        num_workers: loader processes (default `default_num_workers()`).
        train_images, test_images: use only the first n images of each split (quick runs).
        test_batch_size: evaluation batch size (default: twice `batch_size`).
        download: fetch (CIFAR-10) or generate (stand-in) the data when missing.

    Returns:
        `(train_loader, test_loader)`; batches are `(images (B, 3, 32, 32), labels (B,))`, the
        images normalised. The training loader shuffles with torch's global random generator,
        so seeding it (`torch.manual_seed`) before an epoch fixes that epoch's order and
        augmentations, with any number of workers: every epoch starts new worker processes,
        and worker k seeds its generators with `base + k`, where `base` is drawn from the global
        generator as the epoch starts. (Persistent workers would draw their seeds once, in the
        first epoch a process runs, so a resumed run's workers would get other seeds than the
        uninterrupted run's; starting workers costs a fraction of a second per epoch.)
    """
    check_positive_int(batch_size, "batch_size")
    train_set = ImageTensors(load_dataset(name, True, root, None, download), augmentation(augment))
    test_set = ImageTensors(load_dataset(name, False, root, None, download))
    train_set = _first(train_set, train_images, "train_images")
    test_set = _first(test_set, test_images, "test_images")
    if len(train_set) < batch_size:
        raise ValueError(
            f"batch_size {batch_size} is larger than the {len(train_set)} training images; "
            "use a smaller batch_size or more train_images."
        )
    workers = default_num_workers() if num_workers is None else num_workers
    options = dict(
        num_workers=workers, collate_fn=NormalizeBatch(), pin_memory=torch.cuda.is_available()
    )
    # New training workers every epoch (not persistent ones): each epoch's workers take their
    # seeds from torch's global generator when the epoch starts (see the docstring).
    train_loader = DataLoader(
        train_set, batch_size=batch_size, shuffle=True, drop_last=True, **options
    )
    test_loader = DataLoader(
        test_set,
        batch_size=test_batch_size or 2 * batch_size,
        persistent_workers=workers > 0,  # no randomness in evaluation: keep its workers
        **options,
    )
    return train_loader, test_loader


def _first(dataset: Dataset, n: int | None, name: str) -> Dataset:
    if n is None or n >= len(dataset):
        return dataset
    check_positive_int(n, name)
    return Subset(dataset, range(n))
