"""Notebooks stay device-correct by construction, and a CPU can tell when they are not.

On a GPU, a batch left on the CPU and fed to a model on the GPU stops the notebook (notebook 04
did that once, in a cell CI could not see fail). tools/device_guard.py makes the same mistake fail
on a CPU; `make test` runs every notebook under it (tools/gpu_check.py --device-guard). These tests
check the guard itself: it catches the mix-up, and the package's own paths pass it.
"""

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import torch

from mixer_edu import create_model
from mixer_edu.data import make_loaders
from mixer_edu.evaluation import predict
from mixer_edu.models import load_model
from mixer_edu.tools.compare import load_images, train_briefly
from mixer_edu.tools.course import cmp, course_device
from mixer_edu.train import train
from tests.test_train import small

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("device_guard", ROOT / "tools" / "device_guard.py")
device_guard = importlib.util.module_from_spec(_spec)
sys.modules["device_guard"] = device_guard
_spec.loader.exec_module(device_guard)
DeviceMixup = device_guard.DeviceMixup

# Notebook 04's cell 24 before it was fixed: the CPU test images into the model trained on the
# course device (on an H200: "Input type (torch.FloatTensor) and weight type
# (torch.cuda.FloatTensor) should be the same").
NOTEBOOK_04_OLD_CELL = """
model, checkpoint = load_model(result.checkpoint)
with torch.no_grad():
    some_images = test_images[:64]
    cmp("reloaded model", model(some_images), result.model(some_images))
"""


@pytest.fixture
def device(monkeypatch):
    """The pretend GPU: the course device, tracked by the guard."""
    monkeypatch.setenv("MIXER_EDU_DEVICE", "cpu:0")
    with device_guard.guard():
        yield course_device()


def test_the_course_device_is_the_guards(device):
    assert device == device_guard.DEVICE and device != torch.device("cpu")


def test_a_cpu_batch_into_a_model_on_the_device_fails_as_on_a_gpu(device):
    model = create_model("mixer_cifar_tiny").to(device)
    with pytest.raises(DeviceMixup, match="parameters on the device but got an input"):
        model(torch.rand(2, 3, 32, 32))
    with pytest.raises(DeviceMixup, match="parameters on the CPU"):
        create_model("mixer_cifar_tiny")(torch.rand(2, 3, 32, 32, device=device))


def test_moved_batches_pass_and_results_come_back_to_the_cpu(device):
    model = create_model("mixer_cifar_tiny").to(device)
    images = torch.rand(2, 3, 32, 32)
    logits = model(images.to(device))
    assert device_guard.on_device(logits) and not device_guard.on_device(images)
    assert logits.device == device  # as `.device` reports it on a GPU
    with pytest.raises(DeviceMixup, match="numpy"):
        logits.detach().numpy()
    assert logits.detach().cpu().numpy().shape == (2, 10)


def test_the_packages_training_loading_and_predicting_pass_the_guard(device, data_root, tmp_path):
    """No false alarm on the package's paths: train, load_model, predict, train_briefly."""
    result = train(small(epochs=1), out=tmp_path / "run", data_root=data_root, progress=False)
    assert device_guard.on_device(next(result.model.parameters()))
    _, test_loader = make_loaders("standin", 32, root=data_root, train_images=32, test_images=32)
    logits, labels = predict(result.model, test_loader)  # moves each batch, returns on the CPU
    assert logits.shape == (32, 10) and not device_guard.on_device(logits)
    reloaded, _ = load_model(result.checkpoint, device=device)
    assert torch.equal(reloaded.head.weight.cpu(), result.model.head.weight.cpu())
    images = load_images("standin", train=True, limit=64)
    run = train_briefly(create_model("mixer_cifar_tiny").to(device), images, images, epochs=1)
    assert 0 <= run.test_acc <= 1


def test_notebook_04s_old_cell_fails_and_its_fixed_cell_passes(device, data_root, tmp_path):
    result = train(small(epochs=1), out=tmp_path / "run", data_root=data_root, progress=False)
    _, test_loader = make_loaders("standin", 32, root=data_root, train_images=32, test_images=64)
    test_images = torch.cat([images for images, _ in test_loader])  # on the CPU, as in the cell
    scope = dict(result=result, test_images=test_images, load_model=load_model, cmp=cmp)
    scope.update(torch=torch, device=device)
    with pytest.raises(DeviceMixup):
        exec(NOTEBOOK_04_OLD_CELL, dict(scope))
    cells = json.loads((ROOT / "notebooks" / "04-Training-On-CIFAR-10.ipynb").read_text())["cells"]
    fixed = next("".join(c["source"]) for c in cells if "reloaded model" in "".join(c["source"]))
    exec(fixed, dict(scope, dataset_label=str))


def _code(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


NOTEBOOKS = sorted(ROOT.glob("notebooks/[0-9][0-9]-*.ipynb")) + sorted(
    ROOT.glob("notebooks/exercises/solutions/[0-9][0-9]-*.ipynb")
)
TRAINING = [
    p
    for p in NOTEBOOKS
    if re.search(r"(?<![.\w])(train|train_briefly|train_seeds|predict)\(", _code(p))
]


def test_the_notebooks_that_train_or_predict_are_found():
    assert {p.name[:2] for p in TRAINING if p.parent.name == "notebooks"} >= {"02", "04", "08"}


@pytest.mark.parametrize("path", TRAINING, ids=lambda path: path.name)
def test_a_notebook_that_trains_or_predicts_picks_its_device_once(path):
    assert _code(path).count("course_device()") == 1, "call course_device() once, at the top"


def test_the_pictures_functions_move_the_images_to_the_model(device):
    """channel_mixing_responses and token_norms run the model themselves, on its device."""
    from mixer_edu.viz.token_norms import token_norms
    from mixer_edu.weights import channel_mixing_responses

    model = create_model("mixer_cifar_tiny").to(device)
    images = torch.rand(2, 3, 32, 32)  # on the CPU, as a notebook's loader gives them
    assert channel_mixing_responses(model, images).shape[0] == 2
    assert token_norms(model, images).shape[0] == 2
