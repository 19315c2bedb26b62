"""`make test`'s portable notebook pass runs in two shares side by side (tools/nbval_shares.py):
every notebook in exactly one share, and notebooks that share a training run in the same one."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _notebooks_conftest():
    spec = importlib.util.spec_from_file_location(
        "notebooks_conftest", ROOT / "notebooks" / "conftest.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_is_in_exactly_one_share_and_04_goes_with_05():
    conftest = _notebooks_conftest()
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    notebooks += sorted((ROOT / "notebooks" / "exercises" / "solutions").glob("[0-9]*.ipynb"))
    shares = conftest.shares(notebooks, 2)
    assert sorted(p for share in shares for p in share) == sorted(notebooks)
    (with_04,) = [share for share in shares if any(p.name.startswith("04-Training") for p in share)]
    assert any(p.name.startswith("05-What") for p in with_04)  # 05 reads the run 04 trains
    assert all(share for share in shares)


def test_the_shares_are_balanced_by_their_measured_times():
    conftest = _notebooks_conftest()
    paths = [Path(f"{name}.ipynb") for name in ("big", "a", "b", "c")]
    conftest.SECONDS.update({"big.ipynb": 100, "a.ipynb": 40, "b.ipynb": 40, "c.ipynb": 30})
    conftest._group = lambda path: path.name  # made-up notebooks: no file to read
    assert conftest.shares(paths, 2) == [
        [Path("big.ipynb")],
        [Path(p) for p in ("a.ipynb", "b.ipynb", "c.ipynb")],
    ]
