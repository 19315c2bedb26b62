import subprocess
import sys

import pytest
import torch

from mixer_edu import MlpMixer, create_model, list_models, model_config
from mixer_edu.gmlp import GMlp
from mixer_edu.models import MODELS
from mixer_edu.paper import TABLE1_PARAMS_M  # the paper's published numbers, with their source

PAPER_MODELS = [
    "mixer_s32_224",
    "mixer_s16_224",
    "mixer_b32_224",
    "mixer_b16_224",
    "mixer_l32_224",
    "mixer_l16_224",
    "mixer_h14_224",
]


def test_list_models_has_the_paper_family_and_cifar_models():
    names = list_models()
    assert names[:7] == PAPER_MODELS
    assert {"mixer_cifar_tiny", "mixer_cifar_small", "mixer_cifar_base"} <= set(names)


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_parameter_counts_match_table_1_of_the_paper(name):
    with torch.device("meta"):  # shapes only: no memory is allocated for the weights
        model = create_model(name, num_classes=0)
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    assert round(millions) == TABLE1_PARAMS_M[name]


def test_h14_has_the_papers_shape():
    config = model_config("mixer_h14_224")
    assert (config["patch_size"], config["num_blocks"], config["embed_dim"]) == (14, 32, 1280)
    with torch.device("meta"):
        block = create_model("mixer_h14_224").blocks[0]
    assert block.mlp_tokens.fc1.out_features == 640  # D_S
    assert block.mlp_channels.fc1.out_features == 5120  # D_C
    assert block.mlp_tokens.fc1.in_features == 256  # (224 / 14) ** 2 tokens


@pytest.mark.parametrize("name", ["mixer_s32_224", "mixer_b16_224", "mixer_l32_224"])
def test_paper_models_have_timms_shapes(name):
    import timm

    with torch.device("meta"):
        ours = create_model(name).state_dict()
        theirs = timm.create_model(name).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


@pytest.mark.parametrize("name", ["mixer_cifar_tiny", "mixer_cifar_small", "mixer_cifar_base"])
def test_cifar_models_classify_32x32_images_into_10_classes(name):
    model = create_model(name)
    assert isinstance(model, MlpMixer) and model.num_tokens == 64
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_overrides_change_the_configuration():
    model = create_model("mixer_cifar_tiny", num_classes=3, drop_path_rate=0.1)
    assert model.head.out_features == 3
    assert model.blocks[0].drop_path.drop_prob == pytest.approx(0.1)


def test_unknown_model_name_lists_the_known_ones_and_suggests_the_closest():
    expected = r"must be one of 'mixer_s32_224'.*got 'mixer_b16'\. Did you mean 'mixer_b16_224'"
    with pytest.raises(ValueError, match=expected):
        create_model("mixer_b16")
    with pytest.raises(ValueError, match="got None"):
        create_model(None)


def test_the_registry_names_the_class_of_every_model():
    assert {spec.model_class for spec in MODELS.values()} == {MlpMixer, GMlp}
    for name, spec in MODELS.items():
        assert type(create_model(name, num_classes=0, num_blocks=1)) is spec.model_class


def test_unbatched_image_is_a_value_error_naming_the_fix():
    model = create_model("mixer_cifar_tiny")
    with pytest.raises(ValueError, match=r"\(3, 32, 32\).*unsqueeze\(0\)"):
        model(torch.randn(3, 32, 32))


def test_wrong_channel_count_is_a_value_error_naming_the_fix():
    model = create_model("mixer_cifar_tiny")
    with pytest.raises(ValueError, match=r"1 channels.*in_chans=3"):
        model(torch.randn(2, 1, 32, 32))


def test_validation_survives_python_optimize_mode():
    """`python -O` strips asserts; the package's checks must still raise."""
    code = """
import torch, mixer_edu
checks = [
    lambda: mixer_edu.DropPath(1.5),
    lambda: mixer_edu.create_model("mixer_cifar_tiny")(torch.zeros(3, 32, 32)),
    lambda: mixer_edu.create_model("mixer_cifar_tiny")(torch.zeros(1, 3, 64, 64)),
    lambda: mixer_edu.MlpMixer(img_size=30, patch_size=4),
    lambda: mixer_edu.create_model("nope"),
]
for check in checks:
    try:
        check()
    except ValueError:
        continue
    raise SystemExit("a check did not raise under python -O")
"""
    result = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + result.stdout
