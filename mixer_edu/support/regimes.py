"""What the course means by "converged", "overfitting" and "a difference", as code.

A sentence in a notebook that interprets a training result claims a regime: "the Mixer
overfits", "DropPath narrows the gap", "the CNN is ahead". Each claim is only as good as the runs
behind it, so the words are defined here once, and the tests check every interpreted reference
run against them (`mixer_edu.tools.experiments`):

- **converged**: over the last quarter of training, test accuracy moved by less than
  `CONVERGED_WITHIN` (about a point): from its test at the start of that quarter to its test at
  the end. A run still climbing says nothing about where it ends. (The ups and downs between
  those two tests are not counted: a model trained with DropPath or mixup changes a little from
  epoch to epoch even when it has stopped improving.)
- **overfitting**: training accuracy (measured without augmentation) is at least
  `OVERFITTING_GAP` (about ten points) above test accuracy. The paper's small-data regime is this
  one ("all Mixer models strongly overfit", Section 3.3), not a model still learning.
- **a difference**: over the seeds, the two ranges of a result do not overlap. Where they overlap,
  the course says that no difference was measured, whatever the means say.

Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

CONVERGED_WITHIN = 0.01  # largest move of test accuracy over the last quarter of training
OVERFITTING_GAP = 0.10  # smallest train-minus-test gap called overfitting


def last_quarter_start(total_epochs: int) -> int:
    """The first epoch of the last quarter of a run of `total_epochs`: `ceil(0.75 * total)`."""
    return -(-3 * total_epochs // 4)


def last_quarter(epochs: Sequence[int], total_epochs: int) -> list[int]:
    """The positions of `epochs` (the tested epochs) that lie in the last quarter of training.

    The quarter starts at epoch `ceil(0.75 * total_epochs)`, so a run tested at that epoch and at
    its end is enough to judge it.
    """
    start = last_quarter_start(total_epochs)
    return [k for k, epoch in enumerate(epochs) if epoch >= start]


def last_quarter_move(epochs: Sequence[int], test_acc: Sequence[float], total_epochs: int) -> float:
    """How far test accuracy moved over the last quarter of training (a drop counts as well).

    Args:
        epochs: the epochs at which the run was tested (ascending).
        test_acc: the test accuracy at each of them.
        total_epochs: the length of the run.

    Returns:
        `|accuracy at the end - accuracy at the quarter's first test|`.
    """
    if len(epochs) != len(test_acc):
        raise ValueError(f"{len(epochs)} tested epochs but {len(test_acc)} accuracies.")
    quarter = [test_acc[k] for k in last_quarter(epochs, total_epochs)]
    if len(quarter) < 2:
        raise ValueError(
            f"a run of {total_epochs} epochs tested at {list(epochs)} has fewer than two tests in "
            f"its last quarter (from epoch {last_quarter_start(total_epochs)}); test it there."
        )
    return abs(quarter[-1] - quarter[0])


def converged(epochs: Sequence[int], test_acc: Sequence[float], total_epochs: int) -> bool:
    """Test accuracy moved by less than `CONVERGED_WITHIN` over the last quarter of training."""
    return last_quarter_move(epochs, test_acc, total_epochs) < CONVERGED_WITHIN


def overfitting(train_acc: float, test_acc: float) -> bool:
    """Training accuracy is at least `OVERFITTING_GAP` above test accuracy."""
    return round(train_acc - test_acc, 9) >= OVERFITTING_GAP  # 0.7 - 0.6 is 0.0999...


def ranges_overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether the ranges (lowest to highest) of two results over seeds overlap."""
    if not a or not b:
        raise ValueError("each result needs at least one seed.")
    return min(a) <= max(b) and min(b) <= max(a)


def higher(a: Sequence[float], b: Sequence[float]) -> bool:
    """`a` measured higher than `b`: every seed of `a` above every seed of `b`."""
    ranges_overlap(a, b)  # the same check that each result has a seed
    return min(a) > max(b)


def differ(a: Sequence[float], b: Sequence[float]) -> bool:
    """A difference was measured: the two ranges over seeds do not overlap."""
    return higher(a, b) or higher(b, a)


def compare_words(a: Sequence[float], b: Sequence[float], name_a: str, name_b: str) -> str:
    """What may be said of two results over seeds: which is higher, or that no difference showed."""
    if ranges_overlap(a, b):
        return f"no difference measured between {name_a} and {name_b} (the ranges overlap)"
    (top, high), (bottom, low) = (
        ((name_a, a), (name_b, b)) if higher(a, b) else ((name_b, b), (name_a, a))
    )
    apart = 100 * (min(high) - max(low))
    return f"{top} higher than {bottom} (the ranges do not overlap: {apart:.1f} points apart)"
