"""The contracts timm's own model tests (`tests/test_models.py`) check on every timm model, on ours.

TorchScript, `torch.fx` (and timm's `create_feature_extractor` built on it), `torch.export`,
`forward_intermediates` against `forward_features`, `features_only=True`, and a `pretrained_cfg`
that tells timm's data tools how to prepare the images. Each runs on a CIFAR Mixer and gMLP, and
on the /16 patching of the paper's models with fewer, narrower blocks (224x224 images are slow on
a CPU).
"""

import warnings

import pytest
import timm
import torch
from timm.data import resolve_data_config, resolve_model_data_config
from timm.layers import GatedMlp as TimmGatedMlp
from timm.models import create_feature_extractor, get_graph_node_names
from timm.models._features import FeatureGetterNet
from timm.models.mlp_mixer import MlpMixer as TimmMlpMixer
from timm.models.mlp_mixer import SpatialGatingBlock as TimmSpatialGatingBlock
from torchvision.models import feature_extraction as fx_feature_extraction

from mixer_edu import MlpMixer, create_model, data
from mixer_edu.gmlp import GMlp
from mixer_edu.support.validation import to_pair
from mixer_edu.tools import pretrained

from .helpers import randomize_

# name -> overrides: the CIFAR models as they are; the /16 models with 3 blocks of 64 channels
# (3: timm's features_only takes the last three).
MODELS = {
    "mixer_cifar_small": {},
    "gmlp_cifar_small": {},
    "mixer_s16_224": dict(num_blocks=3, embed_dim=64),
    "gmlp_ti16_224": dict(num_blocks=3, embed_dim=64),
}


def _model(name: str) -> torch.nn.Module:
    """The model, with random weights everywhere (the zero head would hide the blocks), in eval."""
    return randomize_(create_model(name, **MODELS[name])).eval()


def _images(model: torch.nn.Module, batch: int = 2) -> torch.Tensor:
    stem = model.model.stem if hasattr(model, "model") else model.stem  # a feature extractor's
    return torch.randn(batch, stem.in_chans, *to_pair(stem.img_size))


@pytest.fixture(autouse=True)
def _quiet_deprecations():
    """torch.jit is deprecated in recent torch; timm's tests, and timm users, still call it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.jit")
        yield


@pytest.mark.parametrize("name", MODELS)
def test_torchscript_compiles_the_model_and_gives_its_logits(name):
    model = _model(name)
    images = _images(model)
    scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(images), model(images), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_torch_jit_trace_records_the_model_without_warnings_and_gives_its_logits(name):
    model = _model(name)
    images = _images(model)
    with torch.no_grad(), warnings.catch_warnings():
        # The input checks' Python `if`s on shapes would be frozen into the trace, with a warning.
        warnings.simplefilter("error", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, images)
        other = _images(model)
        torch.testing.assert_close(traced(other), model(other), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_fx_symbolic_trace_gives_the_models_logits(name):
    model = _model(name)
    images = _images(model)
    graph = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        torch.testing.assert_close(graph(images), model(images), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_timms_feature_extractor_returns_each_blocks_tokens_from_the_fx_graph(name):
    model = _model(name)
    images = _images(model)
    _, nodes = get_graph_node_names(model)
    num_blocks = len(model.blocks)
    # The last node inside block i is the block's output.
    outputs = {[n for n in nodes if n.startswith(f"blocks.{i}.")][-1]: i for i in range(num_blocks)}
    extractor = create_feature_extractor(model, return_nodes=list(outputs))
    with torch.no_grad():
        got = extractor(images)
        expected = model.forward_intermediates(images, output_fmt="NLC", intermediates_only=True)
    for node, i in outputs.items():
        torch.testing.assert_close(got[node], expected[i], rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore:NOTE. The nodes obtained by tracing")  # torchvision's advice
@pytest.mark.parametrize("name", MODELS)
def test_fx_feature_extractor_trains_with_drop_path_and_dropout(name):
    model = create_model(
        name, drop_path_rate=0.2, proj_drop_rate=0.1, drop_rate=0.1, **MODELS[name]
    )
    train_nodes, eval_nodes = fx_feature_extraction.get_graph_node_names(model)
    extractor = fx_feature_extraction.create_feature_extractor(
        model, train_return_nodes=[train_nodes[-1]], eval_return_nodes=[eval_nodes[-1]]
    ).train()
    extractor(_images(model, batch=4))[train_nodes[-1]].mean().backward()
    missing = [n for n, p in extractor.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("name", MODELS)
def test_torch_export_exports_the_model_for_any_batch_size(name):
    model = _model(name)
    batch = torch.export.Dim("batch", min=2, max=64)
    exported = torch.export.export(
        model, (_images(model, batch=3),), dynamic_shapes={"images": {0: batch}}
    ).module()
    images = _images(model, batch=5)
    with torch.no_grad():
        torch.testing.assert_close(exported(images), model(images), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_the_input_checks_raise_in_eager_mode_and_stand_aside_for_tracers(name):
    model = _model(name)
    images = _images(model, batch=1)
    wrong = torch.cat([images, images], dim=2)  # twice as high
    with pytest.raises(ValueError, match="resize them"):
        model(wrong)
    graph = torch.fx.symbolic_trace(model)  # the checks are not in the graph
    assert "check" not in graph.code
    with pytest.raises(ValueError, match="resize them"):  # and the eager model keeps them
        model(wrong)


@pytest.mark.parametrize("name", MODELS)
def test_forward_intermediates_ends_with_forward_features_bit_for_bit(name):
    model = _model(name)
    images = _images(model)
    with torch.no_grad():
        final, intermediates = model.forward_intermediates(images)
        assert torch.equal(final, model.forward_features(images))
        assert len(intermediates) == len(model.blocks)


def _timm_twin(model: MlpMixer) -> TimmMlpMixer:
    """timm's MlpMixer (or gMLP) with our model's architecture."""
    config = dict(
        num_classes=model.num_classes,
        img_size=model.stem.img_size,
        patch_size=model.stem.patch_size,
        num_blocks=len(model.blocks),
        embed_dim=model.embed_dim,
    )
    if isinstance(model, GMlp):
        config |= dict(block_layer=TimmSpatialGatingBlock, mlp_layer=TimmGatedMlp, mlp_ratio=6)
    return TimmMlpMixer(**config)


@pytest.mark.parametrize("name", MODELS)
def test_features_only_gives_the_last_three_blocks_maps_as_timms_mixer_does(name):
    features = create_model(name, features_only=True, **MODELS[name])
    theirs = FeatureGetterNet(_timm_twin(features.model), out_indices=3)  # as timm builds it
    randomize_(features)
    theirs.load_state_dict(features.state_dict(), strict=True)  # both pruned the same way
    assert features.feature_info.channels() == theirs.feature_info.channels()
    assert features.feature_info.reduction() == theirs.feature_info.reduction()
    images = _images(features)
    with torch.no_grad():
        got, expected = features(images), theirs.eval()(images)
    assert len(got) == len(expected) == 3
    for ours, timms in zip(got, expected, strict=True):
        assert ours.shape[1] == features.feature_info.channels()[0]
        torch.testing.assert_close(ours, timms, rtol=0, atol=1e-5)


def test_features_only_takes_out_indices_as_timm_does():
    features = create_model("mixer_cifar_tiny", features_only=True, out_indices=[0, -1])
    assert features.out_indices == [0, 3]
    assert [f.shape for f in features(torch.randn(2, 3, 32, 32))] == [(2, 64, 8, 8)] * 2
    with pytest.raises(TypeError, match="features_only"):
        create_model("mixer_cifar_tiny", out_indices=2)


@pytest.mark.parametrize("name", ["mixer_s32_224", "mixer_b16_224", "gmlp_ti16_224"])
def test_timms_data_config_for_a_paper_model_is_timms_for_the_same_name(name):
    ours, theirs = create_model(name, num_blocks=1), timm.create_model(name)
    assert resolve_model_data_config(ours) == resolve_model_data_config(theirs)
    assert resolve_data_config(model=ours)["mean"] == (0.5, 0.5, 0.5)  # not ImageNet's
    for key in ("num_classes", "first_conv", "classifier", "fixed_input_size", "input_size"):
        assert ours.pretrained_cfg[key] == theirs.pretrained_cfg[key], key
    assert ours.default_cfg is ours.pretrained_cfg


@pytest.mark.parametrize("name", ["mixer_cifar_tiny", "gmlp_cifar_small"])
def test_timms_data_config_for_a_cifar_model_is_the_courses_preprocessing(name):
    model = create_model(name)
    config = resolve_model_data_config(model)
    assert config["mean"] == data.CIFAR10_MEAN and config["std"] == data.CIFAR10_STD
    assert config["input_size"] == (3, 32, 32) and config["crop_pct"] == 1.0


def test_pretrained_cfg_describes_the_model_as_built_and_names_real_parameters():
    model = create_model("mixer_cifar_tiny", num_classes=3, img_size=(32, 48), in_chans=1)
    cfg = model.pretrained_cfg
    assert cfg["input_size"] == (1, 32, 48) and cfg["num_classes"] == 3
    parameters = model.state_dict()
    assert (
        cfg["first_conv"] + ".weight" in parameters and cfg["classifier"] + ".weight" in parameters
    )
    features = create_model("mixer_cifar_tiny", features_only=True)
    assert "classifier" not in features.pretrained_cfg
    assert features.pretrained_cfg["mean"] == data.CIFAR10_MEAN


def test_create_model_accepts_pretrained_false_and_explains_pretrained_true():
    model = create_model("mixer_cifar_tiny", pretrained=False)
    assert isinstance(model, MlpMixer)
    with pytest.raises(ValueError, match=r"tools\.pretrained\.load_pretrained"):
        create_model("mixer_b16_224", pretrained=True)


@pytest.mark.parametrize(
    "img_size, patch_size", [((32, 48), (4, 8)), ((16, 40), 8)], ids=["both", "images"]
)
def test_from_timm_takes_a_rectangular_mixer(img_size, patch_size):
    theirs = TimmMlpMixer(
        num_classes=5, img_size=img_size, patch_size=patch_size, num_blocks=2, embed_dim=24
    )
    ours = pretrained.from_timm(randomize_(theirs).eval())
    assert ours.stem.grid_size == theirs.stem.grid_size
    images = torch.randn(2, 3, *to_pair(img_size))
    with torch.no_grad():
        torch.testing.assert_close(ours(images), theirs(images), rtol=0, atol=1e-5)
