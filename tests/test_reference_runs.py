"""The reference runs behind every interpreted result: current, in their regime, reproducible.

The committed files in `reference/standin-reference/` are what the notebooks' prose interprets.
These tests fail when a file is missing or was made with another recipe than the current
`tools.experiments` (a stale reference), when a claim that a notebook makes is not borne out by
the saved runs, and when the smallest run, made again now, does not land where the saved one did.
"""

import json
import math
import re

import pytest
import torch

from mixer_edu.support import regimes
from mixer_edu.tools import experiments as ex
from mixer_edu.tools import reference

EXPERIMENTS = sorted(ex.EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_is_saved_with_the_current_recipe(name):
    runs = reference.load(name)
    assert runs is not None, f"no reference/standin-reference/{name}.json: {reference.COMMAND}"
    assert runs.record["recipe"] == ex.EXPERIMENTS[name].recipe(), (
        f"reference/standin-reference/{name}.json is stale: remake it with "
        f"{reference.COMMAND} --only {name}"
    )
    seeds = ex.EXPERIMENTS[name].seeds
    assert all([run["seed"] for run in r] == list(seeds) for r in runs.runs.values())


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_claim_a_notebook_makes_holds_on_the_saved_runs(name):
    runs = reference.load(name)
    assert runs.check_claims() == []
    assert any(claim.kind == "converged" for claim in runs.experiment.claims)


def test_no_lead_a_notebook_claims_was_bought_with_more_training():
    """A settled run is not the best a model can do: a longer schedule can still end higher (the
    Mixer on 3,000 images gained 2.4 points from 80 epochs instead of 50). So a variant that a claim
    puts higher never trained on more images or for more epochs than the one below it."""
    for name, experiment in ex.EXPERIMENTS.items():
        for claim in experiment.claims:
            if claim.kind == "higher":
                higher, lower = (experiment.variants[label] for label in claim.variants)
                assert higher.epochs <= lower.epochs, f"{name}: {claim}"
                assert higher.train_images <= lower.train_images, f"{name}: {claim}"


def test_every_saved_run_was_tested_in_its_last_quarter():
    for name in EXPERIMENTS:
        runs = reference.load(name)
        for label, variant_runs in runs.runs.items():
            epochs = runs.record["recipe"]["variants"][label]["epochs"]
            for run in variant_runs:
                assert run["tested_epochs"] == reference.test_epochs(epochs)
                assert len(run["test_acc_per_epoch"]) == len(run["tested_epochs"])


def smallest_run():
    """The variant and seed with the fewest training images seen (the first of a tie, in the
    experiments' order: drop-path's unregularised Mixer), over every experiment."""
    recipes = [
        (variant.recipe(), name, label)
        for name, experiment in ex.EXPERIMENTS.items()
        for label, variant in experiment.variants.items()
    ]
    recipe, name, label = min(recipes, key=lambda r: r[0]["train_images"] * r[0]["epochs"])
    saved = reference.load(name)
    return recipe, saved.runs[label][0], saved.record["made_on"]


def test_the_smallest_reference_run_made_again_lands_where_it_did():
    """Made again on this machine: the same tests, the same parameters, accuracy within 2 points.

    Bitwise equality would hold only on the CPU, kernels and thread count that made the file. How
    far another numerical path moves it was measured: on the portable kernels
    (`ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE`, one thread) this run's final test accuracy
    moved by 0.05 points (one test image). A change to the model, the data or the recipe moves it
    by more: the weakest regulariser of the same experiment moves it by 2.5 points. Another torch
    release moves it by more too (torch 2.6: 3.6 points), so the accuracy is compared only on the
    torch release that made the file; the parameters and the tested epochs everywhere.
    """
    recipe, saved, made_on = smallest_run()
    run = reference.run_one(recipe, saved["seed"], "standin", None, "cpu")
    assert run["params"] == saved["params"]
    assert run["tested_epochs"] == saved["tested_epochs"]
    made_with = re.search(r"torch (\d+\.\d+)", made_on).group(1)
    if not torch.__version__.startswith(made_with + "."):
        # Measured: torch 2.6 ends this run at 36.2% test accuracy where torch 2.14 ends at 39.8%.
        pytest.skip(
            f"the reference runs were made with torch {made_with}, this is {torch.__version__}"
        )
    assert run["test_acc"] == pytest.approx(saved["test_acc"], abs=0.02)
    assert run["train_acc"] == pytest.approx(saved["train_acc"], abs=0.02)


def tiny_experiment():
    return ex.Experiment(
        "tiny",
        "00",
        "a test",
        {
            "mixer": ex.Variant("mixer_cifar_tiny", 64, 4),
            "blind": ex.Variant("mixer_cifar_tiny", 64, 4, ablation="no-token-mixing"),
        },
        claims=(ex.Claim("converged"), ex.Claim("higher", ("mixer", "blind"))),
        seeds=(0, 1),
        keep_weights=("mixer",),
    )


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """A two-variant experiment of two seeds, made in `tmp_path` instead of the repository."""
    experiment = tiny_experiment()
    monkeypatch.setitem(ex.EXPERIMENTS, "tiny", experiment)
    monkeypatch.setattr(reference, "project_folder", lambda: tmp_path)
    monkeypatch.setattr(reference, "load_images", _few_images)
    return experiment


def _few_images(dataset, train=True, limit=None):
    from mixer_edu.tools.compare import load_images

    return load_images(dataset, train=train, limit=min(limit or 10**9, 64 if train else 100))


def test_make_saves_what_load_reads_back_and_reuses_finished_runs(tiny, tmp_path, capsys):
    [path] = reference.make(["tiny"], jobs=1)
    assert path == tmp_path / "reference" / "standin-reference" / "tiny.json"
    runs = reference.load("tiny")
    assert set(runs.runs) == {"mixer", "blind"}
    assert runs.runs["blind"][0]["params"] < runs.runs["mixer"][0]["params"]
    assert "made by `python -m mixer_edu.tools.reference`" in runs.describe()
    assert "converged" in runs.table() and "blind" in runs.table()
    assert "4 runs to make" in capsys.readouterr().out
    reference.make(["tiny"], jobs=1)  # every run is in the cache now
    assert "0 runs to make" in capsys.readouterr().out
    assert len(list((tmp_path / "runs" / "reference-cache").glob("*.json"))) == 4


def test_a_cached_run_tested_at_other_epochs_is_made_again(tiny, tmp_path, capsys):
    reference.make(["tiny"], jobs=1)
    cached = sorted((tmp_path / "runs" / "reference-cache").glob("*.json"))[0]
    run = json.loads(cached.read_text())
    run["tested_epochs"] = [2, 4]  # as if made when runs were tested at other epochs
    cached.write_text(json.dumps(run))
    capsys.readouterr()
    reference.make(["tiny"], jobs=1)
    assert "1 runs to make" in capsys.readouterr().out
    assert json.loads(cached.read_text())["tested_epochs"] == reference.test_epochs(4)


# Every schedule an experiment trains, so a new one is tested without editing this list, and a few
# more (8: the fewest epochs that can be tested eight times).
SCHEDULES = {variant.epochs for e in ex.EXPERIMENTS.values() for variant in e.variants.values()}


@pytest.mark.parametrize("epochs", sorted(SCHEDULES | {8, 20, 80}))
def test_a_run_is_tested_eight_times_three_of_them_in_its_last_quarter(epochs):
    tested = reference.test_epochs(epochs)
    quarter = [tested[k] for k in regimes.last_quarter(tested, epochs)]
    assert len(tested) == 8 and tested[-1] == epochs
    assert quarter[0] == math.ceil(0.75 * epochs) and len(quarter) == 3


def test_kept_weights_load_as_the_model_that_scored_the_saved_accuracy(tiny, tmp_path, capsys):
    from mixer_edu.models import load_model
    from mixer_edu.tools.compare import accuracy

    reference.make(["tiny"], jobs=1)
    runs = reference.load("tiny")
    recipe = tiny.variants["mixer"].recipe()
    for run in runs.runs["mixer"]:
        final = runs.weights("mixer", seed=run["seed"])
        assert final.parent == tmp_path / "reference" / "standin-reference" / "weights"
        model, checkpoint = load_model(final)
        assert checkpoint["epoch"] == recipe["epochs"] and checkpoint["dataset"] == "standin"
        test = _few_images("standin", train=False)
        assert accuracy(model, test)[0] == run["test_acc"]  # the very weights that were tested
        initial, _ = load_model(runs.weights("mixer", seed=run["seed"], which="initial"))
        fresh = reference.build_model(recipe, run["seed"]).state_dict()
        assert all(torch.equal(fresh[k], v) for k, v in initial.state_dict().items())
    # a run made without its weights is made again when an experiment asks for them
    for path in (tmp_path / "runs" / "reference-cache" / "weights").glob("*-final.pt"):
        path.unlink()
    capsys.readouterr()
    reference.make(["tiny"], jobs=1)
    assert "2 runs to make" in capsys.readouterr().out
    assert len(list((tmp_path / "runs" / "reference-cache" / "weights").glob("*.pt"))) == 4


def test_weights_that_were_not_kept_are_refused_by_name(tiny):
    reference.make(["tiny"], jobs=1)
    runs = reference.load("tiny")
    with pytest.raises(ValueError, match="'blind' kept no weights; those that did: 'mixer'"):
        runs.weights("blind")
    with pytest.raises(ValueError, match="no run of 'mixer' with seed 7; the seeds are 0, 1"):
        runs.weights("mixer", seed=7)
    with pytest.raises(ValueError, match="which"):
        runs.weights("mixer", which="best")
    for label in ("blind", "cnn", "nobody"):  # an ablation, a baseline, no such variant
        with pytest.raises(ValueError, match=f"keep_weights names '{label}'"):
            ex.Experiment(
                "bad", "00", "?",
                {**tiny.variants, "cnn": ex.Variant("cnn_cifar_tiny", 64, 4)},
                claims=(), keep_weights=(label,),
            )  # fmt: skip


def test_a_claim_the_runs_do_not_bear_out_is_reported(tiny):
    reference.make(["tiny"], jobs=1)
    runs = reference.load("tiny")
    record = json.loads(json.dumps(runs.record))
    for run in record["runs"]["mixer"]:
        run["test_acc"] = 0.0  # the Mixer now below the blind one
    for run in record["runs"]["blind"]:
        run["test_acc_per_epoch"] = [0.1, 0.2, 0.3, 0.5]  # and the blind one still climbing
    changed = reference.ReferenceRuns(tiny, record)
    assert changed.check_claims() == ["converged mixer, blind", "higher mixer, blind"]
    assert (
        changed.unsettled()
        == "blind: 2 of 2 seeds still moved by 20.0 points over the last quarter"
    )
    assert changed.compare("mixer", "blind").startswith("blind higher than mixer")


def test_a_changed_recipe_makes_the_saved_file_stale(tiny, monkeypatch):
    reference.make(["tiny"], jobs=1)
    longer = ex.Variant("mixer_cifar_tiny", 64, 5)
    monkeypatch.setitem(tiny.variants, "mixer", longer)
    assert reference.load("tiny").record["recipe"] != tiny.recipe()


def test_a_missing_experiment_loads_as_none_and_a_wrong_name_is_refused(tiny):
    assert reference.load("tiny", dataset="cifar10", budget="full") is None
    with pytest.raises(ValueError, match="experiment"):
        reference.load("no-such-experiment")


def test_the_command_refuses_bad_input_with_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        reference.main(["--jobs", "0"])
    assert stop.value.code == 2
    assert "error: --jobs must be at least 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_experiment_is_shown_by_its_notebook(name):
    [notebook] = (reference.project_folder() / "notebooks").glob(
        f"{ex.EXPERIMENTS[name].notebook}-*.ipynb"
    )
    assert f'reference_runs(\\"{name}\\")' in notebook.read_text(), notebook.name


def test_full_mode_without_cifar10_runs_shows_the_standin_and_says_so(monkeypatch, capsys):
    from mixer_edu.tools import course

    monkeypatch.delenv(course.FAST_ENV, raising=False)
    monkeypatch.setenv(course.DATASET_ENV, "cifar10")
    runs = course.reference_runs("token-mixing")
    assert runs.record["dataset"] == "standin"
    assert "No CIFAR-10 reference runs yet" in capsys.readouterr().out
    assert "synthetic stand-in" in runs.label and "synthetic stand-in" in runs.describe()
    monkeypatch.setenv(course.FAST_ENV, "1")
    course.reference_runs("token-mixing")
    assert capsys.readouterr().out == ""
