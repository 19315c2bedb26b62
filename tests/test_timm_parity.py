"""Our MlpMixer and GMlp against timm's on configurations beyond the paper's, and timm's methods."""

import math
from functools import partial

import pytest
import timm
import torch
from timm.layers import GatedMlp as TimmGatedMlp
from timm.layers import GluMlp as TimmGluMlp
from timm.layers import Mlp as TimmMlp
from timm.models.mlp_mixer import MlpMixer as TimmMlpMixer
from timm.models.mlp_mixer import SpatialGatingBlock as TimmSpatialGatingBlock
from torch import nn

from mixer_edu import MlpMixer
from mixer_edu.gmlp import GMlp
from mixer_edu.viz.token_norms import token_norms

from .helpers import randomize_
from .timm_equivalence import assert_equivalent_to_timm, images_for

SMALL = dict(num_classes=5, img_size=32, patch_size=8, num_blocks=3, embed_dim=24)

# Each changes one thing from SMALL; the ids say what.
MIXER_CONFIGS = {
    "rectangular images and patches": dict(img_size=(32, 48), patch_size=(4, 8)),
    "rectangular images, square patches": dict(img_size=(16, 40), patch_size=8),
    "one input channel": dict(in_chans=1),
    "other mlp ratios": dict(mlp_ratio=(2.0, 0.5)),
    "one mlp ratio for both": dict(mlp_ratio=3),
    "stem norm": dict(stem_norm=True),
    "silu": dict(act_layer=nn.SiLU),
    "relu": dict(act_layer=nn.ReLU),
    "layer norm eps 1e-3": dict(norm_layer=partial(nn.LayerNorm, eps=1e-3)),
    "rms norm": dict(norm_layer=nn.RMSNorm, stem_norm=True),
    "timm's Mlp as mlp_layer": dict(mlp_layer=TimmMlp),
    "timm's GluMlp as mlp_layer": dict(mlp_layer=TimmGluMlp, act_layer=nn.Sigmoid),
    "no head, no pooling": dict(num_classes=0, global_pool=""),
}


def _pair_of_mixers(**changes) -> tuple[MlpMixer, TimmMlpMixer, dict]:
    config = {**SMALL, **changes}
    return MlpMixer(**config), TimmMlpMixer(**config), config


@pytest.mark.parametrize("changes", MIXER_CONFIGS.values(), ids=MIXER_CONFIGS.keys())
def test_mixer_equals_timm_beyond_the_papers_configurations(changes):
    ours, theirs, config = _pair_of_mixers(**changes)
    assert_equivalent_to_timm(ours, theirs, images_for(config))


def test_mixer_built_in_float64_equals_timm_in_float64():
    ours, theirs, config = _pair_of_mixers(dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in ours.parameters())
    assert_equivalent_to_timm(ours, theirs, images_for(config).double())


def _timm_gmlp(**config) -> TimmMlpMixer:
    return TimmMlpMixer(block_layer=TimmSpatialGatingBlock, mlp_layer=TimmGatedMlp, **config)


GMLP_CONFIGS = {
    "rectangular": dict(img_size=(32, 48), patch_size=(8, 4)),
    "silu and stem norm": dict(act_layer=nn.SiLU, stem_norm=True),
    "ratio 4, one channel": dict(mlp_ratio=4, in_chans=1),
}


@pytest.mark.parametrize("changes", GMLP_CONFIGS.values(), ids=GMLP_CONFIGS.keys())
def test_gmlp_equals_timm_beyond_the_papers_configurations(changes):
    config = {**SMALL, "mlp_ratio": 6, **changes}
    assert_equivalent_to_timm(GMlp(**config), _timm_gmlp(**config), images_for(config))


def test_gmlp_accepts_timms_gated_mlp_as_its_mlp_layer():
    config = {**SMALL, "mlp_ratio": 6}
    ours = GMlp(mlp_layer=TimmGatedMlp, **config)
    assert_equivalent_to_timm(ours, _timm_gmlp(**config), images_for(config))


def test_nlhb_initialises_the_head_bias_to_minus_log_classes_as_timm_does():
    ours, theirs, _ = _pair_of_mixers(nlhb=True, num_classes=7)
    # The same constant from the same formula: exact by construction.
    assert torch.equal(ours.head.bias, theirs.head.bias)
    assert torch.equal(ours.head.bias, torch.full((7,), -math.log(7)))
    assert torch.count_nonzero(ours.head.weight) == 0
    # The rest of the initialisation has timm's statistics (different random draws).
    for name in ["stem.proj.weight", "blocks.0.mlp_channels.fc1.weight"]:
        ours_std, theirs_std = ours.state_dict()[name].std(), theirs.state_dict()[name].std()
        assert ours_std.item() == pytest.approx(theirs_std.item(), rel=0.15), name
    ours_without, _, _ = _pair_of_mixers(num_classes=7)
    assert torch.count_nonzero(ours_without.head.bias) == 0


def test_gradient_checkpointing_gives_the_same_outputs_and_gradients():
    config = {**SMALL, "drop_path_rate": 0.3, "proj_drop_rate": 0.2}
    model = randomize_(MlpMixer(**config)).train()  # random draws: DropPath and dropout active
    images = images_for(config, batch=8)

    def run(checkpointing: bool):
        model.set_grad_checkpointing(checkpointing)
        model.zero_grad()
        torch.manual_seed(5)  # the same masks in both runs (checkpointing replays the RNG)
        logits = model(images)
        logits.square().sum().backward()
        return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    plain_logits, plain_grads = run(False)
    checkpointed_logits, checkpointed_grads = run(True)
    assert model.grad_checkpointing
    torch.testing.assert_close(checkpointed_logits, plain_logits, rtol=0, atol=1e-6)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, rtol=1e-5, atol=1e-6)


INTERMEDIATE_CALLS = {
    "all blocks": dict(),
    "last two": dict(indices=2),
    "first and last, normed": dict(indices=[0, -1], norm=True),
    "stop early": dict(indices=[1], stop_early=True),
    "only intermediates": dict(indices=[0, 2], intermediates_only=True),
}


@pytest.mark.parametrize("output_fmt", ["NCHW", "NLC"])
@pytest.mark.parametrize("call", INTERMEDIATE_CALLS.values(), ids=INTERMEDIATE_CALLS.keys())
@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "checkpointed"])
def test_forward_intermediates_equal_timms(output_fmt, call, checkpointing):
    ours, theirs, config = _pair_of_mixers(img_size=(32, 48), patch_size=(8, 4))
    ours.load_state_dict(randomize_(theirs).state_dict(), strict=True)
    ours.eval().set_grad_checkpointing(checkpointing)
    images = images_for(config)
    with torch.no_grad():
        got = ours.forward_intermediates(images, output_fmt=output_fmt, **call)
        expected = theirs.eval().forward_intermediates(images, output_fmt=output_fmt, **call)
    if not call.get("intermediates_only"):
        torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-5)  # final features
        got, expected = got[1], expected[1]
    grid = ours.grid_size  # (4, 12)
    shape = (3, 24, *grid) if output_fmt == "NCHW" else (3, grid[0] * grid[1], 24)
    assert [y.shape for y in got] == [shape] * len(expected)
    for ours_y, theirs_y in zip(got, expected, strict=True):
        torch.testing.assert_close(ours_y, theirs_y, rtol=0, atol=1e-5)


def test_forward_intermediates_rejects_a_bad_format_or_index():
    model = MlpMixer(**SMALL)
    images = images_for(SMALL)
    with pytest.raises(ValueError, match="'NCHW' or 'NLC'"):
        model.forward_intermediates(images, output_fmt="NHWC")
    with pytest.raises(ValueError, match="out of range: \\[3\\]"):
        model.forward_intermediates(images, indices=[0, 3])
    with pytest.raises(ValueError, match="last 4 blocks.*has 3"):
        model.forward_intermediates(images, indices=4)


@pytest.mark.parametrize(
    "arguments",
    [dict(indices=1), dict(indices=[0], prune_norm=True), dict(indices=2, prune_head=False)],
)
def test_prune_intermediate_layers_equals_timms(arguments):
    ours, theirs, config = _pair_of_mixers()
    ours.load_state_dict(randomize_(theirs).state_dict(), strict=True)
    assert ours.prune_intermediate_layers(**arguments) == theirs.prune_intermediate_layers(
        **arguments
    )
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert (ours.num_classes, ours.global_pool) == (theirs.num_classes, theirs.global_pool)
    images = images_for(config)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(images), theirs.eval()(images), rtol=0, atol=1e-5)


@pytest.mark.parametrize("coarse", [False, True])
def test_group_matcher_equals_timms_and_groups_parameters_by_depth(coarse):
    ours, theirs, _ = _pair_of_mixers()
    assert ours.group_matcher(coarse) == theirs.group_matcher(coarse)
    groups = timm.models.group_parameters(ours, ours.group_matcher(coarse))
    assert groups == timm.models.group_parameters(theirs, theirs.group_matcher(coarse))
    assert len(groups) == 1 + SMALL["num_blocks"] + 1  # stem, each block, final norm + head


def test_get_and_reset_classifier_behave_as_timms():
    ours, theirs, config = _pair_of_mixers()
    assert ours.get_classifier() is ours.head
    for model in (ours, theirs):
        model.reset_classifier(4, global_pool="")
    assert ours.get_classifier().out_features == 4 and ours.global_pool == ""
    images = images_for(config)
    ours.load_state_dict(randomize_(theirs).state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(images), theirs.eval()(images), rtol=0, atol=1e-5)


def test_feature_info_equals_timms():
    ours, theirs, _ = _pair_of_mixers(img_size=(32, 48), patch_size=(4, 8))
    assert ours.feature_info == theirs.feature_info


def test_token_norms_are_the_channel_norms_of_each_blocks_tokens_on_the_grid():
    model = randomize_(MlpMixer(**{**SMALL, "img_size": (32, 48)})).eval()
    images = torch.randn(2, 3, 32, 48)
    norms = token_norms(model, images)
    assert norms.shape == (2, 3, 4, 6)  # (B, num_blocks, rows, columns)
    with torch.no_grad():  # by hand: run the blocks, measure every token, lay them on the grid
        x = model.stem(images)
        expected = []
        for block in model.blocks:
            x = block(x)
            expected.append(x.norm(dim=-1).reshape(2, 4, 6))  # (B, N) -> (B, h, w)
    torch.testing.assert_close(norms, torch.stack(expected, dim=1), rtol=1e-5, atol=1e-5)
    normed = token_norms(model, images, norm=True)
    assert normed.shape == norms.shape and not torch.allclose(normed, norms)
