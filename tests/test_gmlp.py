import pytest
import torch
from timm.models.mlp_mixer import MlpMixer as TimmMlpMixer
from timm.models.mlp_mixer import SpatialGatingBlock as TimmSpatialGatingBlock
from timm.models.mlp_mixer import SpatialGatingUnit as TimmSpatialGatingUnit

from mixer_edu import create_model, list_models
from mixer_edu.gmlp import GMlp, SpatialGatingBlock, SpatialGatingUnit

from .helpers import randomize_
from .timm_equivalence import assert_equivalent_to_timm, assert_same_as_timm_by_name, images_for

GMLP_MODELS = ["gmlp_ti16_224", "gmlp_s16_224", "gmlp_b16_224"]

CONFIGS = [
    dict(num_classes=10, img_size=32, patch_size=4, num_blocks=2, embed_dim=32),
    dict(num_classes=5, img_size=48, patch_size=8, num_blocks=3, embed_dim=24, mlp_ratio=4),
    dict(num_classes=0, img_size=32, patch_size=8, num_blocks=1, embed_dim=16, in_chans=1),
]


def _timm_gmlp(**config) -> TimmMlpMixer:
    """timm's gMLP exactly as its `gmlp_*` model functions build it."""
    from timm.layers import GatedMlp

    config = {"mlp_ratio": 6, **config}
    return TimmMlpMixer(block_layer=TimmSpatialGatingBlock, mlp_layer=GatedMlp, **config)


def test_spatial_gating_unit_equals_timms():
    ours = randomize_(SpatialGatingUnit(dim=24, num_tokens=9))
    theirs = TimmSpatialGatingUnit(dim=24, seq_len=9)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(3, 9, 24)
    out = ours(x)
    assert out.shape == (3, 9, 12)  # the gate halves the channels
    torch.testing.assert_close(out, theirs(x), rtol=0, atol=1e-6)


def test_gate_norm_uses_eps_1e5_and_block_norm_1e6_like_timm():
    ours = randomize_(SpatialGatingBlock(dim=16, num_tokens=4))
    assert ours.norm.eps == 1e-6 and ours.spatial_gating.norm.eps == 1e-5
    theirs = TimmSpatialGatingBlock(dim=16, seq_len=4, mlp_ratio=6)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    # Inputs with a variance near eps: a wrong eps changes the normalised values visibly.
    x = torch.randn(2, 4, 16) * 3e-3
    torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), rtol=0, atol=1e-6)


def test_spatial_gating_block_equals_timm_with_drop_path_under_the_same_seed():
    ours = randomize_(SpatialGatingBlock(dim=16, num_tokens=9, drop_path=0.4))
    theirs = TimmSpatialGatingBlock(dim=16, seq_len=9, mlp_ratio=6, drop_path=0.4)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(32, 9, 16)
    torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), rtol=0, atol=1e-5)
    torch.manual_seed(3)
    a = ours.train()(x)
    torch.manual_seed(3)
    b = theirs.train()(x)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert not torch.allclose(a, ours.eval()(x))  # paths really were dropped


@pytest.mark.parametrize("config", CONFIGS)
def test_gmlp_checkpoints_load_strictly_both_ways_and_give_the_same_logits(config):
    assert_equivalent_to_timm(GMlp(**config), _timm_gmlp(**config), images_for(config))


def test_gmlp_ti16_equals_timm_model_of_the_same_name():
    assert_same_as_timm_by_name("gmlp_ti16_224")


@pytest.mark.parametrize("name", GMLP_MODELS)
def test_gmlp_models_have_timms_keys_and_shapes(name):
    import timm

    with torch.device("meta"):  # shapes only: no memory is allocated for the weights
        ours = create_model(name)
        theirs = timm.create_model(name)
    assert isinstance(ours, GMlp)
    ours_shapes = {k: v.shape for k, v in ours.state_dict().items()}
    assert ours_shapes == {k: v.shape for k, v in theirs.state_dict().items()}


def test_gmlp_names_are_listed_and_cifar_gmlps_classify_32x32_images():
    assert set(GMLP_MODELS) | {"gmlp_cifar_tiny", "gmlp_cifar_small"} <= set(list_models())
    model = create_model("gmlp_cifar_tiny")
    assert model.num_tokens == 64 and model.spatial_weights().shape == (64, 64)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_near_identity_init_makes_the_unit_return_the_first_half():
    model = create_model("gmlp_cifar_tiny")  # the gate init must survive the model's init
    unit = model.blocks[0].spatial_gating
    assert torch.equal(unit.proj.bias, torch.ones(64))
    assert unit.proj.weight.abs().max() < 1e-5
    x = torch.randn(2, 64, 384)
    torch.testing.assert_close(unit(x), x[..., :192], rtol=0, atol=1e-4)


def test_without_near_identity_init_the_gate_starts_as_random_mixing():
    model = create_model("gmlp_cifar_tiny", near_identity_gate=False)
    unit = model.blocks[0].spatial_gating
    assert unit.proj.bias.abs().max() < 1e-5  # the default tiny MLP bias, not ones
    bound = (6 / (64 + 64)) ** 0.5  # Xavier uniform for a 64 x 64 matrix
    assert unit.proj.weight.abs().max() > 0.9 * bound
    x = torch.randn(2, 64, 384)
    assert not torch.allclose(unit(x), x[..., :192], atol=0.1)


def test_gate_mixes_tokens_only_through_its_projection():
    unit = randomize_(SpatialGatingUnit(dim=8, num_tokens=5))
    with torch.no_grad():  # W = I: every token gates itself, nothing moves between tokens
        unit.proj.weight.copy_(torch.eye(5))
    x = torch.randn(2, 5, 8)
    x2 = x.clone()
    x2[:, 3] += torch.randn(8)  # change token 3 (not by a constant: LayerNorm would remove it)
    changed = (unit(x2) - unit(x)).abs().amax(dim=-1) > 1e-6  # (B, N)
    assert changed[:, 3].all() and not changed[:, [0, 1, 2, 4]].any()
    randomize_(unit, seed=4)  # a full W: the change reaches every token
    changed = (unit(x2) - unit(x)).abs().amax(dim=-1) > 1e-6
    assert changed.all()


def test_bad_gmlp_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="dim must be even"):
        SpatialGatingUnit(dim=7, num_tokens=4)
    with pytest.raises(TypeError, match="one number"):
        SpatialGatingBlock(dim=8, num_tokens=4, mlp_ratio=(0.5, 4.0))
    with pytest.raises(ValueError, match="mlp_ratio must be positive"):
        GMlp(img_size=32, patch_size=4, mlp_ratio=0)
    with pytest.raises(TypeError, match="SpatialGatingBlock"):
        GMlp(img_size=32, patch_size=4, block_layer=SpatialGatingBlock)
