"""The compiled step (`mixer_edu.support.compiled_step`): the trainer's step compiled, same numbers.

The graphs are captured with the `aot_eager` backend: dynamo and AOTAutograd trace exactly as
they do for inductor (a graph break or a recompilation shows up the same), without generating
and compiling C++ or Triton code, which would take minutes on a 2-core CI machine.
"""

import pytest
import torch
from torch._dynamo.utils import counters

from mixer_edu import train as training
from mixer_edu.device_data import DeviceLoader
from mixer_edu.models import create_model
from mixer_edu.support import compiled_step
from mixer_edu.train import parameter_groups, warmup_cosine

# Where compiled and eager steps may differ: float32 rounding in another order (AOTAutograd's
# decompositions, the learning rate as a float32 tensor instead of a Python float), which
# AdamW's m / sqrt(v) turns into weight changes of at most a few 1e-6 over these 6 steps (3.6e-6
# measured on the 2-core CI VM, torch 2.14). A real difference is far larger: AdamW moves each
# weight by about the learning rate, 1e-4..1e-3 here, every step, so a skipped clip, a stale
# learning rate or a missed update is caught.
WEIGHT_TOLERANCE = 2e-5
STEPS = 6


@pytest.fixture
def fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def _loader() -> DeviceLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (STEPS * 16, 3, 32, 32), dtype=torch.uint8, generator=generator)
    return DeviceLoader(images, torch.arange(STEPS * 16) % 10, 16)


def _one_epoch(compiled: bool, clip_grad=1.0):
    """The trainer's epoch function over 6 batches, eager or on the compiled step; the model, the
    optimizer and the learning rates it used."""
    torch.manual_seed(0)
    model = create_model("mixer_cifar_tiny")
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.05), lr=1e-3)
    scheduler = warmup_cosine(optimizer, 3, STEPS)  # the rate changes at every step
    built = None
    if compiled:
        built = compiled_step.build(
            training.forward_loss, training.clip_and_update, model, optimizer,
            backend_name="aot_eager",
        )  # fmt: skip
    rates = []
    scheduler.step = _recording(scheduler.step, optimizer, rates)
    loader = _loader()
    stats = training.train_one_epoch(
        model, loader.epoch(seed=1), optimizer, scheduler, torch.device("cpu"),
        precision="fp32", label_smoothing=0.1, clip_grad=clip_grad, compiled=built,
    )  # fmt: skip
    return model, optimizer, rates, stats, built


def _recording(step, optimizer, rates):
    def recorded():
        rates.append(optimizer.param_groups[0]["lr"])
        step()

    return recorded


def test_the_compiled_step_trains_like_the_eager_step(fresh_dynamo):
    eager, eager_optimizer, eager_rates, eager_stats, _ = _one_epoch(compiled=False)
    compiled, compiled_optimizer, compiled_rates, compiled_stats, _ = _one_epoch(compiled=True)
    difference = max(
        (a - b).abs().max().item()
        for a, b in zip(eager.parameters(), compiled.parameters(), strict=True)
    )
    assert difference < WEIGHT_TOLERANCE
    start = _init().parameters()
    moved = max((a - b).abs().max().item() for a, b in zip(eager.parameters(), start, strict=True))
    assert moved > 100 * WEIGHT_TOLERANCE  # the comparison is not between untrained models
    assert compiled_rates == eager_rates and len(set(compiled_rates)) == STEPS - 1  # 1e-3 twice
    assert compiled_stats["grad_norm"] == pytest.approx(eager_stats["grad_norm"], rel=1e-4)
    assert compiled_stats["loss"] == pytest.approx(eager_stats["loss"], rel=1e-5)
    # What a checkpoint stores stays what the eager step stores: learning rates as floats.
    for group in compiled_optimizer.state_dict()["param_groups"]:
        assert isinstance(group["lr"], float)


def _init():
    torch.manual_seed(0)
    return create_model("mixer_cifar_tiny")


def _update_is_captured() -> bool:
    """torch 2.6 cannot trace `clip_grad_norm_` in one graph; torch 2.14 (CI) can. Versions in
    between were not tried: there either outcome passes, and the fallback must say why."""
    version = tuple(int(part) for part in torch.__version__.split(".")[:2])
    return version >= (2, 14)


def test_the_whole_step_compiles_without_graph_breaks_or_recompiles(fresh_dynamo):
    *_, built = _one_epoch(compiled=True)
    assert dict(counters["graph_break"]) == {}
    if _update_is_captured():
        assert built.notes == []
    for note in built.notes:  # a fallback names what runs eagerly, and why
        assert "clipping and AdamW run eagerly" in note
    graphs = 1 if built.notes else 2  # forward+loss (with its backward), clipping+AdamW
    # Six steps with six learning rates: each region compiled once, never again.
    assert counters["stats"]["unique_graphs"] == graphs


def test_a_graph_break_in_the_step_is_an_error_not_a_slow_step(fresh_dynamo):
    model = create_model("mixer_cifar_tiny")
    optimizer = torch.optim.AdamW(model.parameters())

    def forward_with_a_break(model, images, targets, precision, label_smoothing):
        print("a Python side effect dynamo cannot put in a graph")
        return training.forward_loss(model, images, targets, precision, label_smoothing)

    built = compiled_step.build(
        forward_with_a_break, training.clip_and_update, model, optimizer, backend_name="aot_eager"
    )
    images, labels = next(iter(_loader().epoch(seed=0)))
    with pytest.raises(torch._dynamo.exc.Unsupported):
        built.forward_loss(model, images, labels, "fp32", 0.1)


def test_capturable_state_stays_out_of_checkpoints():
    """On CUDA the compiled step makes AdamW capturable; a checkpoint keeps the optimizer's own
    setting, so a run continues on a machine without a GPU (the switch is tested on the CPU)."""
    model = create_model("mixer_cifar_tiny")
    optimizer = torch.optim.AdamW(model.parameters())
    compiled_step._make_capturable(optimizer, torch.device("cpu"))
    assert optimizer.param_groups[0]["capturable"] is True
    assert optimizer.state_dict()["param_groups"][0]["capturable"] is False


def test_tf32_is_switched_on_for_the_block_only():
    before = torch.get_float32_matmul_precision()
    with compiled_step.tf32_matmuls(True):
        assert torch.get_float32_matmul_precision() == "high"
    assert torch.get_float32_matmul_precision() == before
    with compiled_step.tf32_matmuls(False):
        assert torch.get_float32_matmul_precision() == before


def test_the_compile_cache_goes_to_the_user_cache_folder_unless_set(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compiled_step.compile_cache() == tmp_path / "mixer_edu" / "torchinductor"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert compiled_step.compile_cache() == tmp_path / "mine"


def test_a_compiled_run_resumes_on_the_eager_path(data_root, tmp_path, monkeypatch, fresh_dynamo):
    """`train(compile=True)` end to end (capture only, aot_eager): it writes the usual files, and
    its checkpoint continues in an eager run."""
    from tests.test_train import small

    monkeypatch.setenv(compiled_step.BACKEND_ENV, "aot_eager")
    options = dict(data_root=data_root, progress=False, device="cpu", precision="fp32")
    first = training.train(small(epochs=1), out=tmp_path, compile=True, **options)
    assert [r["epoch"] for r in first.history] == [1]
    assert isinstance(first.history[0]["lr"], float)
    resumed = training.train(small(epochs=2), out=tmp_path, resume=True, compile=False, **options)
    assert [r["epoch"] for r in resumed.history] == [1, 2]


def test_a_plan_without_a_compile_gets_the_plain_step():
    from types import SimpleNamespace

    from mixer_edu.train import clip_and_update, forward_loss

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    eager = SimpleNamespace(compile_mode=None)
    assert compiled_step.as_planned(forward_loss, clip_and_update, model, optimizer, eager) is None
