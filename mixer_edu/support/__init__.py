"""The machinery below the lessons: students need not read anything in this folder.

The lessons (`mixer_edu.patching`, `mlp`, `drop_path`, `mixer`, `models`, `data`, `train`, ...)
call into these modules for what every real run needs but no lesson teaches. Nothing here imports
a lesson: what a module needs to know of one (the recipe, the data set's name) is passed in.

- how a run runs: `machine` (the set-up `train` enters once), `plan` (precision, data path,
  compile, workers, printed at the start), `runtime` (device, seeds, run mode, allocator
  settings), `distributed` (torchrun / DDP), `compiled_step` (the step's two halves compiled, and
  the GPU settings), `peaks` (datasheet peaks for the bench);
- files: `checkpoint` (atomic writes, safe loading, exact resume), `metrics` (`metrics.jsonl`),
  `run_files` (start or resume, each epoch's files written in the background),
  `paths`, `disk` (writes that survive a full disk), `run_lock` (one live run per folder),
  `resume_changes`, `cifar_files` (reading CIFAR-10 without unpickling code), `standin` (the offline
  stand-in data set);
- errors and checks: `errors` (one `error:` line per command), `validation`;
- words: `regimes` (what "converged", "overfitting" and "a difference" mean for a result);
- timm: `timm_compat` (timm's extra model methods).

The tools that use the lessons (the bench, comparisons, the reference runs, the paper's weights,
the notebooks' door) are above them, in `mixer_edu.tools`.
"""
