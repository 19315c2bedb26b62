import pytest
import torch

from mixer_edu import create_model
from mixer_edu.baselines import SmallViT, count_parameters, create_baseline
from mixer_edu.permutation import ImagePermutation, permute_mixer
from mixer_edu.tools.compare import ImageData, accuracy, format_runs, train_briefly


@pytest.mark.parametrize("name", ["cnn_cifar_tiny", "vit_cifar_tiny"])
def test_baselines_classify_cifar_sized_images_with_about_the_tiny_mixers_parameters(name):
    torch.manual_seed(0)
    model = create_baseline(name)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    mixer = count_parameters(create_model("mixer_cifar_tiny"))
    assert abs(count_parameters(model) - mixer) < 0.1 * mixer  # a comparison at equal size


def test_unknown_baseline_and_heads_that_do_not_divide_the_width_are_refused():
    with pytest.raises(ValueError, match="cnn_cifar_tiny"):
        create_baseline("resnet50")
    with pytest.raises(ValueError, match="num_heads"):
        SmallViT(embed_dim=64, num_heads=5)


def test_patch_and_pixel_shuffle_moves_whole_patches_and_shuffles_pixels_inside_them_alike():
    permutation = ImagePermutation.patches_and_pixels(image_size=8, patch_size=4, seed=1)
    assert sorted(permutation.order.tolist()) == list(range(64))  # a permutation of the pixels
    images = torch.arange(64.0).reshape(1, 1, 8, 8)
    shuffled = permutation(images)
    for n in range(4):  # output patch n holds exactly the pixels of input patch patch_order[n]
        source = permutation.patch_order[n].item()
        out = shuffled[0, 0, (n // 2) * 4 : (n // 2) * 4 + 4, (n % 2) * 4 : (n % 2) * 4 + 4]
        src = images[0, 0, (source // 2) * 4 : (source // 2) * 4 + 4, (source % 2) * 4 :][:, :4]
        assert torch.equal(out.flatten(), src.flatten()[permutation.pixel_order])
    assert torch.equal(permutation.inverse()(shuffled), images)


def test_global_shuffle_is_one_fixed_permutation_for_every_image_and_channel():
    permutation = ImagePermutation.global_pixels(image_size=8, seed=0)
    images = torch.randn(3, 2, 8, 8)
    shuffled = permutation(images)
    assert torch.equal(shuffled[1, 0], permutation(images[1:2, 0:1])[0, 0])
    assert torch.equal(permutation.inverse()(shuffled), images)
    assert not torch.equal(shuffled, images)


def test_a_mixer_with_rearranged_weights_gives_the_same_logits_on_permuted_images():
    torch.manual_seed(0)
    model = create_model("mixer_cifar_tiny").eval()
    torch.nn.init.normal_(model.head.weight, std=0.1)  # a zero head would hide any difference
    permutation = ImagePermutation.patches_and_pixels(image_size=32, patch_size=4, seed=3)
    twin = permute_mixer(model, permutation)
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        original, permuted = model(images), twin(permutation(images))
        assert torch.allclose(permuted, original, atol=1e-5)
        assert not torch.allclose(model(permutation(images)), original, atol=1e-3)


def test_no_rearrangement_of_a_mixer_undoes_a_global_shuffle():
    model = create_model("mixer_cifar_tiny")
    with pytest.raises(ValueError, match="global shuffle"):
        permute_mixer(model, ImagePermutation.global_pixels(32))


def _toy_data(n: int, seed: int) -> ImageData:
    """Two classes a linear model separates: bright images and dark images."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    noise = torch.randint(0, 60, (n, 3, 32, 32), generator=generator)
    images = (noise + 160 * labels[:, None, None, None]).to(torch.uint8)
    return ImageData(images, labels, ("dark", "bright"), "toy")


def test_train_briefly_learns_an_easy_task_and_is_reproducible():
    train, test = _toy_data(128, seed=0), _toy_data(64, seed=1)
    runs = {}
    for name in ("first", "second"):
        torch.manual_seed(0)
        model = create_baseline("cnn_cifar_tiny", num_classes=2)
        runs[name] = train_briefly(model, train, test, epochs=2, batch_size=32, lr=3e-3)
    first, second = runs["first"], runs["second"]
    assert first.test_acc > 0.9 and len(first.test_acc_per_epoch) == 2
    assert first.test_acc == second.test_acc and first.per_class_acc == second.per_class_acc
    assert accuracy(first.model, test)[0] == first.test_acc
    assert "params" in format_runs(runs).splitlines()[0]


def _weights_after_a_brief_run(seed: int, caller_seed: int) -> list[torch.Tensor]:
    torch.manual_seed(0)  # the same initial weights every time
    model = create_model("mixer_cifar_tiny", num_classes=2, drop_path_rate=0.5)
    torch.manual_seed(caller_seed)
    caller_state = torch.get_rng_state()
    train = _toy_data(64, seed=0)
    train_briefly(model, train, train, epochs=1, batch_size=32, seed=seed)
    assert torch.equal(torch.get_rng_state(), caller_state)  # the caller's random state is kept
    return [p.detach().clone() for p in model.parameters()]


def test_train_briefly_draws_batches_crops_and_drop_path_from_its_seed_alone():
    reference = _weights_after_a_brief_run(seed=0, caller_seed=1)
    same_seed = _weights_after_a_brief_run(seed=0, caller_seed=2)  # DropPath must not use it
    other_seed = _weights_after_a_brief_run(seed=1, caller_seed=1)
    assert all(torch.equal(a, b) for a, b in zip(reference, same_seed, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(reference, other_seed, strict=True))


def test_the_papers_table1_parameter_counts_match_the_models_we_build():
    from mixer_edu.paper import TABLE1_PARAMS_M

    for name, millions in TABLE1_PARAMS_M.items():
        with torch.device("meta"):
            model = create_model(name)
        without_head = count_parameters(model) - count_parameters(model.head)
        assert round(without_head / 1e6) == millions, name


def test_the_papers_table1_shapes_are_the_shapes_of_the_models_we_build():
    from mixer_edu.paper import TABLE1

    for name, spec in TABLE1.items():
        with torch.device("meta"):
            model = create_model(name)
        block = model.blocks[0]
        assert model.stem.proj.kernel_size == (spec.patch_size, spec.patch_size), name
        assert (len(model.blocks), model.embed_dim) == (spec.num_layers, spec.hidden_size), name
        assert model.num_tokens == spec.sequence_length == (224 // spec.patch_size) ** 2, name
        assert block.mlp_tokens.fc1.out_features == spec.mlp_dim_tokens, name
        assert block.mlp_channels.fc1.out_features == spec.mlp_dim_channels, name


def test_train_seeds_runs_one_brief_run_per_seed_and_reports_their_range():
    from mixer_edu.tools.compare import format_seed_runs, train_seeds

    train, test = _toy_data(64, seed=0), _toy_data(32, seed=1)
    built = []

    def build(seed):
        built.append(seed)
        torch.manual_seed(seed)
        return create_baseline("cnn_cifar_tiny", num_classes=2)

    runs = train_seeds(build, train, test, epochs=1, seeds=(0, 1, 2), batch_size=32)
    assert built == [0, 1, 2] and len(runs) == 3
    again = train_briefly(build(1), train, test, epochs=1, batch_size=32, seed=1)
    assert again.test_acc == runs[1].test_acc  # seed 1 is the same run as train_briefly's
    table = format_seed_runs({"cnn": runs})
    low, high = min(r.test_acc for r in runs), max(r.test_acc for r in runs)
    assert f"({low:5.1%} - {high:5.1%})" in table.splitlines()[1]
    assert "3 seeds each" in table.splitlines()[0]


def test_the_papers_table2_has_each_family_in_both_pretraining_groups():
    from mixer_edu.paper import TABLE2

    groups = {(row.family, row.pretraining) for row in TABLE2}
    assert len(groups) == len(TABLE2) == 6
    assert all(50 < row.imagenet_top1 < 100 and row.throughput > 0 for row in TABLE2)
