"""What pytest (with --nbval) collects under notebooks/.

The course notebooks (`notebooks/NN-*.ipynb`) and the exercises' instructor notebooks
(`notebooks/exercises/solutions/NN-*.ipynb`) are committed executed, and nbval re-runs and compares
them. The student notebooks (`notebooks/exercises/NN-*.ipynb`) are generated from the instructor
notebooks with their solutions replaced by `raise NotImplementedError`, and committed unexecuted:
nbval must not collect them. `tests/test_exercises.py` checks them instead (up to date with their
sources, and failing only with NotImplementedError).
"""

# Patterns are relative to this folder; `[0-9]*` cannot match `solutions/...`.
collect_ignore_glob = ["exercises/[0-9]*.ipynb"]
