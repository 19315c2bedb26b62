import pytest
import torch
from einops import rearrange
from timm.layers import PatchEmbed
from torch import nn

from mixer_edu import PatchEmbedding, conv_to_linear, linear_to_conv, patchify, unpatchify


def test_patchify_shape_is_batch_tokens_patch_vector():
    images = torch.randn(2, 3, 32, 48)
    assert patchify(images, 8).shape == (2, 4 * 6, 8 * 8 * 3)


def test_each_token_is_its_patch_unrolled_row_column_channel():
    images = torch.randn(2, 3, 16, 24)
    p = 8
    tokens = patchify(images, p)
    columns = 24 // p
    for row in range(16 // p):
        for col in range(columns):
            patch = images[:, :, row * p : (row + 1) * p, col * p : (col + 1) * p]  # (B, C, P, P)
            expected = patch.permute(0, 2, 3, 1).reshape(2, -1)  # (p1 p2 c) order
            assert torch.equal(tokens[:, row * columns + col], expected)


def test_unpatchify_inverts_patchify_exactly():
    images = torch.randn(3, 3, 32, 32)
    assert torch.equal(unpatchify(patchify(images, 4), 4), images)
    wide = torch.randn(1, 2, 8, 16)
    assert torch.equal(unpatchify(patchify(wide, 4), 4, grid_size=(2, 4)), wide)


def test_stem_conv_equals_linear_on_unrolled_patches():
    stem = PatchEmbedding(img_size=32, patch_size=4, in_chans=3, embed_dim=16)
    images = torch.randn(2, 3, 32, 32)
    linear = conv_to_linear(stem.proj)
    torch.testing.assert_close(linear(patchify(images, 4)), stem(images), rtol=0, atol=1e-5)


def test_linear_to_conv_round_trips_the_weights():
    linear = nn.Linear(4 * 4 * 3, 10)
    conv = linear_to_conv(linear, patch_size=4, in_chans=3)
    back = conv_to_linear(conv)
    assert torch.equal(back.weight, linear.weight) and torch.equal(back.bias, linear.bias)
    images = torch.randn(2, 3, 8, 8)
    expected = linear(patchify(images, 4))
    torch.testing.assert_close(
        rearrange(conv(images), "b d h w -> b (h w) d"), expected, rtol=0, atol=1e-5
    )


def test_patch_embedding_equals_timm_patch_embed():
    ours = PatchEmbedding(img_size=32, patch_size=4, in_chans=3, embed_dim=16)
    theirs = PatchEmbed(img_size=32, patch_size=4, in_chans=3, embed_dim=16)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    images = torch.randn(2, 3, 32, 32)
    assert torch.equal(ours(images), theirs(images))
    assert ours.num_tokens == ours.num_patches == theirs.num_patches == 64  # timm's name too


def test_image_size_not_divisible_by_patch_size_is_a_value_error_that_suggests_sizes():
    with pytest.raises(ValueError, match=r"32 is not divisible by patch size 5.*30 or 35"):
        PatchEmbedding(img_size=32, patch_size=5)
    with pytest.raises(ValueError, match="not divisible"):
        patchify(torch.randn(1, 3, 30, 30), 4)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.randn(3, 32, 32), r"single image.*unsqueeze\(0\)"),
        (torch.randn(1, 1, 32, 32), r"1 channels.*in_chans=3"),
        (torch.randn(1, 3, 64, 64), r"64x64.*built for 32x32"),
        (torch.randn(1, 3, 32, 64), r"32x64.*built for 32x32"),
    ],
)
def test_stem_rejects_bad_input_with_a_fix(images, message):
    stem = PatchEmbedding(img_size=32, patch_size=4)
    with pytest.raises(ValueError, match=message):
        stem(images)


def test_non_tensor_input_is_a_type_error():
    with pytest.raises(TypeError, match="torch.Tensor"):
        patchify([[1, 2], [3, 4]], 2)


def test_unpatchify_rejects_a_grid_that_does_not_fit():
    with pytest.raises(ValueError, match="square grid"):
        unpatchify(torch.randn(1, 6, 48), 4)
    with pytest.raises(ValueError, match="multiple of 16"):
        unpatchify(torch.randn(1, 4, 40), 4)


def test_rectangular_patches_round_trip_and_equal_timms_stem_with_a_norm():
    images = torch.randn(2, 3, 16, 24)
    tokens = patchify(images, (4, 8))  # a 4 x 3 grid of 4x8 patches
    assert tokens.shape == (2, 12, 4 * 8 * 3)
    assert torch.equal(unpatchify(tokens, (4, 8), grid_size=(4, 3)), images)
    ours = PatchEmbedding((16, 24), (4, 8), 3, 10, norm_layer=nn.LayerNorm)
    theirs = PatchEmbed((16, 24), (4, 8), 3, 10, norm_layer=nn.LayerNorm)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    assert ours.grid_size == theirs.grid_size == (4, 3)
    assert (ours.img_size, ours.patch_size) == ((16, 24), (4, 8))
    torch.testing.assert_close(ours(images), theirs(images), rtol=0, atol=1e-6)
    linear = conv_to_linear(ours.proj)  # the stem is a Linear on unrolled rectangles too
    torch.testing.assert_close(linear(tokens), ours.proj(images).flatten(2).transpose(1, 2))
    back = linear_to_conv(linear, (4, 8), in_chans=3)
    assert torch.equal(back.weight, ours.proj.weight)


def test_square_sizes_given_as_pairs_are_kept_as_one_int():
    stem = PatchEmbedding(img_size=(32, 32), patch_size=[4, 4])
    assert (stem.img_size, stem.patch_size, stem.grid_size) == (32, 4, (8, 8))


@pytest.mark.parametrize(
    ("images", "error", "message"),
    [
        (torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8), TypeError, r"uint8.*/ 255"),
        (torch.randn(2, 3, 32, 32, dtype=torch.float64), TypeError, r"images.float\(\).*double"),
        (torch.randn(2, 32, 32, 3), ValueError, r"channels-last.*permute\(0, 3, 1, 2\)"),
    ],
    ids=["uint8 pixels", "float64", "channels-last"],
)
def test_stem_names_the_dtype_or_layout_problem_and_the_fix(images, error, message):
    stem = PatchEmbedding(img_size=32, patch_size=4)
    with pytest.raises(error, match=message):
        stem(images)


def test_float64_images_work_with_a_float64_model_and_under_autocast():
    stem = PatchEmbedding(img_size=32, patch_size=4, dtype=torch.float64)
    assert stem(torch.randn(1, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64
    stem = PatchEmbedding(img_size=32, patch_size=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts inputs itself
        assert stem(torch.randn(1, 3, 32, 32, dtype=torch.bfloat16)).dtype == torch.bfloat16
