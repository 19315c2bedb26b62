import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mixer_edu import MixerBlock, conv_to_linear, create_model
from mixer_edu.gmlp import SpatialGatingBlock
from mixer_edu.weights import (
    channel_mixing_responses,
    cosine_similarities,
    figure5_order,
    grating,
    pair_opposite_phase,
    spatial_frequency,
    stem_filters,
    token_mixing_units,
    token_mixing_weight,
)

from .helpers import randomize_

# Gratings on an 8x8 grid with known frequencies (cycles per patch): (cycles_y, cycles_x).
# Below half the grid size, so that every phase keeps the full amplitude.
CYCLES = [(0, 0), (1, 0), (0, 2), (1, 1), (3, 0), (2, 3), (3, 3), (0, 1)]


def _known(cycles, height=8, width=8):
    return math.hypot(cycles[0] / height, cycles[1] / width)


def _gratings_and_negatives(seed=0, noise=0.05):
    """16 units: the 8 gratings and their negatives, with a little noise, shuffled.

    Returns the units and, for each unit, (grating index, sign).
    """
    generator = torch.Generator().manual_seed(seed)
    base = torch.stack([grating(8, 8, cy, cx, phase=0.3 * k) for k, (cy, cx) in enumerate(CYCLES)])
    units = torch.cat([base, -base])
    units = units + noise * torch.randn(units.shape, generator=generator)
    labels = [(k, +1) for k in range(8)] + [(k, -1) for k in range(8)]
    perm = torch.randperm(16, generator=generator).tolist()
    return units[perm], [labels[p] for p in perm]


def test_a_mixer_blocks_token_mixing_weight_is_w1_of_its_token_mlp():
    block = MixerBlock(dim=12, num_tokens=20, mlp_ratio=(0.5, 4.0))
    weight = block.token_mixing_weight()
    assert weight.shape == (6, 20)  # (tokens_hidden, num_tokens) = (D_S, N), D_S = C/2
    assert weight is block.mlp_tokens.fc1.weight  # the parameter, not a copy


def test_a_gmlp_blocks_token_mixing_weight_is_its_spatial_gating_projection():
    block = SpatialGatingBlock(dim=12, num_tokens=20)
    weight = block.token_mixing_weight()
    assert weight.shape == (20, 20)  # (num_tokens, num_tokens)
    assert weight is block.mlp_channels.gate.proj.weight


def test_token_mixing_weight_asks_the_block_and_names_a_block_that_cannot_answer():
    model = randomize_(create_model("mixer_cifar_tiny"))
    assert token_mixing_weight(model, 3) is model.blocks[3].mlp_tokens.fc1.weight
    model.blocks[3] = nn.Identity()
    with pytest.raises(TypeError, match="block 3 is a Identity, which has no token_mixing_weight"):
        token_mixing_units(model, 3)


def test_token_mixing_units_are_the_rows_of_fc1_on_the_patch_grid():
    model = randomize_(create_model("mixer_cifar_tiny"))
    units = token_mixing_units(model, block=2)
    weight = model.blocks[2].mlp_tokens.fc1.weight
    assert units.shape == (32, 8, 8)  # D_S = C/2 = 32 units, 8x8 grid
    for k, row, column in [(0, 0, 0), (5, 2, 7), (31, 7, 3)]:
        assert units[k, row, column] == weight[k, row * 8 + column]


def test_a_unit_picture_at_row_r_column_c_is_the_weight_for_that_patch_of_the_image():
    """Light up one patch of the image: it becomes exactly one token, at the index the picture
    places at that (row, column)."""
    model = create_model("mixer_cifar_tiny")  # stem bias is 0 at initialisation
    image = torch.zeros(1, 3, 32, 32)
    row, column = 2, 5
    image[:, :, 4 * row : 4 * row + 4, 4 * column : 4 * column + 4] = 1.0
    tokens = model.stem(image)[0]  # (N, C)
    lit = torch.nonzero(tokens.abs().sum(dim=1)).flatten().tolist()
    assert lit == [row * 8 + column]
    units = token_mixing_units(model, 0)
    torch.testing.assert_close(
        units[:, row, column], model.blocks[0].mlp_tokens.fc1.weight[:, lit[0]]
    )


def test_a_gmlp_blocks_pictures_are_the_rows_of_its_spatial_gating_projection():
    model = randomize_(create_model("gmlp_cifar_tiny"))
    units = token_mixing_units(model, 1)
    proj = model.blocks[1].mlp_channels.gate.proj.weight  # (N, N): row i = what token i gathers
    torch.testing.assert_close(units, proj.detach().reshape(64, 8, 8), rtol=0, atol=0)


def test_stem_filters_are_the_patch_linear_weights_as_small_images():
    model = randomize_(create_model("mixer_cifar_tiny"))
    filters = stem_filters(model)
    assert filters.shape == (64, 4, 4, 3)
    linear = conv_to_linear(model.stem.proj)  # (D, P*P*C) in patchify's (p1 p2 c) order
    torch.testing.assert_close(filters.flatten(1), linear.weight.detach(), rtol=0, atol=0)


def test_channel_mixing_responses_equal_the_hidden_layer_computed_by_hand():
    model = randomize_(create_model("mixer_cifar_tiny")).eval()
    images = torch.randn(2, 3, 32, 32)
    responses = channel_mixing_responses(model, images, block=1)
    with torch.no_grad():
        x = model.blocks[0](model.stem(images))
        block = model.blocks[1]
        x = x + block.mlp_tokens(block.norm1(x).transpose(1, 2)).transpose(1, 2)  # tokens
        hidden = F.gelu(block.mlp_channels.fc1(block.norm2(x)))  # (B, N, D_C)
    expected = hidden.transpose(1, 2).reshape(2, 256, 8, 8)  # patch n -> (n // 8, n % 8)
    torch.testing.assert_close(responses, expected, rtol=0, atol=1e-6)


def test_channel_mixing_responses_keep_the_models_mode():
    model = create_model("mixer_cifar_tiny").train()
    channel_mixing_responses(model, torch.randn(1, 3, 32, 32))
    assert model.training


@pytest.mark.parametrize("cycles", CYCLES)
def test_spatial_frequency_of_a_grating_is_its_cycles_per_patch(cycles):
    picture = grating(8, 8, *cycles, phase=0.4)
    assert spatial_frequency(picture[None]).item() == pytest.approx(_known(cycles), abs=1e-6)


def test_spatial_frequency_on_a_rectangular_grid():
    picture = grating(6, 10, 1, 2)
    assert spatial_frequency(picture[None]).item() == pytest.approx(_known((1, 2), 6, 10))


def test_spatial_frequency_ignores_sign_and_scale_and_is_zero_for_constants():
    picture = grating(8, 8, 2, 1) + 0.3 * grating(8, 8, 0, 3)
    values = spatial_frequency(torch.stack([picture, -picture, 7 * picture]))
    torch.testing.assert_close(values, values[:1].expand(3))
    assert spatial_frequency(torch.stack([torch.ones(8, 8), torch.zeros(8, 8)])).tolist() == [0, 0]


def test_a_mix_of_two_gratings_has_the_power_weighted_mean_frequency():
    low, high = grating(8, 8, 1, 0), grating(8, 8, 0, 3)
    # Amplitudes 1 and 2: power 1 and 4, so the mean is (1 * 1/8 + 4 * 3/8) / 5.
    value = spatial_frequency((low + 2 * high)[None]).item()
    assert value == pytest.approx((1 / 8 + 4 * 3 / 8) / 5)


def test_pairing_finds_every_grating_and_its_negative_after_shuffling():
    units, labels = _gratings_and_negatives()
    pairs, unpaired = pair_opposite_phase(units)
    assert unpaired == []
    for i, j in pairs:
        assert labels[i][0] == labels[j][0]  # the same grating ...
        assert labels[i][1] == -labels[j][1]  # ... with opposite signs


def test_units_without_an_opposite_are_left_unpaired():
    units, labels = _gratings_and_negatives()
    lonely = torch.stack([grating(8, 8, 2, 2), grating(8, 8, 3, 1)])  # no negatives given
    pairs, unpaired = pair_opposite_phase(torch.cat([units, lonely]))
    assert len(pairs) == 8
    assert unpaired == [16, 17]


def test_pairing_takes_the_most_opposite_partner_first():
    a = grating(8, 8, 1, 0)
    nearly = -a + 0.3 * grating(8, 8, 0, 1)  # cosine about -0.96
    exact = -a  # cosine -1
    pairs, unpaired = pair_opposite_phase(torch.stack([a, nearly, exact]))
    assert pairs == [(0, 2)] and unpaired == [1]


def test_max_cosine_decides_what_counts_as_opposite():
    a = grating(8, 8, 1, 0)
    b = -0.4 * a + math.sqrt(1 - 0.4**2) * grating(8, 8, 0, 1)  # cosine exactly -0.4
    units = torch.stack([a, b])
    assert cosine_similarities(units)[0, 1].item() == pytest.approx(-0.4, abs=1e-6)
    assert pair_opposite_phase(units, max_cosine=-0.5) == ([], [0, 1])
    assert pair_opposite_phase(units, max_cosine=-0.3) == ([(0, 1)], [])


def test_figure5_order_sorts_pairs_from_low_to_high_frequency():
    units, labels = _gratings_and_negatives()
    arranged = figure5_order(units)
    gratings = [labels[i][0] for i, _ in arranged.pairs]
    expected = sorted(range(8), key=lambda k: _known(CYCLES[k]))
    # (1, 0) and (0, 1) have the same frequency: compare the frequencies, not the indices.
    assert [_known(CYCLES[k]) for k in gratings] == pytest.approx(
        [_known(CYCLES[k]) for k in expected], abs=1e-9
    )
    assert arranged.pair_frequency() == sorted(arranged.pair_frequency())
    assert all(cosine < -0.95 for cosine in arranged.pair_cosine)


def test_figure5_order_lists_unpaired_units_last_by_frequency_and_every_unit_once():
    units, _ = _gratings_and_negatives()
    lonely = torch.stack([grating(8, 8, 3, 3), grating(8, 8, 0, 1, phase=1.0)])
    arranged = figure5_order(torch.cat([units, lonely]))
    assert arranged.order[-2:] == [17, 16]  # low (1/8) before high (3 * sqrt(2) / 8)
    assert sorted(arranged.order) == list(range(18))


def test_within_a_pair_the_first_unit_is_positive_where_the_two_differ_most():
    units, _ = _gratings_and_negatives()
    for i, j in figure5_order(units).pairs:
        strongest = (units[i] - units[j]).abs().argmax()
        assert units[i].flatten()[strongest] > 0 > units[j].flatten()[strongest]


def test_a_block_that_does_not_exist_is_a_value_error_naming_the_count():
    model = create_model("mixer_cifar_tiny")
    with pytest.raises(ValueError, match=r"block 4 does not exist: this model has 4 blocks"):
        token_mixing_units(model, 4)


def test_units_of_the_wrong_shape_are_a_value_error():
    with pytest.raises(ValueError, match=r"\(K, h, w\)"):
        spatial_frequency(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="max_cosine"):
        pair_opposite_phase(torch.zeros(2, 8, 8), max_cosine=-2)
