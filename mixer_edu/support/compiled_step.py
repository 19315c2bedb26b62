"""The compiled step: the trainer's one training step, compiled (`plan.step != 'eager'`).

The lesson's step (`mixer_edu.train`) is two halves with the backward pass between them:

    loss, logits = forward_loss(model, images, targets, ...)   # forward and loss
    loss.backward()                                            # gradients
    grad_norm = clip_and_update(model, optimizer, clip_grad)   # clipping and AdamW

`build` returns the same two functions compiled, with the same arguments and results; the loop
calls them instead of the plain ones and nothing else changes. Each half is one `torch.compile`
region with `fullgraph=True`, so a graph break is an error, not a silent slowdown:

- **forward and loss**: AOTAutograd also compiles the backward pass of this region, so
  `loss.backward()` runs a compiled graph too;
- **clipping and AdamW**: PyTorch's compiled-optimizer recipe. The learning rate enters as a
  tensor whose value is refreshed before each call, so the schedule changes the learning rate
  every step without a recompilation; on CUDA the optimizer is made `capturable` (its state,
  step counts included, stays on the GPU) so the region can be replayed as a CUDA graph.

With `mode='reduce-overhead'` (the plan's choice for small GPU batches) each compiled graph is
replayed as a CUDA graph: one launch instead of hundreds of small kernels, which is where the
time of a small batch goes. Evaluation gets a compiled copy of the model as well (`evaluator`).

Nothing here changes what a step computes, only its rounding: tests/test_compiled_step.py trains a
few steps each way and compares the weights. Where this torch cannot capture the update half
in one graph (torch 2.6 cannot trace `clip_grad_norm_`), that half runs eagerly and `notes`
says why. `MIXER_EDU_COMPILE_BACKEND=aot_eager` captures the graphs without generating code
(what the CPU tests use: capture is what they check, and it compiles in seconds).
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

BACKEND_ENV = "MIXER_EDU_COMPILE_BACKEND"


@dataclass
class CompiledStep:
    """The two halves of the step, compiled, and a compiled model for evaluation."""

    forward_loss: Callable  # (model, images, targets, precision, label_smoothing) -> (loss, logits)
    update: Callable  # (model, optimizer, clip_grad) -> grad_norm (or None)
    evaluator: nn.Module  # the model, compiled for evaluation (eval mode, no gradients)
    notes: list[str] = field(default_factory=list)  # what runs eagerly after all, and why


def backend() -> str:
    """The `torch.compile` backend: 'inductor' unless `MIXER_EDU_COMPILE_BACKEND` names another."""
    return os.environ.get(BACKEND_ENV, "inductor")


def as_planned(
    forward_loss, update, model, optimizer, plan, print_once=print
) -> CompiledStep | None:
    """`build` with the plan's compile mode, or None where the plan runs the plain step."""
    if not plan.compile_mode:
        return None
    return build(forward_loss, update, model, optimizer, plan.compile_mode, print_once)


def build(
    forward_loss: Callable,
    update: Callable,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    mode: str | None = None,
    print_once: Callable[[str], None] = print,
    backend_name: str | None = None,
) -> CompiledStep:
    """Compile the step's two halves (the lesson's own functions) for `model` and `optimizer`.

    `mode` is `torch.compile`'s ('default' or 'reduce-overhead'); `print_once` prints a fallback's
    reason; `backend_name` defaults to `backend()`. Call it after a resume has loaded the
    optimizer's state: on CUDA it makes the optimizer capturable, moving its step counts onto
    the GPU. `model` may be a DistributedDataParallel wrapper; the evaluator compiles the model
    inside it (rank 0 evaluates alone).
    """
    name = backend_name or backend()
    options = dict(backend=name, fullgraph=True)
    if name == "inductor" and mode not in (None, "default"):
        options["mode"] = mode  # modes are inductor's; other backends take none
    graphs = options.get("mode") == "reduce-overhead"
    notes = []
    if isinstance(model, nn.parallel.DistributedDataParallel):
        # DDP's forward (its hooks and logging) cannot be traced into a graph: the model inside
        # it is compiled instead (PyTorch's DDP(compiled model) pattern), the loss runs eagerly.
        model.module.compile(**options)
        compiled_forward = forward_loss
        notes.append("under DistributedDataParallel the model is compiled, the loss runs eagerly")
        print_once(f"note: {notes[-1]}")
    else:
        compiled_forward = torch.compile(forward_loss, **options)

    def compiled_forward_loss(*args, **kwargs):
        if graphs:  # a new step: outputs of the last replay may now be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        return compiled_forward(*args, **kwargs)

    compiled_update = _CompiledUpdate(
        update, optimizer, torch.compile(update, **options), print_once
    )
    compiled_update.notes = notes
    # Evaluation without CUDA graphs: a replay overwrites the outputs of the last one, and the
    # evaluation keeps every batch's logits; the test set's 40 batches launch little anyway.
    plain = {key: value for key, value in options.items() if key != "mode"}
    inner = getattr(model, "module", model)  # rank 0 evaluates alone: not through DDP
    evaluator = inner if notes else torch.compile(inner, dynamic=False, **plain)
    return CompiledStep(compiled_forward_loss, compiled_update, evaluator, notes)


class _CompiledUpdate:
    """`update` compiled, called like it; falls back to it where torch cannot capture it."""

    def __init__(self, update: Callable, optimizer, compiled: Callable, print_once=print):
        self.update, self.compiled, self.print_once, self.notes = update, compiled, print_once, []
        device = optimizer.param_groups[0]["params"][0].device
        # One learning-rate tensor per parameter group, refreshed from the float the scheduler
        # wrote before every call: the compiled graph reads the tensor, so a new learning rate
        # is new data, not a new constant (which would recompile the graph every step).
        self.lrs = [torch.tensor(0.0, device=device) for _ in optimizer.param_groups]
        self.traced = False
        _make_traceable(optimizer)
        if device.type == "cuda":
            _make_capturable(optimizer, device)

    def __call__(self, model: nn.Module, optimizer: torch.optim.Optimizer, clip_grad):
        if self.compiled is None:
            return self.update(model, optimizer, clip_grad)
        groups = optimizer.param_groups
        floats = [group["lr"] for group in groups]
        for group, lr in zip(groups, self.lrs, strict=True):
            lr.fill_(group["lr"])
            group["lr"] = lr
        try:
            with torch.no_grad():  # an inference graph: AdamW updates the weights in place
                result = self.compiled(model, optimizer, clip_grad)
        except torch._dynamo.exc.Unsupported as error:  # raised while tracing, before any work
            if self.traced:
                raise
            self.compiled = None
            reason = str(error).strip().splitlines()[0]
            self.notes.append(
                f"clipping and AdamW run eagerly: torch {torch.__version__} cannot capture them "
                f"in one graph ({reason})"
            )
            self.print_once(f"note: {self.notes[-1]}")
            result = None
        finally:
            for group, lr in zip(groups, floats, strict=True):
                group["lr"] = lr  # the optimizer, the scheduler and checkpoints see floats
        self.traced = True
        optimizer._opt_called = True  # what the scheduler's own step wrapper would record
        return self.update(model, optimizer, clip_grad) if self.compiled is None else result


def _make_traceable(optimizer: torch.optim.Optimizer) -> None:
    """Let `optimizer.step()` be traced into a graph.

    Two wrappers stand in the way: the learning-rate scheduler's (it counts calls, in a module
    dynamo does not trace) and torch's own, which breaks the graph around every step so that
    the step alone runs without gradients. The undecorated step, called without gradients
    (`_CompiledUpdate` enters `torch.no_grad()` before the graph), does the same work.
    """
    plain = inspect.unwrap(type(optimizer).step)

    def step(closure=None):
        with torch.no_grad():
            return plain(optimizer, closure)

    step._wrapped_by_lr_sched = True  # the scheduler's mark: it checks for it, and warns without
    optimizer.step = step


def _make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Keep AdamW's state on the GPU (`capturable=True`), so a CUDA graph can replay the step.

    Checkpoints keep the optimizer's own setting, so a run continues on a CPU as well.
    """
    saved = [group.get("capturable", False) for group in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["capturable"] = True
    for state in optimizer.state.values():  # a resumed run: step counts come from the CPU
        if torch.is_tensor(state.get("step")):
            state["step"] = state["step"].to(device, torch.float32)

    def restore(optimizer, state_dict):
        for group, capturable in zip(state_dict["param_groups"], saved, strict=True):
            group["capturable"] = capturable
        return state_dict

    optimizer.register_state_dict_post_hook(restore)


# --------------------------------------------------------------------------------------------
# Process-wide settings for a compiled or CUDA run.
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def run_settings(plan):
    """The process-wide settings a run's plan asks for, while the run lasts: TF32 matmuls
    (`plan.tf32`) and, for compiled steps, the compile cache."""
    if plan.compile_mode:
        compile_cache()
    with tf32_matmuls(plan.tf32):
        yield


@contextlib.contextmanager
def tf32_matmuls(enabled: bool):
    """TensorFloat-32 for float32 matmuls and convolutions while the block runs, then as before.

    TF32 keeps float32's range with a 10-bit mantissa (bf16 has 7) and runs fp32 matmuls on
    the tensor cores of an A100 or newer, several times faster (NVIDIA's datasheets: H100/H200
    SXM 494 dense TF32 TFLOP/s against 67 plain fp32). Restored afterwards, because it is a
    process-wide switch and other code in the process (tests against timm) expects full fp32.
    """
    if not enabled:
        yield
        return
    matmul, cudnn = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(matmul)
        torch.backends.cudnn.allow_tf32 = cudnn


def compile_cache() -> Path:
    """Keep compiled code between runs; returns the folder.

    Inductor caches generated kernels and graphs under `TORCHINDUCTOR_CACHE_DIR` (default: a
    folder in /tmp, gone after a reboot or on a fresh Colab VM), so an unset one is pointed at
    the user's cache folder. AOTAutograd's cache (off by default in torch 2.6, on in 2.14) is
    switched on, so a second run skips tracing the backward pass too.
    """
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(base / "mixer_edu" / "torchinductor")
    import torch._functorch.config as functorch_config

    functorch_config.enable_autograd_cache = True
    return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
