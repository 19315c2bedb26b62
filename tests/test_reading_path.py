"""How much a student must read to follow one training run, and no import cycles."""

import subprocess
import sys
from pathlib import Path

import mixer_edu
from mixer_edu import train as training

PACKAGE = Path(mixer_edu.__file__).resolve().parent
SUPPORT = PACKAGE / "support"
MOST_LESSON_MODULES = 9


def lesson_modules_before_the_first_step(argv: list[str]) -> set[str]:
    """The lesson modules (mixer_edu outside support/) whose functions run from
    `mixer_edu.train.main(argv)` until the first `optimizer.step()`."""
    touched: set[str] = set()
    stepped = False

    def profile(frame, event, arg):
        nonlocal stepped
        if stepped or event != "call":
            return
        code = frame.f_code
        path = Path(code.co_filename)
        if code.co_name == "step" and path.name in ("adamw.py", "adam.py", "optimizer.py"):
            stepped = True
        elif path.is_relative_to(PACKAGE) and not path.is_relative_to(SUPPORT):
            touched.add(path.relative_to(PACKAGE).with_suffix("").as_posix())

    sys.setprofile(profile)
    try:
        assert training.main(argv) == 0
    finally:
        sys.setprofile(None)
    assert stepped, "the run never reached optimizer.step()"
    return touched


def test_one_training_run_reads_at_most_eight_lesson_modules(data_root, tmp_path):
    argv = ["--fast", "--epochs", "1", "--train-images", "64", "--test-images", "32"]
    argv += ["--out", str(tmp_path / "run"), "--data-root", str(data_root), "--no-progress"]
    touched = lesson_modules_before_the_first_step(argv)
    assert "train" in touched and "mixer" in touched  # the trace sees the lessons it should
    assert len(touched) <= MOST_LESSON_MODULES, sorted(touched)


def test_every_module_imports_on_its_own():
    """A module that imports only in a certain order hides an import cycle."""
    modules = sorted(
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for path in PACKAGE.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    )
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n"
    script += "    for loaded in [m for m in sys.modules if m.startswith('mixer_edu')]:\n"
    script += "        del sys.modules[loaded]\n    importlib.import_module(name)\n"
    result = subprocess.run(
        [sys.executable, "-c", script, *modules], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
