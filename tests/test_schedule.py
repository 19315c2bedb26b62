import pytest
import torch

from mixer_edu import create_model
from mixer_edu.train import lr_factor, parameter_groups, warmup_cosine


def test_learning_rate_warms_up_linearly_then_follows_a_cosine_to_zero():
    factors = [lr_factor(step, warmup_steps=4, total_steps=12) for step in range(12)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and factors == sorted(factors[:4]) + sorted(factors[4:], reverse=True)
    assert factors[8] == pytest.approx(0.5)  # halfway through the cosine
    assert lr_factor(12, 4, 12) == pytest.approx(0.0)
    assert lr_factor(12, 4, 12, final=0.1) == pytest.approx(0.1)


def test_scheduler_sets_the_learning_rate_to_the_factor_times_the_peak():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    scheduler = warmup_cosine(optimizer, warmup_steps=3, total_steps=10, final=0.2)
    for step in range(10):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * lr_factor(step, 3, 10, 0.2))
        optimizer.step()
        scheduler.step()


def test_weight_decay_skips_biases_and_norms():
    model = create_model("mixer_cifar_tiny")
    decay, no_decay = parameter_groups(model, 0.05)
    assert all(p.ndim >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.05
    assert all(p.ndim == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
