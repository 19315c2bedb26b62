"""The machinery behind the lessons: students need not read anything in this folder.

The lessons (`mixer_edu.patching`, `mlp`, `drop_path`, `mixer`, `models`, `train`, `data`,
`viz`, ...) call into these modules for what every real run needs but no lesson teaches:

- how a run runs: `machine` (the set-up `train` enters once), `plan` (precision, data path,
  compile, workers, printed at the start), `runtime` (device, seeds, allocator settings),
  `distributed` (torchrun / DDP), `compiled_step` (the compiled step and its GPU settings),
  `peaks` (datasheet peaks for the bench), `device_data` (the data set kept on the accelerator);
- files: `checkpoint` (atomic writes, safe loading, exact resume), `metrics` (`metrics.jsonl`),
  `run_files` (start or resume, each epoch's files written in the background),
  `paths`, `disk` (writes that survive a full disk), `run_lock` (one live run per folder),
  `resume_changes`, `cifar_files` (reading CIFAR-10 without unpickling code), `standin` (the offline
  stand-in data set);
- errors and checks: `errors` (one `error:` line per command), `validation`;
- timm: `timm_compat` (timm's extra model methods), `pretrained` (the paper's weights);
- the classroom: `course` (the notebooks' run modes and `cmp`), `compare` (short comparison
  runs), `bench` (the speed command, next to timm), `bench_loop` (the whole training loop),
  `bench_memory` (gradient checkpointing's memory), `bench_core` (what the three share).
"""
