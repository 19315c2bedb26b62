"""Checkers for exercise 5: label smoothing, a recipe change with a measurable effect.

Cross-entropy compares the model's predicted distribution p = softmax(z) with a target
distribution q. Plain training uses the one-hot target (all mass on the true class y). Label
smoothing with strength ε moves ε of that mass to a uniform distribution over all K classes:

    q_k = (1 - ε) [k = y] + ε / K          loss = - Σ_k q_k log p_k,   averaged over the batch

so the true class gets 1 - ε + ε/K and every other class ε/K. The loss is smallest when p = q,
and then equals the entropy H(q) > 0: a smoothed model is never rewarded for pushing its
confidence towards 1. (Szegedy et al. 2016; PyTorch's `F.cross_entropy(..., label_smoothing=ε)`.)

Part 1: `check_smoothed_cross_entropy` checks the student's loss against PyTorch's on several
batches, and recognises the usual slips (ε over the K - 1 wrong classes, targets that do not sum
to 1, probabilities instead of log-probabilities, an unstable log(softmax), the sum instead of the
mean, one loss per sample).

Part 2: the student predicts how two short training runs with the package's engine
(`mixer_edu.train`) will differ, one without and one with label smoothing, and
`check_smoothing_predictions` compares each prediction with what was measured.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F

from .checks import call_and_check, check_gradients, check_values
from .feedback import Feedback, broadcast_sizes, close, isolated

# (batch, classes, smoothing, logit scale). Scale 60 makes softmax underflow to exactly 0 for the
# unlikely classes, where log(softmax(z)) becomes -inf but log_softmax stays finite.
CASES = [
    (4, 10, 0.1, 3.0),
    (2, 3, 0.0, 3.0),
    (5, 10, 0.3, 3.0),
    (1, 2, 0.5, 3.0),
    (16, 100, 0.1, 3.0),
    (6, 10, 0.1, 60.0),
]


def smoothed_targets(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """q = (1 - ε) one_hot(y) + ε / K, `(B,) -> (B, K)`."""
    one_hot = F.one_hot(labels, num_classes).float()
    return (1.0 - smoothing) * one_hot + smoothing / num_classes


def smallest_loss(num_classes: int, smoothing: float) -> float:
    """The entropy H(q) of the smoothed target: the lowest loss any model can reach."""
    q = smoothed_targets(torch.zeros(1, dtype=torch.long), num_classes, smoothing)[0]
    q = q[q > 0]
    return -(q * q.log()).sum().item()


def _mistakes(logits: torch.Tensor, labels: torch.Tensor, smoothing: float):
    """The loss computed in typical wrong ways, with the hint for each."""
    k = logits.shape[1]
    one_hot = F.one_hot(labels, k).float()
    log_p = logits.log_softmax(dim=1)
    q = smoothed_targets(labels, k, smoothing)

    def loss(targets, log_probabilities, reduce=torch.mean):
        return reduce(-(targets * log_probabilities).sum(dim=1))

    if smoothing > 0:
        yield (
            loss(one_hot, log_p),
            "the smoothing is ignored: this is the plain cross-entropy with one-hot targets",
        )
    others = (1.0 - smoothing) * one_hot + smoothing / (k - 1) * (1.0 - one_hot)
    yield (
        loss(others, log_p),
        "ε is spread over the K - 1 wrong classes only; label smoothing (and PyTorch) spreads it "
        "over all K classes, so the true class keeps 1 - ε + ε/K",
    )
    yield (
        loss(one_hot + smoothing / k, log_p),
        "the targets sum to 1 + ε: the ε given to the uniform part must be taken away from the "
        "true class",
    )
    yield (
        loss(q, log_p, torch.sum),
        "the losses of the samples are summed; take their mean, so the loss (and the learning "
        "rate that suits it) does not depend on the batch size",
    )
    yield (
        loss(q, logits.softmax(dim=1)),
        "the targets are multiplied by probabilities; cross-entropy uses log-probabilities",
    )
    yield (
        loss(q, logits),
        "the targets are multiplied by the raw logits; cross-entropy uses log-probabilities, "
        "log_softmax(logits)",
    )
    yield (-loss(q, log_p), "the sign is flipped: cross-entropy is -Σ q log p, never negative")
    yield (
        -(q * log_p).mean(),
        "the loss is also averaged over the K classes: sum q_k log p_k over the classes of a "
        "sample, then take the mean over the samples",
    )
    picked = log_p[:, labels]  # (B, B): every sample's columns of all the batch's labels
    yield (
        -(1.0 - smoothing) * picked.mean() - smoothing * log_p.mean(dim=1).mean(),
        "the true class's log-probability is picked with an index on the class axis alone, "
        "which gives every sample the columns of all the batch's labels, a (B, B) table; each "
        "sample needs the log-probability of its own label only",
    )
    yield (
        loss(q, logits.log_softmax(dim=0)),
        "log_softmax normalises over the batch (dim 0); the probabilities of one sample are "
        "normalised over its classes (dim 1)",
    )
    if smoothing > 0:
        yield (
            loss((1.0 - smoothing) * one_hot, log_p),
            "only the (1 - ε) one-hot part of the target is used; the uniform part ε / K, "
            "given to every class, is missing",
        )
        yield (
            loss((1.0 - smoothing) * one_hot + smoothing * (1.0 - one_hot) / k, log_p),
            "the true class gets only 1 - ε, so the targets sum to 1 - ε/K; the uniform part "
            "ε / K goes to every class, the true one included",
        )
        yield (
            (1.0 - smoothing) * loss(one_hot, log_p) + smoothing * loss(torch.ones_like(q), log_p),
            "the uniform part adds up -log p over all K classes with weight ε; each class gets "
            "ε / K, so it is the mean over the classes, not their sum",
        )


UNDERFLOW = (
    "for confident logits softmax underflows to exactly 0 for the unlikely classes, and "
    "log(0) = -inf; log_softmax computes the same log-probabilities without that step"
)


def _shape_hint(out: torch.Tensor, batch: int) -> str:
    if out.shape == (batch,):
        return "one loss per sample: return their mean, a single number"
    return "the loss of a batch is a single number (the mean over samples)"


def _exception_hint(batch: int, classes: int):
    def hint(error: BaseException) -> str | None:
        sizes = broadcast_sizes(error)
        if sizes is None:
            return None
        if set(sizes) == {batch, classes}:
            return (
                f"A vector with one number per sample (B={batch}) met the (B, K) table of the "
                f"K={classes} classes: broadcasting lines axes up from the last one, so the "
                "vector was matched with the classes, not the samples; a per-sample value needs "
                "a class axis of size 1, (B, 1), to line up with the samples"
            )
        other = sizes[0] if sizes[1] == classes else sizes[1]
        if classes in sizes and other < classes:
            return (
                f"A table with {other} columns met one with a column for each of the "
                f"K={classes} classes: the one-hot targets need K columns even when no label in "
                "the batch is the last class (a one-hot encoding that guesses K from the labels "
                "it sees makes too few)"
            )
        return None

    return hint


def _diagnose(out: torch.Tensor, logits, labels, smoothing: float) -> str:
    for mistaken, hint in _mistakes(logits, labels, smoothing):
        if close(out, mistaken):
            return hint
    expected = F.cross_entropy(logits, labels, label_smoothing=smoothing)
    return (
        f"the loss is {out.item():.4g}, PyTorch's label-smoothed cross-entropy gives "
        f"{expected.item():.4g}; compare your target q with (1 - ε) one_hot + ε / K"
    )


def check_smoothed_cross_entropy(smoothed_cross_entropy) -> bool:
    """Check a student's `smoothed_cross_entropy(logits, labels, smoothing)` -> mean loss.

    Compares it with `F.cross_entropy(logits, labels, label_smoothing=smoothing)` on batches of
    2 to 100 classes, smoothing 0 to 0.5, and very confident logits; also checks that gradients
    reach the logits. Prints one line per check; returns True if all pass.
    """
    feedback = Feedback("label-smoothed cross-entropy")
    with isolated():
        for b, k, smoothing, scale in CASES:
            label = f"{b} sample{'s' if b > 1 else ''}, {k} classes, smoothing {smoothing}"
            if scale > 10:
                label += ", very confident logits"
            logits = scale * torch.randn(b, k)
            labels = torch.randint(0, k, (b,))
            expected = F.cross_entropy(logits, labels, label_smoothing=smoothing)
            ok, out = call_and_check(
                feedback,
                f"loss on {label}",
                smoothed_cross_entropy,
                logits,
                labels,
                smoothing,
                expected=expected,
                inputs={"logits": logits, "labels": labels},
                hint=_exception_hint(b, k),
                shape_hint=lambda out, b=b: _shape_hint(out, b),
                finite_hint=UNDERFLOW,
            )
            if not ok:
                return feedback.stop()
            diagnose = partial(_diagnose, logits=logits, labels=labels, smoothing=smoothing)
            passed = f"{label}: equal to PyTorch's label_smoothing={smoothing}"
            if not check_values(feedback, label, out, expected, diagnose, passed):
                return feedback.stop()

        logits = torch.randn(4, 10, requires_grad=True)
        labels = torch.randint(0, 10, (4,))
        check_gradients(
            feedback,
            "the loss",
            lambda: smoothed_cross_entropy(logits, labels, 0.1),
            {"the logits": logits},
            "gradients flow back to the logits, so the loss can train a model",
        )
    return feedback.done()


# --- Part 2: predictions against measurements ------------------------------------------------

DIRECTIONS = ("lower", "higher")

PREDICTIONS = {
    "confidence": "the mean confidence (largest softmax probability) on the test images",
    "train_loss": "the training loss of the last epoch, as the engine reports it",
}

WHY = {
    "confidence": (
        "with smoothing, the target itself gives the true class only 1 - ε + ε/K, so the model "
        "is pulled towards that confidence and never towards 1"
    ),
    "train_loss": (
        "the smoothed loss cannot go below the entropy of the smoothed target, "
        "H(q) > 0, while the plain loss can approach 0; both runs report the loss they train on"
    ),
}


def mean_confidence(logits: torch.Tensor) -> float:
    """The mean over samples of the largest softmax probability, `(N, K) -> float`."""
    return logits.float().softmax(dim=1).max(dim=1).values.mean().item()


def check_smoothing_predictions(
    predictions, without: dict, with_smoothing: dict, min_change: float = 0.005
) -> bool:
    """Compare predicted directions with two measured runs.

    Args:
        predictions: `{"confidence": "lower" | "higher", "train_loss": "lower" | "higher"}`:
            how each quantity changes when label smoothing is switched on.
        without, with_smoothing: the measurements of the run without and with smoothing, each a
            dict with the keys `confidence` and `train_loss`.
        min_change: a smaller difference is not a measured direction (the runs were too short
            to tell), and fails whatever was predicted.

    Prints one line per prediction; returns True if all match what was measured.
    """
    feedback = Feedback("predictions")
    given = predictions if isinstance(predictions, dict) else {}
    missing = [key for key in PREDICTIONS if key not in given]
    if missing:
        feedback.fail(
            "the predictions must be a dict with the keys "
            + ", ".join(f"{key!r} ({what})" for key, what in PREDICTIONS.items())
            + f"; missing: {', '.join(missing)}."
        )
        return feedback.stop()
    runs = {"without": without, "with_smoothing": with_smoothing}
    measured = {name: _measurements(feedback, name, run) for name, run in runs.items()}
    if None in measured.values():
        return feedback.stop()
    for key, what in PREDICTIONS.items():
        predicted = predictions[key]
        if isinstance(predicted, str):
            predicted = predicted.strip().lower()
        if predicted not in DIRECTIONS:
            feedback.fail(f"{key}: predict 'lower' or 'higher', not {predictions[key]!r}.")
            continue
        before, after = measured["without"][key], measured["with_smoothing"][key]
        direction = "higher" if after > before else "lower"
        if abs(after - before) < min_change:
            feedback.fail(
                f"{key}: the two runs differ by only {after - before:+.4f}, too little to tell a "
                "direction; train longer (more epochs or images) and measure again."
            )
        elif predicted == direction:
            feedback.ok(f"{key}: {direction} with label smoothing, as you predicted")
        else:
            feedback.fail(
                f"{key}: you predicted {predicted}, but {what} came out {direction} with label "
                f"smoothing. Why: {WHY[key]}."
            )
    return feedback.done()


def _measurements(feedback: Feedback, name: str, run) -> dict[str, float] | None:
    """The run's measurements as finite floats (tensors and NumPy numbers welcome), or None."""
    values = {}
    for key in PREDICTIONS:
        try:
            values[key] = float(run[key])
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError):
            feedback.fail(
                f"the measurements of the run {name} have no number under {key!r}: pass the "
                "dicts the notebook measured, with the keys " + ", ".join(PREDICTIONS) + "."
            )
            return None
        if not math.isfinite(values[key]):
            feedback.fail(
                f"the run {name} measured {key} = {values[key]}: that run diverged (NaN or inf), "
                "so it shows no direction; lower the learning rate or check the loss, and train "
                "again."
            )
            return None
    return values


def confidence_ceiling(num_classes: int, smoothing: float) -> float:
    """The confidence a perfectly fitted smoothed model has: 1 - ε + ε/K."""
    return 1.0 - smoothing + smoothing / num_classes
