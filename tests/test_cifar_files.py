"""Reading CIFAR-format pickles never runs code from the data folder (`support.cifar_files`)."""

import io
import json
import pickle

import numpy as np
import pytest

from mixer_edu import data
from mixer_edu.support import cifar_files, standin
from mixer_edu.support.errors import DatasetUnavailableError


class WritesMarker:
    """A planted pickle: loading it with `pickle.load` would create the file `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('this ran')",))


def _plant(path, marker, manifest=None):
    """Replace the pickle `path` by a malicious one (and its md5 in the stand-in's manifest,
    as whoever can write into the folder can)."""
    batch = {"data": np.zeros((1, 3072), np.uint8), "labels": [0], "x": WritesMarker(marker)}
    path.write_bytes(pickle.dumps(batch))
    if manifest is not None:
        content = json.loads(manifest.read_text())
        content["md5"][path.name] = standin.md5sum(path)
        manifest.write_text(json.dumps(content))


@pytest.fixture
def small_standin(tmp_path):
    root = tmp_path / "data"
    standin.write_standin(root, train_per_batch=20, test_size=20)
    return root


@pytest.mark.parametrize("name", ["data_batch_3", "batches.meta"])
def test_a_planted_pickle_in_the_standin_runs_nothing_and_the_error_names_it(
    small_standin, tmp_path, name
):
    folder = standin.standin_root(small_standin) / standin.BASE_FOLDER
    marker = tmp_path / "marker"
    _plant(folder / name, marker, manifest=folder / standin.MANIFEST)
    with pytest.raises(DatasetUnavailableError) as error:
        data.load_dataset("standin", train=True, root=small_standin, download=False)
    assert not marker.exists()  # nothing in the file ran
    assert str(folder / name) in str(error.value)
    assert "builtins.exec" in str(error.value) and "nothing in it was run" in str(error.value)
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_a_planted_pickle_in_cifar10_runs_nothing(tmp_path, monkeypatch):
    """The real CIFAR-10 goes through the same reader (here with the md5 check switched off,
    as if the planted file had CIFAR-10's checksum)."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "marker"
    for name in standin.TRAIN_FILES + (standin.TEST_FILE,):
        _plant(folder / name, marker)
    monkeypatch.setattr(
        cifar_files.SafeCIFAR10, "train_list", [[n, None] for n in standin.TRAIN_FILES]
    )
    monkeypatch.setattr(cifar_files.SafeCIFAR10, "test_list", [[standin.TEST_FILE, None]])
    with pytest.raises(DatasetUnavailableError, match="data_batch_1 is not a plain CIFAR-10"):
        data.load_dataset("cifar10", root=tmp_path, download=False)
    assert not marker.exists()


def _python2_style_pickle(value) -> bytes:
    """`value` pickled as the real CIFAR-10 files are (Python 2, protocol 2): arrays rebuilt by
    `numpy.core.multiarray._reconstruct` from a latin-1 string of raw bytes."""

    class Python2Pickler(pickle.Pickler):
        def reducer_override(self, obj):
            if type(obj) is np.ndarray:
                raw = obj.tobytes().decode("latin1")
                state = (1, obj.shape, obj.dtype, False, raw)
                return (cifar_files._RECONSTRUCT, (np.ndarray, (0,), "b"), state)
            return NotImplemented

    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(value)
    return buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def test_a_cifar10_batch_in_its_original_format_is_read_as_plain_data(tmp_path):
    rows = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    batch = {"batch_label": "training batch 1 of 5", "labels": [3, 7], "data": rows}
    path = tmp_path / "data_batch_1"
    path.write_bytes(_python2_style_pickle({**batch, "filenames": ["a.png", "b.png"]}))
    assert b"numpy.core.multiarray\n_reconstruct" in path.read_bytes()
    read = cifar_files.read_cifar_pickle(path)
    assert read["labels"] == [3, 7] and read["batch_label"] == "training batch 1 of 5"
    assert read["data"].dtype == np.uint8 and np.array_equal(read["data"], rows)


def test_the_standin_read_through_the_safe_reader_has_the_generated_pixels(small_standin):
    dataset = data.load_dataset("standin", train=False, root=small_standin, download=False)
    assert isinstance(dataset, cifar_files.SafeCIFAR10)
    images, labels = standin.generate(20, standin.STANDIN_SEED + 1)
    assert np.array_equal(dataset.data, images) and dataset.targets == labels.tolist()
    assert dataset.classes == list(standin.STANDIN_CLASSES)


@pytest.mark.parametrize(
    "value, reason",
    [
        ({"data": np.array([{"a": 1}], dtype=object)}, "dtype object"),
        ({"data": np.zeros(2).view(np.recarray)}, "numpy.rec.recarray"),
        ({"when": __import__("datetime").date(2021, 5, 4)}, "datetime.date"),
        ([1, 2, 3], "holds a list"),
    ],
)
def test_anything_but_a_dict_of_plain_data_is_refused(tmp_path, value, reason):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(value))
    with pytest.raises(DatasetUnavailableError, match=reason) as error:
        cifar_files.read_cifar_pickle(path)
    assert str(path) in str(error.value)


def test_a_truncated_file_is_a_clear_error_naming_it(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": np.zeros((4, 3072), np.uint8), "labels": [0] * 4})[:50])
    with pytest.raises(DatasetUnavailableError, match="data_batch_1 is not a plain CIFAR-10"):
        cifar_files.read_cifar_pickle(path)
