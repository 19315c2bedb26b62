"""A synthetic stand-in for CIFAR-10, for machines and classrooms without internet.

CIFAR-10 is a 170 MB download. Where it cannot be fetched, the course trains on this small
generated data set instead. It is written in CIFAR-10's exact on-disk format
(`cifar-10-batches-py/data_batch_1..5`, `test_batch`, `batches.meta`: Python pickles whose
`"data"` is a uint8 array with one 3072-byte row per image, the red, green and blue 32x32 planes
one after the other, and whose `"labels"` is a list of ints), so the *same* loading code, the
torchvision `CIFAR10` dataset, reads it.

What makes it a useful stand-in for learning about a Mixer: its ten classes differ only in
**spatial structure**, never in colour. Every image has a random background colour and a random
foreground colour, so a model that looks at colours alone is at chance (10%). To tell a ring from
a disk, or two blobs side by side from two blobs stacked, the model has to relate patches at
different positions, which is exactly what token mixing does; the learned token-mixing weights
then show spatial patterns worth looking at.

    class                    what is drawn (position, size, period, thickness all random)
    0  horizontal stripes    a grating at 0 +- 12 degrees inside a random rectangle
    1  vertical stripes      a grating at 90 +- 12 degrees inside a random rectangle
    2  diagonal stripes      a grating at 45 or 135 +- 12 degrees inside a random rectangle
    3  checkerboard          squares of 3-6 pixels inside a random rectangle
    4  disk                  one filled disk
    5  ring                  one circle outline
    6  square frame          one square outline
    7  cross                 a plus sign
    8  blobs side by side    two small disks next to each other
    9  blobs stacked         two small disks one above the other

Every class keeps its label under a horizontal flip, so the usual flip augmentation is safe.
To keep the task from being solved in one epoch, shapes vary in position, size and thickness,
and images get a random contrast between foreground and background, a faint illumination
gradient, two bright or dark dots of clutter and Gaussian pixel noise of random strength. (The
amounts were tuned so that a small Mixer learns the classes within a few epochs without
reaching 100% in the first one.)

Everything is drawn with vectorised numpy from one fixed seed, so every machine draws the same
images (up to the last bit of an occasional floating-point rounding), in a few seconds. A
`standin_manifest.json` beside the batches records the generator version and the md5 sum of every
file as written; `mixer_edu.data` checks the files against it (in place of CIFAR-10's published
checksums, which the stand-in cannot match) and regenerates a copy written by an older version.
The checksums catch damaged files only: whoever can plant a file can rewrite the manifest too.
What keeps a planted file from running code is the plain-data reader, `support.cifar_files`.

`write_standin()` writes it into `data/standin/` (`mixer_edu.data.load_dataset("standin", ...)`
calls it on first use); `python -m mixer_edu.support.standin` rewrites it by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from .errors import command_line, exit_status
from .paths import check_folder, default_data_root
from .validation import check_positive_int

STANDIN_VERSION = 2  # bump whenever the generated images change; old copies are regenerated
STANDIN_SEED = 20210504  # the day the MLP-Mixer paper appeared on arXiv
STANDIN_CLASSES = (
    "horizontal stripes",
    "vertical stripes",
    "diagonal stripes",
    "checkerboard",
    "disk",
    "ring",
    "square frame",
    "cross",
    "blobs side by side",
    "blobs stacked",
)
BASE_FOLDER = "cifar-10-batches-py"  # the folder name torchvision's CIFAR10 reads
MANIFEST = "standin_manifest.json"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
IMAGE_SIZE = 32


# --------------------------------------------------------------------------------------------
# Drawing: every function returns masks (n, 32, 32) in [0, 1], 1 = foreground.
# --------------------------------------------------------------------------------------------


def _grid() -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates, each (1, 32, 32): y grows downwards, x to the right."""
    ys, xs = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32) + 0.5
    return ys[None], xs[None]


def _column(values: np.ndarray) -> np.ndarray:
    """(n,) -> (n, 1, 1), so per-image numbers broadcast over the pixel grid."""
    return values.astype(np.float32)[:, None, None]


def _soft_inside(signed_distance: np.ndarray) -> np.ndarray:
    """1 inside a shape, 0 outside, with a one-pixel soft edge (anti-aliasing)."""
    return np.clip(0.5 - signed_distance, 0.0, 1.0)


def _random_rectangle(rng: np.random.Generator, n: int) -> np.ndarray:
    """Masks of axis-aligned rectangles, 12 to 32 pixels high and wide."""
    ys, xs = _grid()
    height, width = (rng.uniform(12, 32, size=n) for _ in range(2))
    top = rng.uniform(0, IMAGE_SIZE - height)
    left = rng.uniform(0, IMAGE_SIZE - width)
    inside_y = _soft_inside(np.abs(ys - _column(top + height / 2)) - _column(height / 2))
    inside_x = _soft_inside(np.abs(xs - _column(left + width / 2)) - _column(width / 2))
    return inside_y * inside_x


def _stripes(rng: np.random.Generator, n: int, angles_deg: np.ndarray) -> np.ndarray:
    """Sharp stripes (a sine wave, steepened and clipped) at the given angles in degrees
    (0 = horizontal stripes), with random period and phase, inside a random rectangle."""
    ys, xs = _grid()
    theta = np.deg2rad(angles_deg + rng.uniform(-12, 12, size=n))
    period = rng.uniform(4.5, 9.0, size=n)
    phase = rng.uniform(0, 2 * np.pi, size=n)
    # distance travelled across the stripes; horizontal stripes change along y
    across = xs * _column(-np.sin(theta)) + ys * _column(np.cos(theta))
    wave = np.sin(2 * np.pi * across / _column(period) + _column(phase))
    return np.clip(wave * 2.0 + 0.5, 0.0, 1.0) * _random_rectangle(rng, n)


def _checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
    ys, xs = _grid()
    cell = _column(rng.uniform(3.0, 6.0, size=n))
    dy, dx = (_column(rng.uniform(0, 6, size=n)) for _ in range(2))
    squares = (np.floor((ys + dy) / cell) + np.floor((xs + dx) / cell)) % 2
    return squares.astype(np.float32) * _random_rectangle(rng, n)


def _centres(rng: np.random.Generator, n: int, margin: np.ndarray) -> tuple[np.ndarray, ...]:
    """Random centres that keep a shape of the given half-size (n,) inside the image."""
    cy = rng.uniform(margin, IMAGE_SIZE - margin)
    cx = rng.uniform(margin, IMAGE_SIZE - margin)
    return _column(cy), _column(cx)


def _disk(rng: np.random.Generator, n: int) -> np.ndarray:
    ys, xs = _grid()
    radius = rng.uniform(4.0, 9.0, size=n)
    cy, cx = _centres(rng, n, radius + 1)
    return _soft_inside(np.hypot(ys - cy, xs - cx) - _column(radius))


def _ring(rng: np.random.Generator, n: int) -> np.ndarray:
    ys, xs = _grid()
    radius = rng.uniform(5.5, 11.0, size=n)
    thickness = _column(rng.uniform(1.5, 3.0, size=n))
    cy, cx = _centres(rng, n, radius + 2)
    distance = np.abs(np.hypot(ys - cy, xs - cx) - _column(radius))
    return _soft_inside(distance - thickness / 2)


def _square_frame(rng: np.random.Generator, n: int) -> np.ndarray:
    ys, xs = _grid()
    half_side = rng.uniform(5.0, 10.0, size=n)
    thickness = _column(rng.uniform(1.5, 3.0, size=n))
    cy, cx = _centres(rng, n, half_side + 2)
    chebyshev = np.maximum(np.abs(ys - cy), np.abs(xs - cx))  # distance in the max-norm
    return _soft_inside(np.abs(chebyshev - _column(half_side)) - thickness / 2)


def _cross(rng: np.random.Generator, n: int) -> np.ndarray:
    ys, xs = _grid()
    arm = rng.uniform(5.0, 10.0, size=n)
    thickness = _column(rng.uniform(2.0, 4.0, size=n))
    cy, cx = _centres(rng, n, arm + 1)
    dy, dx = np.abs(ys - cy), np.abs(xs - cx)
    bar = np.maximum(dy, dx) - _column(arm)  # inside the bounding square of the cross
    vertical = np.maximum(dx - thickness / 2, bar)
    horizontal = np.maximum(dy - thickness / 2, bar)
    return _soft_inside(np.minimum(vertical, horizontal))


def _two_blobs(rng: np.random.Generator, n: int, side_by_side: bool) -> np.ndarray:
    ys, xs = _grid()
    radius = rng.uniform(2.5, 4.5, size=n)
    half_gap = rng.uniform(4.5, 8.0, size=n)  # half the distance between the two centres
    jitter = rng.uniform(-1.5, 1.5, size=n)  # the pair is never perfectly aligned
    cy, cx = _centres(rng, n, half_gap + radius + 1)
    along, across = (_column(half_gap), _column(jitter))
    if side_by_side:
        first = np.hypot(ys - cy - across, xs - cx + along)
        second = np.hypot(ys - cy + across, xs - cx - along)
    else:
        first = np.hypot(ys - cy + along, xs - cx - across)
        second = np.hypot(ys - cy - along, xs - cx + across)
    return _soft_inside(np.minimum(first, second) - _column(radius))


def draw_masks(label: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Foreground masks `(n, 32, 32)` in [0, 1] for `n` images of class `label`."""
    if label == 0:
        return _stripes(rng, n, np.zeros(n))
    if label == 1:
        return _stripes(rng, n, np.full(n, 90.0))
    if label == 2:
        return _stripes(rng, n, rng.choice([45.0, 135.0], size=n))
    if label == 3:
        return _checkerboard(rng, n)
    if label == 4:
        return _disk(rng, n)
    if label == 5:
        return _ring(rng, n)
    if label == 6:
        return _square_frame(rng, n)
    if label == 7:
        return _cross(rng, n)
    if label in (8, 9):
        return _two_blobs(rng, n, side_by_side=label == 8)
    raise ValueError(f"label must be in 0..9, got {label!r}.")


def render(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paint masks `(n, 32, 32)` with random colours, light, clutter and noise.

    Returns uint8 images `(n, 32, 32, 3)` (height, width, RGB).
    """
    n = len(masks)
    ys, xs = _grid()
    # Backgrounds stay away from black and white: when the per-image colour is far from the mean
    # compared with the drawn structure, a small Mixer sits on a long plateau before it learns.
    background = rng.uniform(0.25, 0.75, size=(n, 3))
    # The foreground differs from the background by a random colour step of random size: colour
    # says nothing about the class, and a lower contrast makes some images harder.
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    contrast = rng.uniform(0.5, 1.0, size=(n, 1))
    foreground = background + contrast * direction
    # Keep the step inside [0, 1] by reflecting at the edges (so it is not clipped away).
    foreground = np.abs(foreground)
    foreground = 1 - np.abs(1 - foreground)
    images = (
        background[:, None, None, :] * (1 - masks[..., None])
        + foreground[:, None, None, :] * masks[..., None]
    )
    # Smooth illumination: a linear ramp in a random direction.
    angle = rng.uniform(0, 2 * np.pi, size=n)
    strength = rng.uniform(0, 0.1, size=n)
    ramp = ((xs - 16) * _column(np.cos(angle)) + (ys - 16) * _column(np.sin(angle))) / 16
    images = images + (ramp * _column(strength))[..., None]
    # Clutter: single bright or dark pixels, and pixel noise of random strength.
    for _ in range(2):
        y, x = rng.integers(0, IMAGE_SIZE, size=(2, n))
        images[np.arange(n), y, x, :] = rng.integers(0, 2, size=(n, 1))
    sigma = rng.uniform(0.02, 0.06, size=(n, 1, 1, 1))
    images = images + sigma * rng.normal(size=images.shape)
    return np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)


def generate(
    num_images: int, seed: int = STANDIN_SEED, *, balanced: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Draw `num_images` images with equally many of each class, in random order.

    Returns:
        images: uint8 `(num_images, 32, 32, 3)`.
        labels: int64 `(num_images,)` in 0..9.
    """
    rng = np.random.default_rng(seed)
    num_classes = len(STANDIN_CLASSES)
    if balanced:
        labels = np.arange(num_images) % num_classes
    else:
        labels = rng.integers(0, num_classes, size=num_images)
    labels = rng.permutation(labels)
    images = np.empty((num_images, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for label in range(num_classes):
        where = np.flatnonzero(labels == label)
        images[where] = render(draw_masks(label, len(where), rng), rng)
    return images, labels.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Writing: CIFAR-10's on-disk format.
# --------------------------------------------------------------------------------------------


def to_cifar_rows(images: np.ndarray) -> np.ndarray:
    """uint8 `(n, 32, 32, 3)` -> `(n, 3072)`: the R, G, B planes, each row by row, as CIFAR-10."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


def md5sum(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _dump(obj, path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)


def write_cifar_files(
    root: str | Path,
    *,
    train_per_batch: int = 2000,
    test_size: int = 2000,
    seed: int = STANDIN_SEED,
) -> Path:
    """Write the stand-in into `root/cifar-10-batches-py/`, replacing what is there.

    Five training batches of `train_per_batch` images (10,000 by default) and a test batch of
    `test_size` images (2,000), every class equally often. The files are written into a
    temporary folder first and moved into place at the end, so an interrupted run never leaves
    a half-written data set behind. Returns the folder.
    """
    root = Path(root)
    folder = root / BASE_FOLDER
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".standin-"))
    except OSError as error:  # a read-only folder, or one of another user's
        raise PermissionError(
            f"cannot write the synthetic stand-in into the data folder {root} "
            f"({error.strerror or error}); pass a data folder you can write to (--data-root, "
            "data_root=, or $MIXER_EDU_DATA), or one that holds the stand-in already."
        ) from None
    # Different seeds for the training and the test images, so the two never share an image.
    train_images, train_labels = generate(5 * train_per_batch, seed)
    test_images, test_labels = generate(test_size, seed + 1)

    tmp.chmod(0o755)  # mkdtemp makes a private folder; the data set is for everyone
    try:
        for i, name in enumerate(TRAIN_FILES):
            part = slice(i * train_per_batch, (i + 1) * train_per_batch)
            batch_label = f"training batch {i + 1} of 5"
            _write_batch(
                tmp / name, batch_label, train_images[part], train_labels[part], part.start
            )
        _write_batch(tmp / TEST_FILE, "testing batch 1 of 1", test_images, test_labels, 0)
        meta = {"num_cases_per_batch": train_per_batch, "label_names": list(STANDIN_CLASSES)}
        _dump({**meta, "num_vis": 3072}, tmp / META_FILE)
        manifest = {
            "name": "mixer-edu synthetic stand-in for CIFAR-10",
            "version": STANDIN_VERSION,
            "seed": seed,
            "train_size": 5 * train_per_batch,
            "test_size": test_size,
            "classes": list(STANDIN_CLASSES),
            "md5": {name: md5sum(tmp / name) for name in (*TRAIN_FILES, TEST_FILE, META_FILE)},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _write_batch(path: Path, batch_label: str, images, labels, offset: int) -> None:
    _dump(
        {
            "batch_label": batch_label,
            "labels": [int(label) for label in labels],
            "data": to_cifar_rows(images),
            "filenames": [f"standin_{offset + i:05d}.png" for i in range(len(images))],
        },
        path,
    )


def read_manifest(root: str | Path) -> dict | None:
    """The manifest of the stand-in under `root`, or None when there is none."""
    path = Path(root) / BASE_FOLDER / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def standin_root(root: str | Path | None = None) -> Path:
    """Where the stand-in lives: `<data root>/standin` (it holds `cifar-10-batches-py/`)."""
    return Path(root if root is not None else default_data_root()) / "standin"


def write_standin(
    root: str | Path | None = None,
    *,
    train_per_batch: int = 2000,
    test_size: int = 2000,
    overwrite: bool = False,
) -> Path:
    """Generate the stand-in under the data root `root` (default `$MIXER_EDU_DATA` or `data/`).

    Writes `<root>/standin/cifar-10-batches-py/` (5 training batches of `train_per_batch`
    images and a test batch of `test_size`) unless a copy of these sizes written by the current
    generator is there already, or always with `overwrite=True`. Returns the folder.
    """
    folder_root = check_folder(standin_root(root), "the data folder")
    manifest = read_manifest(folder_root)
    wanted = {"version": STANDIN_VERSION, "train_size": 5 * train_per_batch}
    wanted["test_size"] = test_size
    if manifest is not None and not overwrite:
        if all(manifest.get(key) == value for key, value in wanted.items()):
            return folder_root / BASE_FOLDER
        if manifest.get("version") != STANDIN_VERSION:
            print(
                f"The synthetic stand-in in {folder_root} was written by an older generator "
                f"(version {manifest.get('version')}, now {STANDIN_VERSION}); regenerating it."
            )
    return write_cifar_files(folder_root, train_per_batch=train_per_batch, test_size=test_size)


def ensure_standin(root: str | Path | None = None) -> Path:
    """The stand-in under `root`, generated (default sizes) when missing or from an older
    generator. One of other sizes written on purpose (the CLI's `--train-per-batch`, e.g. a
    CIFAR-10-sized one for timing the classroom run) is kept as it is. Returns its folder."""
    manifest = read_manifest(standin_root(root))
    if manifest is not None and manifest.get("version") == STANDIN_VERSION:
        return standin_root(root) / BASE_FOLDER
    return write_standin(root)


@command_line  # a data folder that is a file, or not writable: one `error:` line, status 2
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mixer_edu.support.standin",
        description="Write the synthetic stand-in for CIFAR-10 in CIFAR-10's on-disk format.",
    )
    parser.add_argument(
        "--root", help="data folder (default: $MIXER_EDU_DATA or data/ in the repository)"
    )
    parser.add_argument(
        "--train-per-batch", type=int, default=2000,
        help="images in each of the 5 training batches (default 2000; 10000 is CIFAR-10's size)",
    )  # fmt: skip
    parser.add_argument(
        "--test-size", type=int, default=2000, help="test images (default 2000; CIFAR-10: 10000)"
    )
    args = parser.parse_args(argv)
    check_positive_int(args.train_per_batch, "--train-per-batch")
    check_positive_int(args.test_size, "--test-size")
    folder = write_standin(
        args.root, train_per_batch=args.train_per_batch, test_size=args.test_size, overwrite=True
    )
    print(f"synthetic stand-in written to {folder}")


if __name__ == "__main__":
    sys.exit(exit_status(main()))
