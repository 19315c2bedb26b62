import torch
from einops import rearrange
from timm.layers import Mlp as TimmMlp

from mixer_edu import Mlp
from mixer_edu.mlp import linear_along_first_axis, mlp_along_first_axis

from .helpers import randomize_


def test_mlp_has_timm_keys_and_equals_timm_in_eval_mode():
    ours = randomize_(Mlp(16, 64))
    theirs = TimmMlp(16, 64)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(4, 7, 16)
    assert torch.equal(ours.eval()(x), theirs.eval()(x))


def test_mlp_equals_timm_with_dropout_in_train_mode_under_the_same_seed():
    ours = randomize_(Mlp(16, 64, drop=0.3))
    theirs = TimmMlp(16, 64, drop=0.3)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(4, 7, 16)
    torch.manual_seed(1)
    a = ours.train()(x)
    torch.manual_seed(1)
    b = theirs.train()(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, ours.eval()(x))  # dropout really was active


def test_mlp_acts_on_the_last_axis_only():
    mlp = randomize_(Mlp(8, 32, out_features=5))
    x = torch.randn(3, 6, 8)
    out = mlp(x)
    assert out.shape == (3, 6, 5)
    # every position is transformed on its own: changing one row leaves the others unchanged
    x2 = x.clone()
    x2[1, 2] += 1.0
    changed = (mlp(x2) != out).any(dim=-1)
    assert changed[1, 2] and changed.sum() == 1


def test_linear_along_first_axis_is_a_linear_on_the_permuted_tensor():
    linear = randomize_(torch.nn.Linear(12, 4))
    x = torch.randn(12, 3, 8)  # (L, B, D)
    expected = rearrange(linear(rearrange(x, "l b d -> b d l")), "b d s -> s b d")
    torch.testing.assert_close(linear_along_first_axis(linear, x), expected, rtol=0, atol=1e-6)


def test_mlp_along_first_axis_is_the_mlp_on_the_permuted_tensor():
    mlp = randomize_(Mlp(12, 5))
    x = torch.randn(12, 3, 8)  # (L, B, D)
    expected = mlp(x.permute(2, 1, 0)).permute(2, 1, 0)
    torch.testing.assert_close(mlp_along_first_axis(mlp, x), expected, rtol=0, atol=1e-6)
