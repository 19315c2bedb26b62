"""The tokens-first fast path (`mixer_edu.support.tokens_first`): the same numbers as the plain
blocks, and the plain blocks wherever it could not give them."""

import pytest
import torch
from torch import nn

from mixer_edu import DropPath, MixerBlock, Mlp, MlpMixer, gmlp, weights
from mixer_edu.support import tokens_first

from .helpers import randomize_

SMALL = dict(num_classes=10, img_size=32, patch_size=8, num_blocks=3, embed_dim=24)


def mixer(**options) -> MlpMixer:
    return randomize_(MlpMixer(**{**SMALL, **options}))


def both_ways(model: MlpMixer, images: torch.Tensor, seed: int = 0):
    """`(features, gradients)` with the fast path, then without it, from the same random state."""
    results = []
    for fast in (True, False):
        model.tokens_first_in_memory = fast
        model.zero_grad(set_to_none=True)
        torch.manual_seed(seed)
        features = model.forward_features(images)
        features.square().mean().backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        results.append((features.detach(), grads))
    del model.tokens_first_in_memory  # back to the class's switch
    return results


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("drop_path_rate", [0.0, 0.3])
def test_the_fast_path_computes_what_the_blocks_compute(dtype, tolerance, drop_path_rate):
    # Only the order of float additions differs (one matrix product over the whole batch instead
    # of one per image), so the two agree to rounding; DropPath draws the same masks.
    model = mixer(drop_path_rate=drop_path_rate, dtype=dtype).train()
    images = torch.randn(4, 3, 32, 32, dtype=dtype)
    (fast, fast_grads), (slow, slow_grads) = both_ways(model, images)
    torch.testing.assert_close(fast, slow, rtol=0, atol=tolerance)
    assert slow_grads.keys() == fast_grads.keys() and "blocks.0.mlp_tokens.fc1.weight" in slow_grads
    for name, grad in slow_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=tolerance, atol=tolerance)


def test_drop_path_drops_whole_images_in_the_fast_path():
    model = mixer(drop_path_rate=0.5).train()
    images = torch.randn(8, 3, 32, 32)
    (fast, _), (slow, _) = both_ways(model, images, seed=3)
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-5)
    # Not every image kept every branch: the masks really were drawn (seed 3, 8 images, p=0.5).
    model.tokens_first_in_memory = False
    torch.manual_seed(3)
    with torch.no_grad():
        assert not torch.allclose(model.eval().forward_features(images), slow, atol=1e-3)


def test_per_image_draws_one_number_per_image_and_keeps_the_layout():
    path = DropPath(0.5).train()
    table = torch.randn(6, 16, 4)  # (N, B, C)
    torch.manual_seed(0)
    dropped = tokens_first.per_image(path, table)
    torch.manual_seed(0)
    expected = path(table.transpose(0, 1)).transpose(0, 1)
    assert torch.equal(dropped, expected) and dropped.is_contiguous()
    zeroed = (dropped == 0).all(dim=(0, 2))  # (B,): whole images
    assert 0 < zeroed.sum() < 16
    assert torch.equal((dropped == 0).any(dim=(0, 2)), zeroed)


def test_the_blocks_run_tokens_first_and_the_switch_turns_it_off(monkeypatch):
    model = mixer().eval()
    images = torch.randn(2, 3, 32, 32)
    calls = []
    real = tokens_first.run_blocks
    monkeypatch.setattr(tokens_first, "run_blocks", lambda *a: calls.append(1) or real(*a))
    model(images)
    assert calls == [1]
    model.tokens_first_in_memory = False
    model(images)
    assert calls == [1]
    assert MlpMixer.tokens_first_in_memory  # switched on for every other model


def test_the_fast_path_keeps_the_blocks_speed_up_and_timm_shape():
    x = torch.randn(2, 16, 24)  # (B, N, C)
    model = mixer()
    out = tokens_first.run_blocks(model.blocks, x, model.norm)
    assert out.shape == (2, 16, 24) and out.is_contiguous()


def test_hooks_see_the_tables_of_the_paper_so_the_plain_blocks_run():
    model = mixer().eval()
    seen = []
    handle = model.blocks[0].norm1.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    assert not tokens_first.can_run(model.blocks, MixerBlock)
    model(torch.randn(2, 3, 32, 32))
    handle.remove()
    assert seen == [torch.Size([2, 16, 24])]  # (B, N, C), not (N, B, C)
    assert tokens_first.can_run(model.blocks, MixerBlock)


def test_a_global_module_hook_also_turns_the_fast_path_off():
    model = mixer()
    handle = nn.modules.module.register_module_forward_hook(lambda *args: None)
    try:
        assert not tokens_first.can_run(model.blocks, MixerBlock)
    finally:
        handle.remove()
    assert tokens_first.can_run(model.blocks, MixerBlock)


def test_channel_mixing_responses_are_read_on_the_paper_layout():
    # weights.channel_mixing_responses hooks the MLP's activation: it must get (B, N, D_C).
    model = mixer().eval()
    images = torch.randn(2, 3, 32, 32)
    responses = weights.channel_mixing_responses(model, images, block=1)
    model.tokens_first_in_memory = False
    with torch.no_grad():
        x = model.blocks[0](model.stem(images).contiguous())
        block = model.blocks[1]
        x = x + block.mlp_tokens(block.norm1(x).transpose(1, 2)).transpose(1, 2)
        hidden = block.mlp_channels.act(block.mlp_channels.fc1(block.norm2(x)))  # (B, N, D_C)
    expected = hidden.transpose(1, 2).reshape(2, -1, 4, 4)  # (B, D_C, h, w)
    torch.testing.assert_close(responses, expected, rtol=0, atol=1e-5)


def test_active_dropout_runs_the_plain_blocks_so_the_masks_stay_the_same():
    model = mixer(proj_drop_rate=0.1)
    assert not tokens_first.can_run(
        model.train().blocks, MixerBlock
    )  # its draws would fall in another order
    assert tokens_first.can_run(model.eval().blocks, MixerBlock)  # dropout is off in evaluation


def test_other_blocks_run_as_written():
    assert not tokens_first.can_run(gmlp.GMlp(**SMALL).blocks, MixerBlock)  # another block
    block = MixerBlock(24, 16)
    block.mlp_tokens = type("MyMlp", (Mlp,), {})(16, 12)  # another token-mixing MLP
    assert not tokens_first.can_run(nn.Sequential(block), MixerBlock)
    assert tokens_first.can_run(nn.Sequential(MixerBlock(24, 16)), MixerBlock)


def test_bf16_autocast_agrees_with_the_plain_blocks():
    model = mixer().eval()
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fast = model.forward_features(images)
        model.tokens_first_in_memory = False
        slow = model.forward_features(images)
    torch.testing.assert_close(fast.float(), slow.float(), rtol=0.02, atol=0.02)
