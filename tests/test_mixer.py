import doctest

import pytest
import torch
import torch.nn.functional as F
from timm.models.mlp_mixer import MixerBlock as TimmMixerBlock
from timm.models.mlp_mixer import MlpMixer as TimmMlpMixer

from mixer_edu import MixerBlock, Mlp, MlpMixer, mixer

from .helpers import randomize_
from .timm_equivalence import assert_equivalent_to_timm, assert_same_as_timm_by_name, images_for

# Several shapes: CIFAR-sized, non-default ratios, a paper-like one with few blocks.
CONFIGS = [
    dict(num_classes=10, img_size=32, patch_size=4, num_blocks=2, embed_dim=32),
    dict(
        num_classes=7,
        img_size=48,
        patch_size=8,
        num_blocks=3,
        embed_dim=24,
        mlp_ratio=(1.0, 2.0),
        in_chans=1,
    ),
    dict(num_classes=1000, img_size=224, patch_size=32, num_blocks=2, embed_dim=64),
    dict(num_classes=0, img_size=32, patch_size=8, num_blocks=1, embed_dim=16),
]


def test_token_mixing_mixes_only_across_tokens():
    mlp = randomize_(MixerBlock(dim=5, num_tokens=16, mlp_ratio=(1.6, 4.0)).token_mixing)
    x = torch.randn(2, 5, 16)  # (B, C, N)
    x2 = x.clone()
    x2[:, 2, 3] += 1.0  # change channel 2 of token 3
    changed = (mlp(x2) - mlp(x)).abs() > 1e-6
    assert changed[:, 2, :].all()  # every token of channel 2 changes
    assert not changed[:, [0, 1, 3, 4], :].any()  # no other channel does


def test_channel_mixing_commutes_with_permuting_tokens_but_token_mixing_does_not():
    block = randomize_(MixerBlock(dim=12, num_tokens=9))
    x = torch.randn(2, 9, 12)
    perm = torch.randperm(9)
    channel = block.channel_mixing
    torch.testing.assert_close(channel(x[:, perm]), channel(x)[:, perm])
    token = block.token_mixing  # reads (B, C, N): the tokens last
    tokens_last = x.transpose(1, 2)
    assert not torch.allclose(
        token(tokens_last[:, :, perm]), token(tokens_last)[:, :, perm], atol=1e-3
    )


def test_mixer_block_equals_timm_in_eval_mode():
    ours = randomize_(MixerBlock(dim=32, num_tokens=16))
    theirs = TimmMixerBlock(dim=32, seq_len=16)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(4, 16, 32)
    torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), rtol=0, atol=1e-5)


def test_mixer_block_equals_timm_with_drop_path_in_train_mode_under_the_same_seed():
    ours = randomize_(MixerBlock(dim=32, num_tokens=16, drop_path=0.4))
    theirs = TimmMixerBlock(dim=32, seq_len=16, drop_path=0.4)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(64, 16, 32)
    torch.manual_seed(2)
    a = ours.train()(x)
    torch.manual_seed(2)
    b = theirs.train()(x)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert not torch.allclose(a, ours.eval()(x))  # paths really were dropped


# The paper's equations written again with torch.nn.functional alone, from a model's weights:
# what the tests below compare the modules with, so that a mistake in a module cannot hide in
# its own reference.
def _mlp_by_hand(mlp, x):
    return F.linear(F.gelu(F.linear(x, mlp.fc1.weight, mlp.fc1.bias)), mlp.fc2.weight, mlp.fc2.bias)


def _layer_norm_by_hand(norm, x):
    return F.layer_norm(x, x.shape[-1:], norm.weight, norm.bias, eps=1e-6)


def _token_branch_by_hand(block, x):  # W2 · GELU(W1 · LayerNorm(X)), on (B, N, C)
    return _mlp_by_hand(block.mlp_tokens, _layer_norm_by_hand(block.norm1, x).transpose(1, 2))


def _channel_branch_by_hand(block, u):  # GELU(LayerNorm(U) · W3ᵀ) · W4ᵀ
    return _mlp_by_hand(block.mlp_channels, _layer_norm_by_hand(block.norm2, u))


def _mixer_by_hand(model, images):
    """`(B, C, H, W) -> (B, num_classes)`: stem, every block's two updates, norm, mean, head."""
    x = F.conv2d(images, model.stem.proj.weight, model.stem.proj.bias, stride=model.stem.patch_size)
    x = x.flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, N, C), patches row by row
    for block in model.blocks:
        x = x + _token_branch_by_hand(block, x).transpose(1, 2)  # U = X + ...
        x = x + _channel_branch_by_hand(block, x)  # Y = U + ...
    pooled = _layer_norm_by_hand(model.norm, x).mean(dim=1)
    return F.linear(pooled, model.head.weight, model.head.bias)


def _zero_(mlp):
    """Make an MLP output zeros: zero its last layer."""
    with torch.no_grad():
        mlp.fc2.weight.zero_()
        mlp.fc2.bias.zero_()


def test_mixer_block_has_both_residuals_and_both_branches():
    x = torch.randn(2, 4, 8)
    block = randomize_(MixerBlock(dim=8, num_tokens=4)).eval()
    expected = x + _token_branch_by_hand(block, x).transpose(1, 2)
    expected = expected + _channel_branch_by_hand(block, expected)
    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-5)
    # One MLP at a time zeroed: the block is the input plus the other branch, so each residual
    # is there and each branch adds to it.
    tokens_only = randomize_(MixerBlock(dim=8, num_tokens=4)).eval()
    _zero_(tokens_only.mlp_channels)
    token_update = _token_branch_by_hand(tokens_only, x).transpose(1, 2)
    assert token_update.abs().min() > 0
    torch.testing.assert_close(tokens_only(x), x + token_update, rtol=0, atol=1e-5)
    channels_only = randomize_(MixerBlock(dim=8, num_tokens=4)).eval()
    _zero_(channels_only.mlp_tokens)
    channel_update = _channel_branch_by_hand(channels_only, x)
    assert channel_update.abs().min() > 0
    torch.testing.assert_close(channels_only(x), x + channel_update, rtol=0, atol=1e-5)
    # Both zeroed: nothing but the two residuals, the input itself.
    _zero_(channels_only.mlp_channels)
    assert torch.equal(channels_only(x), x)


@pytest.mark.parametrize("config", CONFIGS)
def test_timm_checkpoints_load_strictly_both_ways_and_give_the_same_logits(config):
    assert_equivalent_to_timm(MlpMixer(**config), TimmMlpMixer(**config), images_for(config))


def test_paper_model_equals_timm_model_of_the_same_name():
    assert_same_as_timm_by_name("mixer_s32_224")


def test_forward_is_forward_head_of_forward_features():
    model = randomize_(MlpMixer(**CONFIGS[0])).eval()
    images = torch.randn(2, 3, 32, 32)
    features = model.forward_features(images)
    assert features.shape == (2, 64, 32)
    assert torch.equal(model(images), model.forward_head(features))
    assert model.forward_head(features, pre_logits=True).shape == (2, 32)


def test_head_dropout_drops_pooled_features_in_training_only():
    model = MlpMixer(**CONFIGS[0], drop_rate=0.5)
    features = torch.randn(16, 64, 32)  # (B, N, C)
    pooled = features.mean(dim=1)  # (B, C)
    dropped = model.train().forward_head(features, pre_logits=True)
    kept = dropped != 0
    assert 0.2 < kept.float().mean() < 0.8
    torch.testing.assert_close(dropped[kept], pooled[kept] / 0.5)  # kept ones scaled by 1/keep
    assert torch.equal(model.eval().forward_head(features, pre_logits=True), pooled)


def test_initialisation_follows_the_paper_and_timm():
    model = MlpMixer(num_classes=10, img_size=32, patch_size=4, num_blocks=2, embed_dim=64)
    assert torch.count_nonzero(model.head.weight) == 0 and torch.count_nonzero(model.head.bias) == 0
    conv = model.stem.proj.weight  # LeCun normal: std 1/sqrt(fan_in), truncated at 2 std
    fan_in = 3 * 4 * 4
    assert conv.std().item() == pytest.approx(fan_in**-0.5, rel=0.15)
    assert conv.abs().max() <= 2 * fan_in**-0.5 / 0.8796 + 1e-6
    assert torch.count_nonzero(model.stem.proj.bias) == 0
    fc1 = model.blocks[0].mlp_channels.fc1  # Xavier uniform: bound sqrt(6 / (fan_in + fan_out))
    bound = (6 / (64 + 256)) ** 0.5
    assert fc1.weight.abs().max() <= bound and fc1.weight.abs().max() > 0.9 * bound
    assert 0 < fc1.bias.abs().max() < 1e-5  # tiny normal biases inside the MLPs
    assert torch.equal(model.norm.weight, torch.ones(64))


def test_untrained_model_predicts_uniform_probabilities():
    model = MlpMixer(num_classes=10, img_size=32, patch_size=4, num_blocks=2, embed_dim=16).eval()
    images = torch.randn(4, 3, 32, 32)
    logits = model(images)
    assert torch.equal(logits, torch.zeros(4, 10))  # the zero head, whatever the blocks compute
    # So the blocks must be checked through a head that reads them: with a random head (and the
    # blocks as initialised), the logits are the paper's equations computed by hand.
    randomize_(model.head)
    with torch.no_grad():
        logits = model(images)
        torch.testing.assert_close(logits, _mixer_by_hand(model, images), rtol=0, atol=1e-5)
    assert logits.std(dim=0).min() > 0.01  # and they differ from image to image


def test_model_computes_the_papers_equations_with_every_weight_random():
    for config in CONFIGS[:3]:
        model = randomize_(MlpMixer(**config)).eval()
        images = images_for(config)
        with torch.no_grad():
            torch.testing.assert_close(
                model(images), _mixer_by_hand(model, images), rtol=0, atol=1e-5
            )


def test_linear_drop_path_schedule_rises_across_blocks():
    model = MlpMixer(
        num_blocks=4,
        img_size=32,
        patch_size=4,
        embed_dim=8,
        drop_path_rate=0.3,
        drop_path_schedule="linear",
    )
    rates = [block.drop_path.drop_prob for block in model.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    assert rates == sorted(rates)


def test_bad_constructor_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="not divisible by patch size"):
        MlpMixer(img_size=30, patch_size=4)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        MlpMixer(img_size=32, patch_size=4, drop_path_rate=1.0)
    with pytest.raises(ValueError, match="global_pool"):
        MlpMixer(img_size=32, patch_size=4, global_pool="max")


def test_model_rejects_images_of_the_wrong_size_with_the_fix():
    model = MlpMixer(img_size=32, patch_size=4, num_blocks=1, embed_dim=8)
    with pytest.raises(ValueError, match=r"built for 32x32.*Resize\(32\)"):
        model(torch.randn(1, 3, 224, 224))


@pytest.mark.parametrize("mlp_ratio", [0, (0.5, 0.0), (-1.0, 4.0), 0.01])
def test_a_ratio_that_gives_no_hidden_units_is_a_value_error(mlp_ratio):
    with pytest.raises(ValueError, match="mlp_ratio"):
        MlpMixer(img_size=32, patch_size=4, embed_dim=16, mlp_ratio=mlp_ratio)


def test_mlp_width_zero_is_an_error_not_the_input_width():
    with pytest.raises(ValueError, match="hidden_features must be a positive int, got 0"):
        Mlp(8, 0)


def test_model_tells_a_channels_last_batch_to_permute_not_to_rebuild():
    model = MlpMixer(img_size=32, patch_size=4, num_blocks=1, embed_dim=8)
    with pytest.raises(ValueError, match=r"permute\(0, 3, 1, 2\)") as error:
        model(torch.randn(2, 32, 32, 3))
    assert "in_chans=32" not in str(error.value)


def _run_module_docstring():
    """Run the doctest in `mixer_edu.mixer`'s docstring; return its failures and its names."""
    [test] = [t for t in doctest.DocTestFinder().find(mixer) if t.name == "mixer_edu.mixer"]
    runner = doctest.DocTestRunner()
    runner.run(test, clear_globs=False)
    return runner.failures, test.globs


def test_the_twenty_line_mixer_in_the_module_docstring_is_mlp_mixer():
    failures, names = _run_module_docstring()  # includes Mixer-B/16's parameter count
    assert failures == 0
    sketch = names["mixer_sketch"](image=32, patch=4, channels=64, depth=2, classes=10)
    model = randomize_(MlpMixer(**CONFIGS[0] | dict(embed_dim=64))).eval()
    assert [p.shape for p in sketch.parameters()] == [p.shape for p in model.parameters()]
    # The same parameters in the same order: copy ours in and both compute the same function.
    sketch.load_state_dict(dict(zip(sketch.state_dict(), model.state_dict().values(), strict=True)))
    images = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(sketch(images), model(images), rtol=0, atol=1e-5)
