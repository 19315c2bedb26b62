"""Tools that stand above the lessons: they use the course's models and training, none teaches.

- `course`: the notebooks' one door (run modes, set-up, `cmp`, saved runs, short comparisons);
- `compare`: short, equal-budget training runs for the notebooks' comparisons;
- `experiments`: the reference experiments behind every result a notebook interprets, and
  `reference`, which makes, saves and loads them (`python -m mixer_edu.tools.reference`), and
  `reference_text` for notebook 07's text experiment;
- `pretrained`: the paper's weights, converted from timm's;
- `bench` (the speed command, next to timm), with `bench_core` (what the benches share),
  `bench_loop` (the whole training loop) and `bench_memory` (gradient checkpointing's memory).

Nothing in `mixer_edu/support/` or in a lesson imports these.
"""
