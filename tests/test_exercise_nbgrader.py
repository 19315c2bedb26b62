"""A teacher with nbgrader can use the instructor notebooks as they are.

Runs nbgrader (a development dependency) on exercise 1 in a temporary course directory:
`generate_assignment` must make the same student notebook as the project's generator, and
`autograde` must give the instructor's solution full points and the untouched student notebook
zero. (About 20 s: autograde runs the notebook twice in a fresh kernel.)
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.optional import need

nbformat = need("nbformat")
pytestmark = pytest.mark.jupyter
Gradebook = need("nbgrader.api").Gradebook
from mixer_edu.exercises import generate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXERCISE = generate.SOURCE_DIR / "01-Patchify.ipynb"


def nbgrader(course: Path, *arguments: str) -> None:
    # nbgrader runs the `alembic` command for its database: the environment's scripts on PATH,
    # as in an activated environment.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "PYTHONPATH": str(ROOT), "MIXER_EDU_FAST": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", *arguments, "--force"],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    course = tmp_path_factory.mktemp("course")
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.course_id = 'mixer-edu'\n"
    )
    (course / "source" / "ex01").mkdir(parents=True)
    shutil.copy(EXERCISE, course / "source" / "ex01")
    nbgrader(course, "generate_assignment", "ex01")
    return course


def test_nbgrader_makes_the_same_student_notebook_as_the_project_generator(course):
    released = nbformat.read(course / "release" / "ex01" / EXERCISE.name, as_version=4)
    ours = generate.student_notebook(EXERCISE, student_dir=EXERCISE.parent)  # links unchanged
    assert _cells(released) == _cells(ours)


def test_autograde_gives_the_solution_full_points_and_the_untouched_notebook_zero(course):
    submissions = {"solver": EXERCISE, "idle": course / "release" / "ex01" / EXERCISE.name}
    for student, notebook in submissions.items():
        folder = course / "submitted" / student / "ex01"
        folder.mkdir(parents=True)
        shutil.copy(notebook, folder / EXERCISE.name)
    nbgrader(course, "autograde", "ex01")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "mixer-edu") as gradebook:
        solved = gradebook.find_submission("ex01", "solver")
        idle = gradebook.find_submission("ex01", "idle")
        assert solved.max_score > 0
        assert solved.score == solved.max_score
        assert idle.score == 0
