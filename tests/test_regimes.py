"""The words the notebooks use for training results: converged, overfitting, a difference."""

import pytest

from mixer_edu.support import regimes


def test_converged_looks_only_at_the_last_quarter():
    epochs = [5, 10, 15, 16, 17, 18, 19, 20]
    climbing_early = [0.20, 0.40, 0.600, 0.604, 0.606, 0.607, 0.608, 0.609]
    assert regimes.converged(epochs, climbing_early, total_epochs=20)
    still_climbing = [0.20, 0.40, 0.50, 0.52, 0.54, 0.56, 0.58, 0.60]
    assert not regimes.converged(epochs, still_climbing, total_epochs=20)
    assert regimes.last_quarter_move(epochs, still_climbing, 20) == pytest.approx(0.10)  # from 15


def test_converged_counts_a_drop_as_movement_too():
    epochs = [15, 20]
    assert not regimes.converged(epochs, [0.60, 0.58], total_epochs=20)
    assert regimes.converged(epochs, [0.60, 0.595], total_epochs=20)


def test_converged_ignores_ups_and_downs_in_between():
    epochs = [15, 16, 17, 18, 19, 20]
    noisy_but_flat = [0.496, 0.491, 0.486, 0.495, 0.484, 0.493]  # DropPath's epoch-to-epoch noise
    assert regimes.converged(epochs, noisy_but_flat, total_epochs=20)


def test_a_run_needs_two_tests_in_its_last_quarter():
    with pytest.raises(ValueError, match="fewer than two tests in its last quarter"):
        regimes.last_quarter_move([5, 10, 20], [0.1, 0.2, 0.3], total_epochs=20)
    with pytest.raises(ValueError, match="2 tested epochs but 3 accuracies"):
        regimes.last_quarter_move([15, 20], [0.1, 0.2, 0.3], total_epochs=20)


def test_overfitting_is_a_gap_of_ten_points():
    assert regimes.overfitting(train_acc=0.95, test_acc=0.60)
    assert regimes.overfitting(train_acc=0.70, test_acc=0.60)
    assert not regimes.overfitting(train_acc=0.65, test_acc=0.60)
    assert not regimes.overfitting(train_acc=0.30, test_acc=0.30)  # underfitting is not it


def test_a_difference_needs_ranges_apart():
    assert regimes.differ([0.50, 0.52, 0.55], [0.40, 0.45, 0.49])
    assert not regimes.differ([0.50, 0.52, 0.55], [0.40, 0.45, 0.50])  # touching: overlap
    assert not regimes.differ([0.30, 0.60], [0.44, 0.46])  # one range inside the other
    higher = regimes.compare_words([0.2, 0.3], [0.6, 0.7], "Mixer", "CNN")
    assert higher.startswith("CNN higher than Mixer")
    words = regimes.compare_words([0.2, 0.5], [0.3, 0.4], "a", "b")
    assert words.startswith("no difference measured")
    with pytest.raises(ValueError, match="at least one seed"):
        regimes.differ([], [0.1])
