"""`make test` runs the notebooks in processes side by side (nbval in shares, and the floor's
notebooks as scripts): every notebook runs exactly once, notebooks that share a training run
stay in one group, and the shares are balanced by measured times (tools/notebook_times.py)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NOTEBOOKS += sorted((ROOT / "notebooks" / "exercises" / "solutions").glob("[0-9]*.ipynb"))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


times = _load(ROOT / "tools" / "notebook_times.py")


def test_every_notebook_is_in_exactly_one_share_and_04_goes_with_05():
    for seconds in (times.SECONDS, times.PORTABLE_SECONDS):
        shares = times.shares(NOTEBOOKS, 2, seconds)
        assert sorted(p for share in shares for p in share) == NOTEBOOKS
        (with_04,) = [s for s in shares if any(p.name.startswith("04-Training") for p in s)]
        assert any(p.name.startswith("05-What") for p in with_04)  # 05 reads the run 04 trains
        assert all(share for share in shares)


def test_every_measured_name_is_a_notebook_or_a_group_so_no_time_is_silently_lost():
    names = {times.group_name(path) for path in NOTEBOOKS}
    assert set(times.SECONDS) <= names and set(times.PORTABLE_SECONDS) <= names


def test_the_shares_are_balanced_by_their_measured_times_and_the_longest_starts_first(tmp_path):
    paths = []
    for name in ("big", "a", "b", "c"):
        paths.append(tmp_path / f"{name}.ipynb")
        paths[-1].write_text("{}")
    seconds = {"big.ipynb": 100, "a.ipynb": 40, "b.ipynb": 40, "c.ipynb": 30}
    assert times.shares(paths, 2, seconds) == [[paths[0]], sorted(paths[1:])]
    assert [g[0].stem for g in times.groups(paths, seconds)] == ["big", "a", "b", "c"]


def test_the_notebook_pytest_plugin_uses_these_times():
    conftest = _load(ROOT / "notebooks" / "conftest.py")
    assert conftest._notebook_times().SECONDS == times.SECONDS
