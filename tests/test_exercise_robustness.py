"""Checkers always finish with a verdict, and judge the answer, not its form.

One test per way a student's answer can break a naive checker: it hangs, exits, prints a flood,
returns NaN, the wrong dtype, changes its inputs or the layer it was given, cuts a parameter off
from the gradient, breaks the backward pass, or is handed over in an unexpected form. Each
asserts the verdict *and* the hint, and that nothing escapes the checker.
"""

import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

from mixer_edu import DropPath as PackageDropPath
from mixer_edu import drop_path, exercises, patchify
from mixer_edu.exercises import sandbox
from tests.exercise_feedback import assert_accepted, assert_rejected, run
from tests.test_exercise_checkers import RIGHT_ANSWERS, Block, correct, drop_path_module


def mixing(mlp, x):
    return mlp(x.transpose(1, 2)).transpose(1, 2)


def smoothed(logits, labels, smoothing):
    return nn.functional.cross_entropy(logits, labels, label_smoothing=smoothing)


@pytest.fixture
def short_time_limit(monkeypatch):
    monkeypatch.setattr(sandbox, "TIME_LIMIT", 0.3)


# --- Isolation: a verdict whatever the code does ---------------------------------------------


def test_an_infinite_loop_is_stopped_with_a_verdict(short_time_limit, capsys):
    def loops_forever(images, patch_size):
        while True:
            pass

    start = time.perf_counter()
    assert_rejected(exercises.check_patchify, loops_forever, "did not finish within 0.3 s", capsys)
    assert time.perf_counter() - start < 5


def test_a_loop_that_swallows_every_exception_is_still_stopped(short_time_limit, capsys):
    def stubborn(mlp, x):
        while True:
            try:
                time.sleep(0.01)
            except BaseException:  # noqa: S110 - the student's code, not ours
                pass

    assert_rejected(exercises.check_token_mixing, stubborn, "a loop that never ends", capsys)


def test_the_thread_fallback_gives_the_same_verdict(short_time_limit, monkeypatch, capsys):
    """Where no alarm signal exists (Windows), the call runs in a thread that is abandoned."""
    monkeypatch.setattr(sandbox, "_can_use_alarm", lambda: False)
    stop = []

    def loops(mlp, x):
        while not stop:
            time.sleep(0.01)

    out = assert_rejected(
        exercises.check_token_mixing, loops, "still running in the background", capsys
    )
    stop.append(True)
    assert "restart the kernel" in out
    assert_accepted(exercises.check_token_mixing, mixing, 5, capsys)


@pytest.mark.parametrize("exit_", [lambda: sys.exit(), lambda: sys.exit(3), lambda: exit("bye")])
def test_sys_exit_in_student_code_becomes_feedback(exit_, capsys):
    def exits(images, patch_size):
        exit_()

    assert_rejected(exercises.check_patchify, exits, "called sys.exit(), exit() or quit()", capsys)


def test_a_flood_of_prints_shows_only_a_few_lines_before_the_verdict(capsys):
    def chatty(mlp, x):
        for i in range(10_000):
            print(f"debug line {i}")
        print("oops", file=sys.stderr)
        return mixing(mlp, x)

    out = assert_accepted(exercises.check_token_mixing, chatty, 5, capsys)
    assert "your code printed" in out and "debug line 0" in out
    assert "debug line 5" not in out and "more lines" in out
    assert len(out.splitlines()) < 15


def test_nothing_reaches_stderr_from_student_warnings(capsys):
    import warnings

    def warns(images, patch_size):
        warnings.warn("deprecated thing", stacklevel=1)
        return patchify(images, patch_size)

    exercises.check_patchify(warns)
    assert capsys.readouterr().err == ""


# --- The shared opening: dtype, NaN, in-place ----------------------------------------------


@pytest.mark.parametrize(
    "checker, answer, hint",
    [
        (
            exercises.check_patchify,
            lambda im, p: patchify(im, p).long(),
            "dtype torch.int64, expected",
        ),
        (exercises.check_patchify, lambda im, p: patchify(im, p).half(), "dtype torch.float16"),
        (
            exercises.check_token_mixing,
            lambda mlp, x: mixing(mlp, x).double(),
            "dtype torch.float64",
        ),
        (
            exercises.check_smoothed_cross_entropy,
            lambda z, y, e: smoothed(z, y, e).double(),
            "float64",
        ),
        (
            exercises.check_drop_path,
            drop_path_module(lambda x, p: x * (torch.rand(x.shape[0], 1, 1) < 1 - p).double()),
            "dtype torch.float64",
        ),
    ],
)
def test_a_result_of_the_wrong_dtype_is_rejected(checker, answer, hint, capsys):
    assert_rejected(checker, answer, hint, capsys)


@pytest.mark.parametrize(
    "checker, answer",
    [
        (exercises.check_token_mixing, lambda mlp, x: mixing(mlp, x) / (x[:1, :1, :1] * 0)),
        (exercises.check_patchify, lambda im, p: patchify(im, p) * float("nan")),
    ],
)
def test_nan_results_are_rejected(checker, answer, capsys):
    assert_rejected(checker, answer, "contains NaN or inf", capsys)


def test_an_input_changed_in_place_is_caught_by_every_checker(capsys):
    def patchify_in_place(images, patch_size):
        out = patchify(images.clone(), patch_size)
        images.zero_()
        return out

    def mixing_in_place(mlp, x):
        out = mixing(mlp, x)
        x.mul_(2)
        return out

    def loss_in_place(logits, labels, smoothing):
        out = smoothed(logits.clone(), labels, smoothing)
        logits.sub_(logits.max())
        return out

    assert_rejected(exercises.check_patchify, patchify_in_place, "changed its input images", capsys)
    assert_rejected(exercises.check_token_mixing, mixing_in_place, "changed its input x", capsys)
    assert_rejected(exercises.check_smoothed_cross_entropy, loss_in_place, "input logits", capsys)


def test_changing_the_given_layer_is_caught_although_the_output_matches_it(capsys):
    def doubles_the_weights(mlp, x):
        with torch.no_grad():
            mlp.fc2.weight.mul_(2)  # the reference, if computed now, would agree
        return mixing(mlp, x)

    assert_rejected(
        exercises.check_token_mixing, doubles_the_weights, "changed the weights of the MLP", capsys
    )


def test_a_block_that_changes_its_own_weights_in_forward_is_rejected(capsys):
    class Drifting(Block):
        def forward(self, x):
            with torch.no_grad():
                self.norm1.weight.add_(0.1)
            return super().forward(x)

    assert_rejected(exercises.check_mixer_block, Drifting, "(norm1.weight) in place", capsys)


# --- Gradients -----------------------------------------------------------------------------


def test_a_layer_whose_weights_get_no_gradient_is_named(capsys):
    def frozen_first_layer(mlp, x):
        weight = mlp.fc1.weight.detach()
        hidden = mlp.act(nn.functional.linear(x.transpose(1, 2), weight, mlp.fc1.bias))
        return mlp.fc2(hidden).transpose(1, 2)

    assert_rejected(
        exercises.check_token_mixing,
        frozen_first_layer,
        "no gradient reaches the MLP's fc1.weight",
        capsys,
    )


def exp_then_log_in_place(h):
    """log(exp(h)) = h, but an in-place step in between breaks the backward pass."""
    e = h.exp()
    e.mul_(1.0)  # exp's backward needs its output, unchanged
    return e.log()


def test_an_in_place_op_that_breaks_backward_gets_feedback_not_a_traceback(capsys):
    def mixing_in_place(mlp, x):
        hidden = mlp.act(exp_then_log_in_place(mlp.fc1(x.transpose(1, 2))))
        return mlp.fc2(hidden).transpose(1, 2)

    class InPlaceBlock(Block):
        def forward(self, x):
            x = x + self.tokens(self.norm1(x))
            h = exp_then_log_in_place(self.mlp_channels.fc1(self.norm2(x)))
            return x + self.mlp_channels.fc2(self.mlp_channels.act(h))

    for checker, answer in [
        (exercises.check_token_mixing, mixing_in_place),
        (exercises.check_mixer_block, InPlaceBlock),
    ]:
        out = assert_rejected(checker, answer, "the backward pass through", capsys)
        assert "An in-place operation" in out and "Traceback" not in out


def test_a_loss_whose_backward_fails_gets_feedback(capsys):
    class Broken(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            raise RuntimeError("custom backward is broken")

    def loss(logits, labels, smoothing):
        return smoothed(Broken.apply(logits), labels, smoothing)

    assert_rejected(
        exercises.check_smoothed_cross_entropy,
        loss,
        "the backward pass through the loss raised",
        capsys,
    )


# --- DropPath: the form of the answer and its randomness -----------------------------------


def shared_seed_module():
    class SeededDropPath(nn.Module):
        def __init__(self, drop_prob):
            super().__init__()
            self.drop_prob = drop_prob
            self.generator = torch.Generator().manual_seed(0)

        def forward(self, x):
            if not self.training or self.drop_prob == 0:
                return x
            keep = 1 - self.drop_prob
            shape = (x.shape[0],) + (1,) * (x.ndim - 1)
            return x * (torch.rand(shape, generator=self.generator) < keep) / keep

    return SeededDropPath


def test_drop_path_instances_sharing_one_seed_are_caught(capsys):
    assert_rejected(exercises.check_drop_path, shared_seed_module(), "share one fixed seed", capsys)


@pytest.mark.parametrize(
    "answer, found",
    [
        (drop_path, "the function drop_path"),
        (lambda x, drop_prob=0.25, training=True: x, "the function <lambda>"),
        (PackageDropPath(0.25), "an instance of DropPath"),
        ("DropPath", "a str"),
    ],
)
def test_drop_path_checker_explains_a_function_or_instance_instead_of_the_class(
    answer, found, capsys
):
    out = assert_rejected(exercises.check_drop_path, answer, "needs the class DropPath", capsys)
    assert found in out


def test_drop_path_checker_accepts_a_module_with_a_mask_made_on_the_input(capsys):
    def like_input(x, p):
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - p)
        return x * keep / (1 - p)

    assert_accepted(exercises.check_drop_path, drop_path_module(like_input), 10, capsys)
    assert_accepted(exercises.check_drop_path, drop_path_module(correct), 10, capsys)


# --- Missing keys and unusual but right forms -----------------------------------------------


def test_missing_measurements_and_nan_measurements_get_feedback(capsys):
    predictions = {"confidence": "lower", "train_loss": "higher"}
    right = {"confidence": 0.6, "train_loss": 1.1}
    for without, hint in [
        ({"confidence": 0.8}, "no number under 'train_loss'"),
        ({"confidence": float("nan"), "train_loss": 0.7}, "that run diverged"),
        (None, "no number under 'confidence'"),
    ]:
        assert_rejected(
            lambda p, w=without: exercises.check_smoothing_predictions(p, w, right),
            predictions,
            hint,
            capsys,
        )


def test_predictions_in_unusual_but_right_forms_are_accepted(capsys):
    predictions = {"confidence": " Lower", "train_loss": "HIGHER", "note": "my reasoning"}
    without = {"confidence": torch.tensor(0.8), "train_loss": np.float32(0.7), "epochs": 10}
    with_smoothing = {"confidence": np.float64(0.6), "train_loss": torch.tensor(1.1)}
    verdict, out = run(
        lambda p: exercises.check_smoothing_predictions(p, without, with_smoothing),
        predictions,
        capsys,
    )
    assert verdict is True, out


def test_picture_answers_as_numpy_integers_or_0d_tensors_with_extra_keys_are_accepted(capsys):
    answers = {
        key: (np.int64(value) if isinstance(value, int) else np.array(value))
        for key, value in RIGHT_ANSWERS.items()
    }
    answers["channels_per_picture"] = torch.tensor(32)
    answers["local_unit"] = torch.tensor(RIGHT_ANSWERS["local_unit"])
    answers["my_notes"] = "the smooth one was easy"
    assert_accepted(exercises.check_picture_answers, answers, 6, capsys)


def test_a_loss_returned_as_a_0d_tensor_of_another_construction_is_accepted(capsys):
    def as_sum_then_divide(logits, labels, smoothing):
        k = logits.shape[1]
        q = (1 - smoothing) * nn.functional.one_hot(labels, k) + smoothing / k
        total = -(q * logits.log_softmax(dim=1)).sum()
        return total / torch.tensor(float(logits.shape[0]))

    assert_accepted(exercises.check_smoothed_cross_entropy, as_sum_then_divide, 7, capsys)


# --- Specific hints from probes ------------------------------------------------------------


def block_with_activation(make):
    class ActivationBlock(Block):
        def __init__(self, dim, num_tokens, tokens_hidden, channels_hidden):
            super().__init__(dim, num_tokens, tokens_hidden, channels_hidden)
            self.mlp_tokens.act = make()
            self.mlp_channels.act = make()

    return ActivationBlock


@pytest.mark.parametrize(
    "make, hint",
    [
        (lambda: nn.GELU(approximate="tanh"), "GELU's tanh approximation"),
        (nn.ReLU, "use ReLU"),
        (nn.Identity, "no non-linearity"),
    ],
)
def test_mixer_block_checker_names_the_activation_mistake(make, hint, capsys):
    out = assert_rejected(exercises.check_mixer_block, block_with_activation(make), hint, capsys)
    assert "order of LayerNorm" not in out


def test_mixer_block_checker_names_the_branch_that_differs(capsys):
    class ScaledChannels(Block):
        def forward(self, x):
            x = x + self.tokens(self.norm1(x))
            return x + 1.5 * self.mlp_channels(self.norm2(x))

    assert_rejected(
        exercises.check_mixer_block,
        ScaledChannels,
        "the difference is in the channel-mixing branch",
        capsys,
    )


def with_targets(make_targets, dim=1, reduce=torch.sum):
    def loss(logits, labels, smoothing):
        k = logits.shape[1]
        one_hot = nn.functional.one_hot(labels, k).float()
        return reduce(-(make_targets(one_hot, smoothing, k) * logits.log_softmax(dim=dim)), 1)

    return lambda z, y, e: loss(z, y, e).mean()


@pytest.mark.parametrize(
    "answer, hint",
    [
        (with_targets(lambda oh, e, k: (1 - e) * oh + e / k, reduce=torch.mean), "over the K"),
        (with_targets(lambda oh, e, k: (1 - e) * oh + e / k, dim=0), "normalises over the batch"),
        (with_targets(lambda oh, e, k: (1 - e) * oh), "the uniform part ε / K"),
        (with_targets(lambda oh, e, k: (1 - e) * oh + e / k * (1 - oh)), "sum to 1 - ε/K"),
        (
            lambda z, y, e: (
                (1 - e) * nn.functional.cross_entropy(z, y)
                - e * z.log_softmax(dim=1).sum(dim=1).mean()
            ),
            "not their sum",
        ),
    ],
)
def test_label_smoothing_checker_names_each_mistake(answer, hint, capsys):
    out = assert_rejected(exercises.check_smoothed_cross_entropy, answer, hint, capsys)
    assert "compare your target q" not in out


# --- Global state, interrupts, floods and unusual results ---------------------------------


def _changes_everything(mlp, x):
    """Student code that changes every global setting a checker or the notebook relies on."""
    result = mixing(mlp, x)  # a right answer, then the damage
    torch.set_default_dtype(torch.float64)
    torch.set_grad_enabled(False)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(3)
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002
    torch.matmul = lambda a, b: a  # a monkeypatch of torch
    nn.functional.gelu = lambda x, approximate="none": x
    np.mean = lambda *args, **kwargs: 0.0
    torch.Tensor.sum = lambda self, *args, **kwargs: self
    return result


def test_global_state_changed_by_student_code_is_put_back(capsys):
    import random

    random.seed(5)
    np.random.seed(5)  # noqa: NPY002
    before = (
        torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(), torch.get_rng_state(),
        np.random.get_state()[1].copy(), random.getstate(),  # noqa: NPY002
        torch.matmul, nn.functional.gelu, np.mean, torch.Tensor.sum,
    )  # fmt: skip
    verdict, out = run(exercises.check_token_mixing, _changes_everything, capsys)
    after = (
        torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(), torch.get_rng_state(),
        np.random.get_state()[1].copy(), random.getstate(),  # noqa: NPY002
        torch.matmul, nn.functional.gelu, np.mean, torch.Tensor.sum,
    )  # fmt: skip
    for old, new in zip(before, after, strict=True):
        assert old is new or (
            np.array_equal(old, new)
            if isinstance(old, np.ndarray)
            else torch.equal(old, new)
            if isinstance(old, torch.Tensor)
            else old == new
        ), (old, new)
    assert "the checker put it back" in out and "torch.get_default_dtype()" in out
    assert verdict is True, out  # the checker's own reference was not broken by the patches


def test_keyboard_interrupt_raised_by_student_code_gets_a_verdict(capsys):
    def interrupted(images, patch_size):
        raise KeyboardInterrupt

    assert_rejected(
        exercises.check_patchify, interrupted, "raised KeyboardInterrupt itself", capsys
    )


def test_a_real_ctrl_c_during_student_code_still_stops_the_checker():
    import os
    import signal

    def pressed_stop(images, patch_size):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)

    with pytest.raises(KeyboardInterrupt):
        exercises.check_patchify(pressed_stop)


def test_megabytes_of_prints_are_counted_not_kept(capsys):
    def floods(mlp, x):
        for _ in range(20_000):
            print("x" * 250)  # 5 MB
        return mixing(mlp, x)

    outcome = sandbox.run_student_code(floods, *_token_mixing_inputs())
    assert outcome.ok and len(outcome.output) <= sandbox.OUTPUT_KEPT
    assert outcome.output_size > 5_000_000 and outcome.output_lines == 20_000
    out = assert_accepted(exercises.check_token_mixing, floods, 5, capsys)
    assert "printed 20,000 lines, 5.0 MB" in out and len(out.splitlines()) < 15


def _token_mixing_inputs():
    from mixer_edu.mlp import Mlp

    return Mlp(4, 8), torch.randn(2, 4, 3)


@pytest.mark.parametrize(
    "answer, hint",
    [
        (lambda mlp, x: (y for y in [mixing(mlp, x)]), "a `yield` anywhere in a function"),
        (lambda mlp, x: mixing(mlp, x).detach().numpy(), "returned a NumPy array of shape"),
        (lambda mlp, x: mixing(mlp, x).squeeze(), "a batch of one image), the result lost"),
    ],
)
def test_a_generator_an_array_or_a_squeezed_batch_of_one_gets_a_verdict(answer, hint, capsys):
    assert_rejected(exercises.check_token_mixing, answer, hint, capsys)


class Lying(torch.Tensor):
    """A tensor subclass that claims every comparison succeeds and breaks every other op."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal):
            return True
        raise RuntimeError("this subclass breaks every operation")


def test_a_tensor_subclass_is_judged_by_its_numbers(capsys):
    def wrong_but_lying(mlp, x):
        return (mixing(mlp, x) * 2).as_subclass(Lying)

    def right_as_parameter_subclass(mlp, x):
        return mixing(mlp, x).as_subclass(Lying)

    assert_rejected(exercises.check_token_mixing, wrong_but_lying, "token mixing", capsys)
    verdict, out = run(exercises.check_token_mixing, right_as_parameter_subclass, capsys)
    assert verdict is True, out
