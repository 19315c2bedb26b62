import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from mixer_edu import create_model
from mixer_edu.as_cnn import (
    channel_mixing_as_conv,
    depthwise_conv_as_token_mixing,
    token_mixing_as_conv,
)


@pytest.fixture
def block_and_table():
    torch.manual_seed(0)
    model = create_model("mixer_cifar_tiny").eval()
    x = torch.randn(2, model.num_tokens, model.embed_dim)  # (B, N, C)
    return model, model.blocks[0], x


def test_channel_mixing_is_a_1x1_convolution_on_the_image_of_tokens(block_and_table):
    model, block, x = block_and_table
    rows, columns = model.grid_size
    image = rearrange(x, "b (h w) c -> b c h w", h=rows, w=columns)
    with torch.no_grad():
        by_conv = channel_mixing_as_conv(block.mlp_channels)(image)
        expected = rearrange(block.mlp_channels(x), "b (h w) c -> b c h w", h=rows, w=columns)
    torch.testing.assert_close(by_conv, expected, atol=1e-5, rtol=1e-5)


def test_token_mixing_is_one_full_size_single_channel_convolution_shared_by_all_channels(
    block_and_table,
):
    model, block, x = block_and_table
    with torch.no_grad():
        by_conv = token_mixing_as_conv(block.mlp_tokens, x, model.grid_size)
        expected = block.mlp_tokens(x.transpose(1, 2)).transpose(1, 2)  # it reads (B, C, N)
    torch.testing.assert_close(by_conv, expected, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # shared: swapping two channels swaps the outputs, nothing else
        swapped = token_mixing_as_conv(block.mlp_tokens, x[..., [1, 0, *range(2, 64)]], (8, 8))
    torch.testing.assert_close(swapped[..., :2], by_conv[..., [1, 0]], atol=1e-6, rtol=0)


def test_a_3x3_depthwise_convolution_is_a_sparse_token_mixing_matrix():
    torch.manual_seed(1)
    kernel, grid = torch.randn(3, 3), (5, 6)
    matrix = depthwise_conv_as_token_mixing(kernel, grid)  # (30, 30)
    x = torch.randn(2, 30, 7)  # (B, N, C)
    image = rearrange(x, "b (h w) c -> b c h w", h=5, w=6)
    conv = F.conv2d(image, kernel.expand(7, 1, 3, 3), padding=1, groups=7)  # one shared kernel
    torch.testing.assert_close(matrix @ x, rearrange(conv, "b c h w -> b (h w) c"))
    nonzeros = (matrix != 0).sum(dim=1)
    assert nonzeros.max() == 9 and nonzeros.min() == 4  # interior rows 9, corners 4
    inside = 1 * 6 + 1  # position (1, 1): every row away from the border holds the same kernel
    assert torch.equal(matrix[inside].reshape(5, 6)[0:3, 0:3], kernel)


def test_bad_grids_and_kernels_are_refused_with_the_fix():
    model = create_model("mixer_cifar_tiny")
    with pytest.raises(ValueError, match="model.grid_size"):
        token_mixing_as_conv(model.blocks[0].mlp_tokens, torch.randn(1, 64, 64), (4, 4))
    with pytest.raises(ValueError, match="odd size"):
        depthwise_conv_as_token_mixing(torch.randn(2, 2), (4, 4))
