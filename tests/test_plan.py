import pytest

from mixer_edu.support.plan import LARGE_GPU_BATCH, DeviceDescription, describe_device, plan_run

H200 = DeviceDescription("cuda", "NVIDIA H200", bf16=True, cores=16)
OLD_GPU = DeviceDescription("cuda", "Tesla T4", bf16=False, cores=4)
AMX_CPU = DeviceDescription("cpu", "Intel Xeon (AMX)", bf16=True, cores=2)
PLAIN_CPU = DeviceDescription("cpu", "AMD Ryzen (AVX2)", bf16=False, cores=8)
MAC = DeviceDescription("mps", "mps", bf16=False, cores=10)


def test_cpu_trains_in_bf16_exactly_where_it_has_bf16_units():
    assert plan_run(AMX_CPU, 128).precision == "bf16"
    assert plan_run(PLAIN_CPU, 128).precision == "fp32"
    assert plan_run(AMX_CPU, 4096).precision == "bf16"  # the batch size does not matter on CPUs


def test_gpu_uses_bf16_only_at_large_batches_where_the_step_is_not_launch_bound():
    # Measured on one NVIDIA H200, torch 2.11 (bench, 2026-12): 9,500 fp32 vs 7,200 bf16 img/s.
    assert plan_run(H200, 128).precision == "fp32"
    assert plan_run(H200, LARGE_GPU_BATCH - 1).precision == "fp32"
    assert plan_run(H200, LARGE_GPU_BATCH).precision == "bf16"
    assert plan_run(H200, 1024).precision == "bf16"
    assert plan_run(OLD_GPU, 1024).precision == "fp32"  # no bf16 units
    assert plan_run(MAC, 1024).precision == "fp32"


def test_a_precision_chosen_by_hand_is_kept():
    assert plan_run(H200, 128, precision="bf16").precision == "bf16"
    assert plan_run(AMX_CPU, 128, precision="fp32").precision == "fp32"


def test_gpus_compile_by_default_and_cpus_stay_eager_unless_asked():
    # Issue 22, one H200: 25 s of compiling, then 15k-18.5k img/s against 7.4k-8.7k eager.
    assert plan_run(H200, 128).step == "cuda-graphs"
    assert "pays the compile back" in plan_run(H200, 128).why


def test_an_automatic_compile_is_dropped_for_a_run_too_short_to_pay_it_back():
    from mixer_edu.support.plan import MIN_COMPILED_STEPS

    auto = plan_run(H200, 128)
    assert auto.for_steps(30 * 390) is auto  # the classroom run: 11,700 steps, compiled
    short = auto.for_steps(MIN_COMPILED_STEPS - 1)
    assert short.step == "eager" and "too few to pay back a compile" in short.why
    assert "eager steps" in short.summary()
    asked = plan_run(H200, 128, compile=True)
    assert asked.for_steps(10).step == "cuda-graphs"  # asked for: kept, however short
    assert plan_run(AMX_CPU, 128).for_steps(10).step == "eager"
    assert plan_run(H200, 128, compile=False).step == "eager"
    assert plan_run(AMX_CPU, 128).step == "eager"  # the CPU default stays the plain step
    assert plan_run(MAC, 128).step == "eager"
    assert plan_run(AMX_CPU, 128, compile=True).why == ""  # asked for: no reason to give
    with pytest.raises(ValueError, match="compile must be one of"):
        plan_run(H200, 128, compile="yes")


def test_tf32_only_on_cuda_where_the_plan_chose_fp32():
    assert plan_run(H200, 128).tf32 and "TF32" in plan_run(H200, 128).summary()
    assert not plan_run(H200, 128, precision="fp32").tf32  # asked for fp32: full fp32
    assert not plan_run(H200, 1024).tf32  # bf16 autocast
    assert not plan_run(AMX_CPU, 128, precision="fp32").tf32
    assert not plan_run(PLAIN_CPU, 128).tf32


def test_compile_uses_cuda_graphs_only_for_small_gpu_batches():
    small, large = plan_run(H200, 128, compile=True), plan_run(H200, 1024, compile=True)
    assert (small.step, small.compile_mode) == ("cuda-graphs", "reduce-overhead")
    assert (large.step, large.compile_mode) == ("compile", "default")
    assert plan_run(AMX_CPU, 128, compile=True).step == "compile"
    assert plan_run(AMX_CPU, 128).compile_mode is None
    assert plan_run(H200, 1024, compile=False).compile_mode is None


def test_crop_flip_runs_on_the_device_and_policies_per_image_with_workers_by_core_count():
    for augment in ("none", "crop-flip"):
        plan = plan_run(H200, 128, augment)
        assert (plan.data_path, plan.workers) == ("device", 0)
    for augment in ("randaugment", "autoaugment"):
        assert plan_run(H200, 128, augment).data_path == "per-image"
    assert plan_run(H200, 128, "randaugment").workers == 8  # half of 16 cores, at most 8
    assert plan_run(AMX_CPU, 128, "randaugment").workers == 0  # 2 cores: no workers
    assert plan_run(PLAIN_CPU, 128, "randaugment", num_workers=1).workers == 1
    per_image = plan_run(H200, 128, "crop-flip", data_path="per-image")
    assert (per_image.data_path, per_image.workers) == ("per-image", 8)


def test_impossible_or_unknown_choices_get_errors_naming_the_fix():
    with pytest.raises(ValueError, match="data_path='per-image'"):
        plan_run(H200, 128, "randaugment", data_path="device")
    with pytest.raises(ValueError, match="data_path must be one of"):
        plan_run(H200, 128, data_path="gpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        plan_run(H200, 128, precision="fp16")


def test_summary_names_device_precision_data_path_step_and_workers():
    line = plan_run(H200, 128, "randaugment", compile=True).summary()
    for part in ("cuda", "NVIDIA H200", "fp32", "per-image", "8 worker", "CUDA graphs", "TF32"):
        assert part in line
    assert "on the device" in plan_run(AMX_CPU, 128).summary()


def test_this_machine_is_described_without_error():
    here = describe_device("cpu")
    assert here.type == "cpu" and here.cores >= 1 and isinstance(here.bf16, bool)
