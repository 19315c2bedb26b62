import pytest
import torch
from timm.layers import DropPath as TimmDropPath
from timm.layers import drop_path as timm_drop_path

from mixer_edu import DropPath, drop_path, drop_path_rates


def test_drop_path_equals_timm_in_train_mode_under_the_same_seed():
    x = torch.randn(64, 5, 7)
    for scale in (True, False):
        torch.manual_seed(3)
        ours = drop_path(x, 0.3, training=True, scale_by_keep=scale)
        torch.manual_seed(3)
        theirs = timm_drop_path(x, 0.3, training=True, scale_by_keep=scale)
        assert torch.equal(ours, theirs)


def test_drop_path_module_equals_timm_module():
    x = torch.randn(32, 4, 8)
    torch.manual_seed(5)
    ours = DropPath(0.25).train()(x)
    torch.manual_seed(5)
    theirs = TimmDropPath(0.25).train()(x)
    assert torch.equal(ours, theirs)


def test_drop_path_drops_whole_samples_not_elements():
    x = torch.randn(400, 6, 5) + 3.0  # no element is 0 by chance
    keep = 0.6
    out = drop_path(x, 1 - keep, training=True)
    dropped = (out == 0).flatten(1)
    # every sample is either dropped entirely or kept entirely
    assert torch.all(dropped.all(dim=1) | ~dropped.any(dim=1))
    kept = ~dropped.all(dim=1)
    torch.testing.assert_close(out[kept], x[kept] / keep)
    assert 0 < kept.sum() < len(x)


def test_rescaling_by_keep_prob_preserves_the_expectation():
    x = torch.full((200_000, 1), 2.0)
    for p in (0.1, 0.5, 0.8):
        scaled = drop_path(x, p, training=True).mean().item()
        unscaled = drop_path(x, p, training=True, scale_by_keep=False).mean().item()
        # the standard error of the mean is below 0.02 for these sizes; 0.06 is three of them
        assert abs(scaled - 2.0) < 0.06
        assert abs(unscaled - 2.0 * (1 - p)) < 0.06


def test_drop_path_is_the_identity_in_eval_mode_and_at_zero():
    x = torch.randn(8, 3)
    assert drop_path(x, 0.5, training=False) is x
    assert drop_path(x, 0.0, training=True) is x
    module = DropPath(0.5).eval()
    assert module(x) is x


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_drop_probability_outside_zero_one_is_a_value_error(p):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        DropPath(p)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        drop_path(torch.ones(2, 2), p, training=True)


def test_drop_probability_of_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="number"):
        DropPath("0.1")


def test_constant_schedule_repeats_the_rate():
    assert drop_path_rates(0.1, 4) == [0.1] * 4


def test_linear_schedule_rises_from_zero_to_the_rate_like_timm():
    from timm.layers import calculate_drop_path_rates

    rates = drop_path_rates(0.2, 5, "linear")
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2)
    assert rates == pytest.approx(calculate_drop_path_rates(0.2, 5))
    with pytest.raises(ValueError, match="schedule"):
        drop_path_rates(0.2, 5, "cosine")
