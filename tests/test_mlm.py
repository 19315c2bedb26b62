import json
import math
import string
from dataclasses import replace

import pytest
import torch

from mixer_edu import mlm, mlm_text
from mixer_edu.mlm import MlmConfig
from mixer_edu.mlm_text import IGNORE_INDEX, CharVocabulary, MlmData, mask_tokens
from mixer_edu.support.errors import TrainingDivergedError

TINY_TEXT = "the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs. " * 40
TINY = dict(num_tokens=16, d_model=32, num_layers=1, num_heads=2, batch_size=16, warmup_steps=5)


def test_clean_text_gives_printable_ascii_with_single_spaces():
    text = "The \u201cassert\u201d statement\n*********\n\n  caf\u00e9 \u2014 na\u00efve\u2026\tok"
    assert mlm_text.clean_text(text) == 'The "assert" statement cafe -- naive... ok'


def test_corpus_is_english_documentation_that_ships_with_python():
    text = mlm_text.load_corpus()
    assert len(text) > 100_000
    assert set(text) <= set(string.printable) - set("\t\n\r\x0b\x0c")
    assert "The simple form" in text and "assert" in text  # the `assert` topic


def test_vocabulary_round_trips_and_rejects_unknown_characters():
    vocab = CharVocabulary.from_text("hello world")
    assert vocab.size == len(set("hello world")) + 1 and vocab.mask_id == vocab.size - 1
    ids = vocab.encode("world hello")
    assert ids.dtype == torch.long and vocab.decode(ids) == "world hello"
    assert vocab.decode(torch.tensor([vocab.mask_id])) == mlm_text.MASK_SYMBOL
    with pytest.raises(ValueError, match=r"\['z'\] are not in the vocabulary"):
        vocab.encode("zero")


def test_default_vocabulary_is_printable_ascii_whatever_the_python_version():
    data = MlmData(num_tokens=64)
    assert data.vocab == CharVocabulary.printable() and data.vocab.size == 96
    assert data.vocab.decode(data.vocab.encode("x = [1, 2]  # ok")) == "x = [1, 2]  # ok"


def test_heldout_blocks_never_overlap_the_training_blocks():
    codes = torch.randint(33, 123, (16 * 8 * 25,), generator=torch.Generator().manual_seed(0))
    text = "".join(map(chr, codes.tolist()))  # random: no two windows of 8 are alike
    data = MlmData(text, num_tokens=8)
    assert len(data.train_blocks) == 23 and len(data.heldout_blocks) == 2  # blocks 9 and 19
    train = {tuple(block.tolist()) for block in data.train_blocks}
    assert not any(tuple(block.tolist()) in train for block in data.heldout_blocks)
    windows = data.train_batch(64, torch.Generator().manual_seed(0))
    assert windows.shape == (64, 8)
    held = {tuple(s.tolist()) for s in data.heldout_sequences()}
    assert not any(tuple(w.tolist()) in held for w in windows)


def test_too_little_text_is_a_clear_error():
    with pytest.raises(ValueError, match="too few for two blocks"):
        MlmData("short text", num_tokens=8)


def test_masking_follows_bert_15_percent_then_80_10_10():
    vocab = CharVocabulary(string.ascii_lowercase)
    tokens = torch.randint(26, (400, 250))
    inputs, targets = mask_tokens(tokens, vocab, torch.Generator().manual_seed(0))
    picked = targets != IGNORE_INDEX
    assert picked.float().mean().item() == pytest.approx(0.15, abs=0.005)
    assert torch.equal(targets[picked], tokens[picked])
    assert torch.equal(inputs[~picked], tokens[~picked])  # no loss, no change elsewhere
    masked = (inputs[picked] == vocab.mask_id).float().mean().item()
    kept = (inputs[picked] == tokens[picked]).float().mean().item()  # 10% + random hits (1/26)
    assert masked == pytest.approx(0.8, abs=0.01)
    assert kept == pytest.approx(0.1 + 0.1 / 26, abs=0.01)
    assert inputs.max() <= vocab.mask_id


def test_heldout_set_is_the_same_for_every_call():
    data = MlmData(TINY_TEXT, num_tokens=16)
    config = MlmConfig(**TINY)
    first, second = mlm.heldout_set(data, config), mlm.heldout_set(data, config)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("mixer", ["attention", "mlp"])
def test_encoder_learns_a_tiny_corpus_with_either_mixer(mixer):
    data = MlmData(TINY_TEXT, num_tokens=16)
    config = MlmConfig(**TINY, steps=40, lr=1e-2, eval_every=40, eval_sequences=64)
    run = mlm.train_mlm(mixer, config, data, progress=False)
    assert [e["step"] for e in run.evals] == [0, 40]  # before training, and at the end
    untrained, trained = run.evals[0]["heldout_loss"], run.evals[-1]["heldout_loss"]
    assert untrained > math.log(data.vocab.size) - 0.5  # about a uniform guess
    assert trained < untrained - 0.3, (untrained, trained)
    start, end = sum(run.train_loss[:5]) / 5, sum(run.train_loss[-5:]) / 5
    assert end < start - 0.1, (start, end)


def test_training_is_deterministic_for_a_seed():
    data = MlmData(TINY_TEXT, num_tokens=16)
    config = MlmConfig(**TINY, steps=3, eval_every=3, eval_sequences=16)
    first = mlm.train_mlm("mlp", config, data, progress=False)
    second = mlm.train_mlm("mlp", config, data, progress=False)
    assert first.train_loss == second.train_loss and first.evals == second.evals


def test_heldout_set_does_not_depend_on_the_seed_so_every_run_is_scored_alike():
    data = MlmData(TINY_TEXT, num_tokens=16)
    first = mlm.heldout_set(data, MlmConfig(**TINY, seed=0))
    other = mlm.heldout_set(data, MlmConfig(**TINY, seed=7))
    assert all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_experiment_trains_each_mixer_once_per_seed_and_reports_mean_and_range():
    data = MlmData(TINY_TEXT, num_tokens=16)
    config = MlmConfig(**TINY, steps=3, eval_every=3, eval_sequences=16)
    results = mlm.run_experiment(config, data=data, progress=False, speed_repeats=1, seeds=(0, 5))
    assert results["seeds"] == (0, 5)
    for mixer, runs in results["seed_runs"].items():
        assert len(runs) == 2 and results["runs"][mixer] is runs[0]
        alone = mlm.train_mlm(mixer, replace(config, seed=5), data, progress=False)
        assert runs[1].train_loss == alone.train_loss  # seed 5 is the same run as train_mlm's
    assert results["seed_runs"]["mlp"][0].train_loss != results["seed_runs"]["mlp"][1].train_loss
    table = mlm.format_results(results).splitlines()
    accuracies = [run.heldout_accuracy for run in results["seed_runs"]["mlp"]]
    assert "seeds 0, 5" in table[0] and "masked acc: mean (range)" in table[1]
    mlp_line = next(line for line in table if line.startswith("mlp"))
    assert f"({min(accuracies):5.1%} - {max(accuracies):5.1%})" in mlp_line
    with pytest.raises(ValueError, match="seeds is empty"):
        mlm.run_experiment(config, data=data, progress=False, seeds=())


def test_cli_fast_keeps_the_fast_model_unless_an_option_changes_it(capsys):
    results = mlm.main(["--fast", "--steps", "1", "--num-tokens", "16", "--no-progress"])
    config, fast = results["config"], MlmConfig.fast()
    assert (config.steps, config.num_tokens) == (1, 16)  # the options given
    assert (config.d_model, config.batch_size) == (fast.d_model, fast.batch_size)  # the rest
    assert "seed 0" in capsys.readouterr().out


def test_cli_compares_both_mixers_and_writes_results(tmp_path, capsys):
    args = "--steps 2 --num-tokens 16 --d-model 16 --layers 1 --heads 2 --batch-size 8 --seeds 0 1"
    results = mlm.main([*args.split(), "--out", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert "mixer" in out and "masked acc" in out and "most common character" in out
    assert set(results["runs"]) == {"attention", "mlp"} and results["seeds"] == (0, 1)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["config"]["steps"] == 2 and len(saved["runs"]["mlp"]["train_loss"]) == 2
    assert saved["seeds"] == [0, 1] and len(saved["runs"]["mlp"]["heldout_accuracy_per_seed"]) == 2
    assert saved["sequences_per_second"]["attention"] > 0
    state = torch.load(tmp_path / "encoder_mlp.pt")
    assert "layers.0.token_mixer.mlp.fc1.weight" in state


@pytest.mark.parametrize("mixer", ["attention", "mlp"])
def test_a_learning_rate_far_too_high_stops_at_the_first_nan_loss(mixer):
    data = MlmData(TINY_TEXT, num_tokens=16)
    config = MlmConfig(**TINY, steps=20, lr=1e9, eval_every=20, eval_sequences=16)
    with pytest.raises(TrainingDivergedError, match=r"loss became nan at step \d+ of 20.*--lr"):
        mlm.train_mlm(mixer, config, data, progress=False)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(steps=0), "steps must be a positive int, got 0"),
        (dict(lr=-1.0), "lr must be > 0"),
        (dict(warmup_steps=-5), "warmup_steps must be a positive int"),
        (dict(weight_decay=-0.1), "weight_decay must be >= 0"),
    ],
)
def test_config_rejects_values_that_would_train_nothing_or_backwards(change, message):
    with pytest.raises(ValueError, match=message):
        MlmConfig(**{**TINY, **change})


def test_training_uses_the_courses_weight_decay_rule_and_device(monkeypatch):
    groups = []

    def recorded(model, weight_decay):
        groups.append(mlm.parameter_groups.__wrapped__(model, weight_decay))
        return groups[-1]

    recorded.__wrapped__ = mlm.parameter_groups
    monkeypatch.setattr(mlm, "parameter_groups", recorded)
    data = MlmData(TINY_TEXT, num_tokens=16)
    config = MlmConfig(**TINY, steps=2, eval_every=2, weight_decay=0.1)
    run = mlm.train_mlm("mlp", config, data, progress=False, device="cpu")
    (decay, no_decay), *_ = groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    assert next(run.model.parameters()).device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no cuda device"):
            mlm.train_mlm("mlp", config, data, progress=False, device="cuda")


def test_precision_is_fp32_or_bf16():
    assert MlmConfig(precision="bf16").precision == "bf16"
    with pytest.raises(ValueError, match="precision"):
        MlmConfig(precision="fp16")
