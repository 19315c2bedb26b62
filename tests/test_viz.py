"""The pictures show the numbers they claim to show.

The checks read the arrays each figure draws (`figure.shown` and the `AxesImage` arrays on its
axes), never pixels, and compare them with the model's weights computed independently.
"""

import ast
import copy
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from mixer_edu import create_model, patchify, train, viz
from mixer_edu.models import load_model
from mixer_edu.support.checkpoint import list_snapshots
from mixer_edu.tools import pretrained
from mixer_edu.viz import cli
from mixer_edu.weights import grating, spatial_frequency

from .helpers import randomize_


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """These models are tiny: one thread is as fast, and far faster on a busy machine, where
    two threads wait for each other (measured 1.4 s against 26 s for the training run below)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny():
    return randomize_(create_model("mixer_cifar_tiny")).eval()


def _drawn(ax) -> np.ndarray:
    """The array an axes' image shows, with the gaps (masked) as NaN."""
    return np.ma.filled(ax.images[0].get_array().astype(float), np.nan)


def _tile(canvas, position, height, width):
    top, left = position
    return canvas[top : top + height, left : left + width]


def _assert_tiles_show(canvas, positions, pictures, atol=0.0):
    """Tile k of the canvas, at positions[k], is pictures[k] (`(K, h, w)` or `(K, h, w, 3)`)."""
    pictures = np.asarray(pictures)
    assert len(positions) == len(pictures)
    height, width = pictures.shape[1:3]
    for position, picture in zip(positions, pictures, strict=True):
        np.testing.assert_allclose(_tile(canvas, position, height, width), picture, atol=atol)


def _fc1(model, block):
    """W1 of a Mixer block's token-mixing MLP, read by its timm name: `(D_S, N)` numpy."""
    return model.blocks[block].mlp_tokens.fc1.weight.detach().numpy()


def _known_units():
    """32 units on the 8x8 grid: 16 gratings of known frequency and their negatives, shuffled."""
    cycles = [(cy, cx) for cy in range(4) for cx in range(4)]
    base = torch.stack([grating(8, 8, cy, cx, phase=0.5 * k) for k, (cy, cx) in enumerate(cycles)])
    frequency = [np.hypot(cy / 8, cx / 8) for cy, cx in cycles] * 2
    perm = torch.randperm(32, generator=torch.Generator().manual_seed(1))
    units = torch.cat([base, -base])[perm] + 0.01 * torch.randn(32, 8, 8)
    return units, [frequency[p] for p in perm.tolist()], [p % 16 for p in perm.tolist()]


def test_plain_token_mixing_shows_the_rows_of_fc1_in_order(tiny):
    fig = viz.plot_token_mixing(tiny, block=1, mode="plain")
    panel = fig.shown["blocks"][0]
    assert panel["order"] == list(range(32))
    canvas = _drawn(fig.axes[0])
    np.testing.assert_array_equal(canvas, panel["canvas"])
    _assert_tiles_show(canvas, panel["positions"], _fc1(tiny, 1).reshape(32, 8, 8))


def test_a_panel_title_names_what_a_tile_is_a_units_weights_or_a_tokens_gating_row(tiny):
    assert (
        viz.plot_token_mixing(tiny, 0, mode="plain")
        .axes[0]
        .get_title()
        .startswith("block 0: units 0 to")
    )
    gmlp = create_model("gmlp_cifar_tiny")
    assert (
        viz.plot_token_mixing(gmlp, 0, mode="plain")
        .axes[0]
        .get_title()
        .startswith("block 0: tokens 0 to")
    )
    plt.close("all")


def test_paired_token_mixing_puts_opposites_side_by_side_from_low_to_high_frequency(tiny):
    units, frequency, grating_of = _known_units()
    with torch.no_grad():
        tiny.blocks[0].mlp_tokens.fc1.weight.copy_(units.flatten(1))
    fig = viz.plot_token_mixing(tiny, 0)
    panel = fig.shown["blocks"][0]
    order, canvas = panel["order"], _drawn(fig.axes[0])
    assert len(panel["pairs"]) == 16 and panel["unpaired"] == []
    for i in range(0, 32, 2):
        a, b = order[i], order[i + 1]
        assert grating_of[a] == grating_of[b]  # the same grating, opposite signs
        top_a, left_a = panel["positions"][i]
        top_b, left_b = panel["positions"][i + 1]
        assert top_a == top_b and left_b == left_a + 9  # side by side, one-pixel gap
        np.testing.assert_allclose(_tile(canvas, panel["positions"][i], 8, 8), units[a].numpy())
    pair_frequencies = [frequency[order[i]] for i in range(0, 32, 2)]
    assert pair_frequencies == sorted(pair_frequencies)


def test_figure_size_does_not_depend_on_how_many_pairs_were_found(tiny):
    """nbval compares a notebook figure's "<Figure size WxH with N Axes>" text."""
    random_units = viz.plot_token_mixing(tiny, 0)
    with torch.no_grad():
        tiny.blocks[0].mlp_tokens.fc1.weight.copy_(_known_units()[0].flatten(1))
    all_paired = viz.plot_token_mixing(tiny, 0)
    assert len(random_units.shown["blocks"][0]["pairs"]) != len(
        all_paired.shown["blocks"][0]["pairs"]
    )
    assert repr(random_units) == repr(all_paired)


def test_token_mixing_colours_are_symmetric_around_zero(tiny):
    fig = viz.plot_token_mixing(tiny, 0)
    image = fig.axes[0].images[0]
    largest = np.abs(_fc1(tiny, 0)).max()
    low, high = image.get_clim()
    assert high == pytest.approx(largest) and low == pytest.approx(-largest)
    assert image.get_cmap().name.startswith("RdBu_r")


def test_unit_scale_divides_each_unit_by_its_largest_weight(tiny):
    fig = viz.plot_token_mixing(tiny, 0, mode="plain", scale="unit")
    panel = fig.shown["blocks"][0]
    weight = _fc1(tiny, 0)
    expected = weight / np.abs(weight).max(axis=1, keepdims=True)
    np.testing.assert_allclose(panel["displayed"].reshape(32, 64), expected, rtol=1e-6)
    assert fig.axes[0].images[0].get_clim() == (-1.0, 1.0)


def test_several_blocks_side_by_side_each_show_their_own_weights(tiny):
    fig = viz.plot_token_mixing(tiny, (0, 3), mode="plain", num_units=10)
    for ax, panel in zip(fig.axes[:2], fig.shown["blocks"], strict=True):
        weight = _fc1(tiny, panel["block"])[:10].reshape(10, 8, 8)
        _assert_tiles_show(_drawn(ax), panel["positions"], weight)


def test_with_an_initial_model_the_tiles_show_what_training_changed(tiny):
    initial = randomize_(create_model("mixer_cifar_tiny"), seed=1)
    fig = viz.plot_token_mixing(tiny, 2, mode="plain", initial=initial)
    change = (_fc1(tiny, 2) - _fc1(initial, 2)).reshape(32, 8, 8)
    _assert_tiles_show(_drawn(fig.axes[0]), fig.shown["blocks"][0]["positions"], change, 1e-6)
    assert "What training changed" in fig.get_suptitle()


def test_a_paper_sized_model_shows_the_chosen_number_of_14x14_units():
    model = create_model("mixer_b16_224", num_blocks=1, num_classes=0)
    fig = viz.plot_token_mixing(model, 0, num_units=64, model_name="mixer_b16_224")
    panel = fig.shown["blocks"][0]
    assert panel["units"].shape == (64, 14, 14)
    weight = _fc1(model, 0)
    np.testing.assert_array_equal(panel["units"].reshape(64, 196), weight[panel["order"]])
    assert "14x14" in fig.get_suptitle()


def test_paper_weights_are_plotted_with_their_name_and_skipped_offline(monkeypatch, capsys):
    from timm.models.mlp_mixer import MlpMixer as TimmMlpMixer

    timm_model = TimmMlpMixer(
        num_classes=10, img_size=64, patch_size=16, num_blocks=3, embed_dim=32
    )
    timm_model = randomize_(timm_model)
    monkeypatch.setattr(
        pretrained, "load_pretrained", lambda name: pretrained.from_timm(timm_model)
    )
    fig = viz.plot_paper_token_mixing(block=(0, 1, 2), num_units=8)
    assert "Mixer-B/16" in fig.get_suptitle()
    panel = fig.shown["blocks"][2]
    np.testing.assert_array_equal(
        panel["units"].reshape(8, 16), _fc1(timm_model, 2)[panel["order"]]
    )
    monkeypatch.setattr(pretrained, "load_pretrained", lambda name: None)
    assert viz.plot_paper_token_mixing() is None


def test_stem_figure_shows_the_patch_filters_as_rgb_with_grey_at_zero(tiny):
    fig = viz.plot_stem_filters(tiny)
    conv = tiny.stem.proj.weight.detach().numpy()  # (D, C, P, P)
    filters = conv.transpose(0, 2, 3, 1)  # (D, P, P, C): an RGB image per filter
    np.testing.assert_array_equal(fig.shown["filters"], filters)
    peaks = np.abs(filters).reshape(64, -1).max(axis=1)[:, None, None, None]
    drawn = fig.axes[0].images[0].get_array()
    _assert_tiles_show(drawn, fig.shown["positions"], 0.5 + 0.5 * filters / peaks, atol=1e-6)


def test_patches_figure_shows_patchify_tokens_and_the_patches_in_reading_order():
    image = torch.rand(3, 32, 32)
    fig = viz.plot_patches(image, 4)
    tokens = patchify(image[None], 4)[0].numpy()
    np.testing.assert_array_equal(fig.shown["tokens"], tokens)
    np.testing.assert_array_equal(fig.axes[2].images[0].get_array(), tokens)  # the table
    sequence = fig.axes[1].images[0].get_array()
    for n in (0, 9, 63):
        row, column = divmod(n, 8)
        patch = image[:, 4 * row : 4 * row + 4, 4 * column : 4 * column + 4].permute(1, 2, 0)
        np.testing.assert_allclose(_tile(sequence, fig.shown["positions"][n], 4, 4), patch)


def test_channel_mixing_figure_shows_the_most_selective_hidden_units(tiny):
    image = torch.randn(3, 32, 32)
    fig = viz.plot_channel_mixing(tiny, image, block=2, num_units=6)
    with torch.no_grad():  # the hidden layer of block 2's channel MLP, computed by hand
        x = tiny.blocks[:2](tiny.stem(image[None]))
        block = tiny.blocks[2]
        x = x + block.mlp_tokens(block.norm1(x).transpose(1, 2)).transpose(1, 2)
        hidden = torch.nn.functional.gelu(block.mlp_channels.fc1(block.norm2(x)))[0]  # (64, 256)
    maps = hidden.T.reshape(256, 8, 8)
    chosen = torch.argsort(hidden.std(dim=0), descending=True)[:6].tolist()
    assert fig.shown["units"] == chosen
    for ax, unit in zip(fig.axes[1:7], chosen, strict=True):
        np.testing.assert_allclose(ax.images[0].get_array(), maps[unit].numpy(), atol=1e-5)
        assert ax.get_title() == f"hidden unit {unit}"


def test_token_norms_figure_draws_each_tokens_length_after_each_block(tiny):
    image = torch.randn(3, 32, 32)
    fig = viz.plot_token_norms(tiny, image, dataset="standin")
    with torch.no_grad():  # the residual stream after every block, computed by hand
        x, lengths = tiny.stem(image[None]), []
        for block in tiny.blocks:
            x = block(x)
            lengths.append(x[0].norm(dim=-1).reshape(8, 8))  # (N, C) -> (h, w)
    heatmaps = fig.axes[1 : 1 + len(tiny.blocks)]
    for block, (ax, expected) in enumerate(zip(heatmaps, lengths, strict=True)):
        np.testing.assert_allclose(ax.images[0].get_array(), expected.numpy(), rtol=1e-5)
        assert ax.get_title().startswith(f"after block {block}\nmean length ")
        assert ax.get_xlabel() == "patch column"
        low, high = ax.images[0].get_clim()  # each block on its own scale
        assert low == pytest.approx(expected.min().item(), rel=1e-5)
        assert high == pytest.approx(expected.max().item(), rel=1e-5)
    assert "Token norms" in fig.get_suptitle() and "synthetic stand-in" in fig.get_suptitle()


def test_training_curves_plot_the_metrics_file(tmp_path):
    records = [
        dict(epoch=e, train_loss=2.0 / e, test_loss=2.1 / e, train_acc=0.1 * e, test_acc=0.09 * e)
        for e in (1, 2, 3)
    ]
    for record in records:
        record.update(lr=1e-3, model="mixer_cifar_tiny", dataset="synthetic stand-in")
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    fig = viz.plot_training_curves(tmp_path / "metrics.jsonl")
    loss_axes, accuracy_axes = fig.axes[:2]
    train_loss, test_loss = (line.get_ydata() for line in loss_axes.get_lines())
    np.testing.assert_allclose(train_loss, [r["train_loss"] for r in records])
    np.testing.assert_allclose(test_loss, [r["test_loss"] for r in records])
    train_acc = accuracy_axes.get_lines()[0].get_ydata()
    np.testing.assert_allclose(train_acc, [r["train_acc"] for r in records])
    assert "synthetic stand-in" in fig.get_suptitle()


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    targets = [0, 0, 0, 1, 1, 2]
    predictions = [0, 1, 1, 1, 1, 0]
    fig = viz.plot_confusion_matrix(targets, predictions, ["a", "b", "c"])
    np.testing.assert_array_equal(fig.shown["counts"], [[1, 2, 0], [0, 2, 0], [1, 0, 0]])
    np.testing.assert_allclose(fig.shown["percent"][0], [100 / 3, 200 / 3, 0])
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), fig.shown["percent"])
    assert "accuracy 50.0%" in fig.get_suptitle()


def test_misclassified_shows_only_the_wrong_images_with_both_classes():
    images = torch.rand(6, 3, 8, 8)
    fig = viz.plot_misclassified(images, [0, 1, 2, 0, 1, 2], [0, 2, 2, 1, 1, 0], ["a", "b", "c"])
    assert fig.shown["indices"] == [1, 3, 5]
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0] == "true: b\npredicted: c"
    np.testing.assert_allclose(
        fig.axes[0].images[0].get_array(), images[1].permute(1, 2, 0).numpy()
    )


def test_titles_say_synthetic_stand_in_exactly_when_the_data_was(tiny):
    for dataset, expected in [("standin", True), ("cifar10", False)]:
        figures = [
            viz.plot_token_mixing(tiny, 0, dataset=dataset),
            viz.plot_stem_filters(tiny, dataset=dataset),
            viz.plot_patches(torch.rand(3, 32, 32), 4, dataset=dataset),
            viz.plot_channel_mixing(tiny, torch.randn(3, 32, 32), dataset=dataset),
            viz.plot_confusion_matrix([0, 1], [0, 1], ["a", "b"], dataset=dataset),
        ]
        for fig in figures:
            assert ("synthetic stand-in" in fig.get_suptitle()) is expected
            plt.close(fig)


def test_no_picture_calls_show(tiny, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("plt.show() was called")

    monkeypatch.setattr(plt, "show", refuse)
    viz.plot_token_mixing(tiny, 0)
    viz.plot_stem_filters(tiny)
    viz.plot_patches(torch.rand(3, 32, 32), 4)
    viz.plot_channel_mixing(tiny, torch.randn(3, 32, 32))
    viz.plot_token_norms(tiny, torch.randn(3, 32, 32))


def test_bad_arguments_are_errors_that_name_the_fix(tiny):
    with pytest.raises(ValueError, match="mode must be 'pairs'"):
        viz.plot_token_mixing(tiny, 0, mode="sorted")
    with pytest.raises(ValueError, match="this model has 4 blocks"):
        viz.plot_token_mixing(tiny, 7)
    with pytest.raises(ValueError, match=r"images\[0\]"):
        viz.plot_patches(torch.rand(2, 3, 32, 32), 4)
    with pytest.raises(ValueError, match="not divisible by patch size 5"):
        viz.plot_patches(torch.rand(3, 32, 32), 5)


def test_a_gmlp_model_shows_its_spatial_gating_rows_under_a_title_that_says_so():
    gmlp = randomize_(create_model("gmlp_cifar_tiny"))
    fig = viz.plot_token_mixing(gmlp, 1, mode="plain")
    proj = gmlp.blocks[1].mlp_channels.gate.proj.weight.detach().numpy()  # (N, N) = (64, 64)
    _assert_tiles_show(
        _drawn(fig.axes[0]), fig.shown["blocks"][0]["positions"], proj.reshape(64, 8, 8)
    )
    assert fig.get_suptitle().startswith("Spatial gating weights")
    mixer = viz.plot_token_mixing(create_model("mixer_cifar_tiny"), 0)
    assert mixer.get_suptitle().startswith("Token-mixing units")


# --------------------------------------------------------------------------------------------
# Any device: pictures read from the CPU.
# --------------------------------------------------------------------------------------------


def test_to_numpy_detaches_and_moves_to_the_cpu(monkeypatch):
    moved = []
    cpu = torch.Tensor.cpu

    def spy(tensor, *args, **kwargs):
        moved.append(tensor.device)
        return cpu(tensor, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", spy)
    weight = torch.randn(3, 4, requires_grad=True)  # .numpy() alone refuses this one
    array = viz.to_numpy(weight * 2)
    assert moved, "to_numpy must call .cpu(): a CUDA or MPS tensor has no numpy view"
    np.testing.assert_array_equal(array, (weight * 2).detach().numpy())
    np.testing.assert_array_equal(viz.to_numpy([[1, 2]]), np.array([[1, 2]]))


def test_the_pictures_turn_tensors_into_numpy_only_through_to_numpy():
    """A bare `tensor.numpy()` fails for a model on a GPU (notebook 06 on CUDA: "can't convert
    cuda:0 device type tensor to numpy"); `to_numpy` moves to the CPU first."""
    package = Path(viz.__file__).parent
    offenders = []
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef) or function.name == "to_numpy":
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Attribute) and node.attr == "numpy":
                    offenders.append(f"{path.name}:{node.lineno} in {function.name}")
    assert offenders == [], f"use to_numpy(tensor) instead of tensor.numpy(): {offenders}"


ACCELERATORS = [
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
    pytest.param(
        "mps",
        marks=pytest.mark.skipif(not torch.backends.mps.is_available(), reason="no MPS device"),
    ),
]


@pytest.mark.parametrize("device", ["cpu", *ACCELERATORS])
def test_every_picture_takes_a_model_and_tensors_on_any_device(tiny, device):
    """The same numbers as from CPU copies (within float tolerance: GPU kernels differ), for a
    model that still tracks gradients and tensors that live on the device."""
    model = copy.deepcopy(tiny).to(device)
    image = torch.rand(3, 32, 32)
    targets, predictions = torch.tensor([0, 1, 2, 1]), torch.tensor([0, 2, 2, 0])
    probabilities = torch.rand(4, 3, requires_grad=True)
    records = [dict(epoch=1, train_loss=1.0, test_loss=1.5, train_acc=0.5, test_acc=0.4)]
    on = dict(
        token=viz.plot_token_mixing(model, 0, initial=model),
        stem=viz.plot_stem_filters(model),
        channels=viz.plot_channel_mixing(model, image.to(device), 1, num_units=4),
        patches=viz.plot_patches(image.to(device), 4),
        confusion=viz.plot_confusion_matrix(targets.to(device), predictions.to(device), "abc"),
        mistakes=viz.plot_misclassified(
            image.expand(4, 3, 32, 32).to(device),
            targets.to(device),
            predictions.to(device),
            "abc",
            probabilities=probabilities.to(device),
        ),
        curves=viz.plot_training_curves(
            [{k: torch.tensor(v, device=device) for k, v in records[0].items()}]
        ),
    )
    assert not on["token"].shown["blocks"][0]["units"].any()  # the model minus itself
    reference = dict(
        stem=viz.plot_stem_filters(tiny),
        channels=viz.plot_channel_mixing(tiny, image, 1, num_units=4),
        patches=viz.plot_patches(image, 4),
        confusion=viz.plot_confusion_matrix(targets, predictions, "abc"),
        curves=viz.plot_training_curves(records),
    )
    np.testing.assert_array_equal(on["stem"].shown["filters"], reference["stem"].shown["filters"])
    np.testing.assert_allclose(
        on["channels"].shown["responses"], reference["channels"].shown["responses"], atol=1e-4
    )
    np.testing.assert_array_equal(
        on["patches"].shown["tokens"], reference["patches"].shown["tokens"]
    )
    np.testing.assert_array_equal(
        on["confusion"].shown["counts"], reference["confusion"].shown["counts"]
    )
    assert on["mistakes"].shown["indices"] == [1, 3]
    np.testing.assert_allclose(
        on["curves"].shown["test_acc"], reference["curves"].shown["test_acc"]
    )


# --------------------------------------------------------------------------------------------
# A real training run (the training CLI, a few steps on the stand-in) rendered end to end.
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("viz-run")
    argv = [
        "--fast",
        "--epochs", "2",
        "--train-images", "128",
        "--test-images", "64",
        "--batch-size", "32",
        "--data-root", str(root / "data"),
        "--out", str(root / "run"),
        "--no-progress",
    ]  # fmt: skip
    assert train.main(argv) == 0
    return root


def test_over_training_grid_follows_the_same_units_through_every_snapshot(trained_run):
    snapshots = list_snapshots(trained_run / "run")
    fig = viz.plot_token_mixing_over_training(trained_run / "run", num_units=6)
    shown = fig.shown
    assert shown["epochs"] == [0, 1, 2]
    canvas = _drawn(fig.axes[0])
    for e, path in enumerate(snapshots):
        units = _fc1(load_model(path)[0], 0)[shown["order"]].reshape(6, 8, 8)
        _assert_tiles_show(canvas, shown["positions"][e * 6 : (e + 1) * 6], units)
    final = torch.from_numpy(shown["history"][-1])
    frequencies = spatial_frequency(final).tolist()  # the last epoch decides the order
    paired = shown["paired"]
    assert frequencies[paired:] == sorted(frequencies[paired:])
    assert "synthetic stand-in" in fig.get_suptitle()


def test_change_over_training_starts_white_and_shows_each_epoch_minus_the_first(trained_run):
    fig = viz.plot_token_mixing_over_training(trained_run / "run", num_units=4, change=True)
    history = fig.shown["history"]
    assert not history[0].any()  # epoch 0 minus epoch 0
    first, last = (load_model(path)[0] for path in list_snapshots(trained_run / "run")[::2])
    weight = _fc1(last, 0) - _fc1(first, 0)
    expected = weight[fig.shown["order"]].reshape(4, 8, 8)
    np.testing.assert_allclose(history[2], expected, atol=1e-7)


def test_over_training_keeps_the_first_and_last_epoch_when_rows_are_limited(trained_run):
    fig = viz.plot_token_mixing_over_training(trained_run / "run", num_units=2, max_rows=2)
    assert fig.shown["epochs"] == [0, 2]


def test_the_cli_writes_every_picture_of_a_checkpoint_from_the_training_cli(trained_run, capsys):
    out = trained_run / "pictures"
    argv = [
        str(trained_run / "run" / "checkpoint.pt"),
        "--out", str(out),
        "--data-root", str(trained_run / "data"),
        "--test-images", "64",
    ]  # fmt: skip
    assert cli.main(argv) == 0  # what `python -m mixer_edu.viz ...` runs
    printed = capsys.readouterr().out.split()
    assert {path.rsplit("/", 1)[-1] for path in printed} == {
        "token_mixing_block_00.png",
        "token_mixing_block_01.png",
        "token_mixing_block_02.png",
        "token_mixing_block_03.png",
        "token_mixing_block_00_plain.png",
        "stem_filters.png",
        "training_curves.png",
        "token_mixing_change_block_00.png",
        "token_mixing_change_block_01.png",
        "token_mixing_change_block_02.png",
        "token_mixing_change_block_03.png",
        "token_mixing_over_training.png",
        "token_mixing_change_over_training.png",
        "token_mixing_change_over_training.gif",
        "patches.png",
        "channel_mixing_block_00.png",
        "channel_mixing_block_03.png",
        "confusion_matrix.png",
        "misclassified.png",
    }
    for path in printed:
        with open(path, "rb") as f:
            assert f.read(8).startswith((b"\x89PNG", b"GIF8")), path
    with Image.open(out / "token_mixing_change_over_training.gif") as gif:
        assert gif.n_frames == 3  # epochs 0, 1 and 2


def test_the_cli_runs_as_a_module():
    command = [sys.executable, "-m", "mixer_edu.viz", "--help"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "CHECKPOINT" in result.stdout.upper()


def test_the_cli_explains_a_missing_checkpoint(tmp_path, capsys):
    assert cli.main([str(tmp_path / "nothing.pt"), "--out", str(tmp_path / "pictures")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
