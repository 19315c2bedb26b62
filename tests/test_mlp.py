import torch
from timm.layers import Mlp as TimmMlp

from mixer_edu import Mlp

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
