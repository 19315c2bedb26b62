"""Notebook 07's text experiment as reference runs: current, in its regime, made and read back."""

import json

import pytest

from mixer_edu.mlm import MlmConfig
from mixer_edu.tools import reference, reference_text
from mixer_edu.tools.experiments import Claim


def test_the_saved_text_experiment_was_made_with_the_current_recipe():
    runs = reference_text.load()
    assert runs is not None, f"no saved text experiment: {reference.COMMAND} --only mlm"
    assert runs.record["recipe"] == reference_text.recipe(), (
        f"reference/text-reference/mlm.json is stale: remake it with {reference.COMMAND} --only mlm"
    )
    for mixer_runs in runs.runs.values():
        assert [run["seed"] for run in mixer_runs] == list(reference_text.SEEDS)
        steps = reference_text.CONFIG.steps
        assert all(run["steps"][-1] == steps for run in mixer_runs)


def test_every_claim_notebook_07_makes_holds_on_the_saved_runs():
    runs = reference_text.load()
    assert runs.check_claims() == []
    # the notebook names the regime, whichever it is
    assert {"converged", "not converged"} & {claim.kind for claim in reference_text.CLAIMS}


def test_notebook_07_shows_the_text_experiment():
    [notebook] = (reference.project_folder() / "notebooks").glob("07-*.ipynb")
    assert "text_reference_runs()" in notebook.read_text()


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """A 20-step experiment of two seeds, made in `tmp_path` instead of the repository."""
    config = MlmConfig.fast(steps=20, warmup_steps=2, eval_every=5, eval_sequences=64)
    monkeypatch.setattr(reference_text, "CONFIG", config)
    monkeypatch.setattr(reference_text, "SEEDS", (0, 1))
    monkeypatch.setattr(reference_text, "project_folder", lambda: tmp_path)
    return tmp_path


def test_make_saves_what_load_reads_back(tiny, capsys):
    assert reference.main(["--only", "mlm", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "4 text runs to make, 1 at a time" in out and "Reference runs (mlm)" in out
    path = tiny / "reference" / "text-reference" / "mlm.json"
    runs = reference_text.load()
    assert runs.record == json.loads(path.read_text())
    assert runs.record["recipe"] == reference_text.recipe()
    assert set(runs.runs) == {"attention", "mlp"}
    assert [len(run["steps"]) for run in runs.runs["mlp"]] == [5, 5]  # step 0, then every 5
    assert runs.accuracy("mlp") == [run["heldout_accuracy"][-1] for run in runs.runs["mlp"]]
    assert "converged" in runs.table() and "most common character" in runs.table()
    assert "Python " in runs.record["made_on"]


def test_a_claim_the_text_runs_do_not_bear_out_is_reported(tiny, monkeypatch):
    reference_text.make(jobs=1)
    record = reference_text.load().record
    for run in record["runs"]["mlp"]:
        run["heldout_accuracy"] = [0.0, 0.1, 0.2, 0.3, 0.4]  # still climbing, and low
    for run in record["runs"]["attention"]:
        run["heldout_accuracy"] = [0.0, 0.5, 0.5, 0.5, 0.5]
    runs = reference_text.TextRuns(record)
    assert runs.converged("mlp") == [False, False] and runs.converged("attention") == [True] * 2
    claims = (Claim("converged"), Claim("higher", ("mlp", "attention")))
    monkeypatch.setattr(reference_text, "CLAIMS", claims)
    assert runs.check_claims() == ["converged attention, mlp", "higher mlp, attention"]
    claims = (Claim("no difference", ("mlp", "attention")), Claim("not converged", ("attention",)))
    monkeypatch.setattr(reference_text, "CLAIMS", claims)
    assert runs.check_claims() == ["no difference mlp, attention", "not converged attention"]
    assert runs.compare("attention", "mlp").startswith("attention higher than mlp")


def test_the_text_experiment_is_left_alone_by_a_cifar10_run(monkeypatch, capsys):
    made = []
    monkeypatch.setattr(reference, "make", lambda names, *args: made.append(names) or [])
    monkeypatch.setattr(reference_text, "make", lambda jobs: made.append("mlm"))
    reference.main(["--dataset", "cifar10", "--budget", "full"])
    assert made == [list(reference.EXPERIMENTS)]  # the image experiments only
