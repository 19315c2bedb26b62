"""CIFAR-10's files, read without letting them run code.

CIFAR-10 (and the stand-in, written in the same format) is stored as Python pickles: each
`data_batch_N` holds a dict `{"data": uint8 array (n, 3072), "labels": [int, ...], ...}`. A
pickle is not a data format but a small program that rebuilds objects, and Python's
`pickle.load` runs whatever function it names: a file planted in a shared data folder could
run `os.system(...)` the moment training starts. torchvision's `CIFAR10` reads its files with
plain `pickle.load`.

Two ways to close that hole were possible:

1. Check every file against a trusted checksum before unpickling it. The real CIFAR-10 files have
   published md5 sums (torchvision checks them), but the stand-in is generated on each machine,
   so its only checksums sit in a manifest in the same folder, which whoever can plant a file can
   also rewrite. Trust would rest on the folder we are trying not to trust.
2. Read the files with an unpickler that can only build plain data. It works for every file,
   whoever wrote it, needs no list of checksums, and a file that is not plain data is refused
   with an error naming it before anything in it runs.

We use 2 (`read_cifar_pickle`), for the stand-in and the real CIFAR-10 alike (`SafeCIFAR10`).
The checksums stay, as a check against truncated or damaged files, not as a security barrier.

What the unpickler allows: dicts, lists, tuples, str, bytes, numbers, True/False/None (these
need no function), and numpy arrays of numbers or text, which pickle rebuilds through exactly
three names: `numpy.ndarray`, `numpy.dtype` and numpy's `_reconstruct`. Any other name a file
asks for (`os.system`, `builtins.eval`, a class of some library...) stops the reading.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import check_integrity
from torchvision.datasets.vision import VisionDataset

from .errors import DatasetUnavailableError

PLAIN_DTYPE_KINDS = "biufSU"  # bool, int, unsigned int, float, bytes, text: no objects
_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's array rebuilder, whatever module it is in


def _plain_dtype(*args) -> np.dtype:
    """`numpy.dtype(*args)`, refused unless it holds plain numbers or text."""
    dtype = np.dtype(*args)
    if dtype.hasobject or dtype.kind not in PLAIN_DTYPE_KINDS:
        raise pickle.UnpicklingError(f"it holds an array of dtype {dtype}, which is not plain data")
    return dtype


def _plain_array(cls, *args):
    """numpy's `_reconstruct`, for `numpy.ndarray` itself only (not a subclass)."""
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(f"it rebuilds an array of class {cls!r}")
    return _RECONSTRUCT(cls, *args)


# Every name a CIFAR-format pickle may ask for, old numpy (numpy.core) and new (numpy._core).
ALLOWED_NAMES = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _plain_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _plain_array,
    ("numpy._core.multiarray", "_reconstruct"): _plain_array,
}


class PlainDataUnpickler(pickle.Unpickler):
    """An unpickler that resolves only `ALLOWED_NAMES`: it can build plain data, nothing else."""

    def find_class(self, module: str, name: str):
        # Every function or class a pickle uses passes through here (also the opcodes that
        # call them: REDUCE, NEWOBJ, INST, OBJ, and the copyreg extension codes).
        if (module, name) in ALLOWED_NAMES:
            return ALLOWED_NAMES[(module, name)]
        raise pickle.UnpicklingError(f"it asks for {module}.{name}, which could run code")


def _check_plain(value, depth: int = 0) -> None:
    """Raise `pickle.UnpicklingError` unless `value` is plain data all the way down."""
    if depth > 20:
        raise pickle.UnpicklingError("it is nested too deeply for a data batch")
    if isinstance(value, np.ndarray):
        _plain_dtype(value.dtype)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, depth + 1)
            _check_plain(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_plain(item, depth + 1)
    elif value is not None and not isinstance(value, (str, bytes, int, float)):
        raise pickle.UnpicklingError(f"it holds a {type(value).__name__}")


def read_cifar_pickle(path: str | Path) -> dict:
    """Read one CIFAR-format pickle (a data batch or `batches.meta`) as plain data.

    Raises:
        DatasetUnavailableError: the file asks for anything but plain data (nothing of it runs),
            is damaged, or is not a dict; the message names the file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            # latin1: the real CIFAR-10 was pickled by Python 2, whose byte strings become str.
            value = PlainDataUnpickler(f, encoding="latin1").load()
        _check_plain(value)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise DatasetUnavailableError(
            f"{path} is not a plain CIFAR-10 data file ({error}); it was not read, and nothing "
            f"in it was run. Delete the folder {path.parent} and download or regenerate the data "
            "set (the stand-in: python -m mixer_edu.support.standin)."
        ) from None
    if not isinstance(value, dict):
        raise DatasetUnavailableError(
            f"{path} holds a {type(value).__name__}, not a CIFAR-10 batch (a dict); delete the "
            f"folder {path.parent} and download or regenerate the data set."
        )
    return value


def _check_batch(batch: dict, path: Path) -> None:
    """A data batch has `data` uint8 `(n, 3072)` and `n` labels."""
    data, labels = batch.get("data"), batch.get("labels", batch.get("fine_labels"))
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == 3 * 32 * 32
        and isinstance(labels, list)
        and len(labels) == len(data)
    ):
        raise DatasetUnavailableError(
            f"{path} is not a CIFAR-10 batch (a uint8 'data' array (n, 3072) and n 'labels'); "
            f"delete the folder {path.parent} and download or regenerate the data set."
        )


class SafeCIFAR10(CIFAR10):
    """torchvision's `CIFAR10`, reading its pickles with `read_cifar_pickle`.

    The same arguments, attributes (`data` uint8 `(n, 32, 32, 3)`, `targets`, `classes`),
    download, checksums and `__getitem__` as torchvision's class; only the two places where
    torchvision calls `pickle.load` (its `__init__` and `_load_meta`) are replaced.
    """

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        # CIFAR10.__init__ is skipped on purpose (it unpickles); what it does is repeated here.
        VisionDataset.__init__(self, root, transform=transform, target_transform=target_transform)
        self.train = train
        if download:
            self.download()
        if not self._check_integrity():
            raise RuntimeError(
                "Dataset not found or corrupted. You can use download=True to download it"
            )
        folder = Path(self.root) / self.base_folder
        files = self.train_list if train else self.test_list
        batches = [read_cifar_pickle(folder / name) for name, _ in files]
        for (name, _), batch in zip(files, batches, strict=True):
            _check_batch(batch, folder / name)
        rows = np.vstack([batch["data"] for batch in batches])  # (n, 3072): R, G, B planes
        self.data = rows.reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))  # (n, 32, 32, 3)
        self.targets = [
            label for batch in batches for label in batch.get("labels", batch.get("fine_labels"))
        ]
        self._load_meta()

    def _load_meta(self) -> None:
        path = Path(self.root) / self.base_folder / self.meta["filename"]
        if not check_integrity(str(path), self.meta["md5"]):
            raise RuntimeError(
                "Dataset metadata file not found or corrupted. You can use download=True to "
                "download it"
            )
        self.classes = read_cifar_pickle(path)[self.meta["key"]]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
