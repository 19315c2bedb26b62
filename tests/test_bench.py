import json
import time

import pytest
import torch

from mixer_edu.support import peaks
from mixer_edu.tools import bench, bench_core, bench_loop


def test_forward_flops_match_the_formula_for_a_mixer():
    # quick: 32x32 images, patch 4 -> N=64 tokens of P*P*3=48 pixels; C=32, D_S=16, D_C=128
    config = bench_core.CONFIGS["quick"]["model"]
    n, pixels, c, d_s, d_c, blocks = 64, 48, 32, 16, 128, config["num_blocks"]
    expected = 2 * (n * pixels * c + blocks * (2 * d_s * n * c + 2 * n * c * d_c) + c * 10)
    ours, _ = bench_core.build_pair(config)
    images = torch.randn(2, 3, 32, 32)
    assert bench.count_flops(ours, images, train=False) == 2 * expected  # two images
    # The backward pass multiplies twice per matmul (gradients of the input and of the weights),
    # except in the stem: the images need no gradient.
    stem = 2 * n * pixels * c
    assert bench.count_flops(ours, images, train=True) == 2 * (3 * expected - stem)


def test_the_two_models_get_the_same_weights():
    ours, theirs = bench_core.build_pair(bench_core.CONFIGS["quick"]["model"])
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            ours.eval().forward_features(images), theirs.eval().forward_features(images)
        )


def test_measurements_take_turns():
    calls = []
    steps = {"ours": lambda: calls.append("ours"), "timm": lambda: calls.append("timm")}
    times = bench_core.time_alternating(steps, calls=1, repeats=4, device=torch.device("cpu"))
    assert calls[4:] == ["ours", "timm", "timm", "ours", "ours", "timm", "timm", "ours"]
    assert all(len(seconds) == 4 for seconds in times.values())


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_quick_benchmark_reports_every_row(tmp_path, capsys, one_thread):
    assert bench.main(["--quick", "--threads", "1", "--json", str(tmp_path / "b.json")]) == 0
    printed = capsys.readouterr().out
    assert "ours/timm" in printed and "GFLOP/s fp32" in printed and "% of fp32 matmul" in printed
    result = json.loads((tmp_path / "b.json").read_text())
    assert result["machine"]["fp32_matmul_gflops"] > 0
    rows = result["results"][0]["rows"]
    assert {(r["kind"], r["precision"]) for r in rows} == {
        (kind, precision) for kind in ("train", "infer") for precision in ("fp32", "bf16")
    }
    assert all(r["ours_images_per_second"] > 0 and r["timm_images_per_second"] > 0 for r in rows)
    quick = result["results"][0]
    assert quick["infer_flops_per_image"] < quick["train_flops_per_image"]
    ratios = [
        float(line.split()[4])
        for line in printed.splitlines()
        if line.startswith(("train ", "infer "))
    ]
    assert len(ratios) == 4 and all(ratio > 0 for ratio in ratios)  # the ours/timm column


def test_cpu_time_clock_is_reported_and_counts_only_this_process(capsys, one_thread):
    assert bench.main(["--quick", "--threads", "1", "--cpu-time", "--precision", "fp32"]) == 0
    printed = capsys.readouterr().out
    assert "process CPU time" in printed and "bf16" not in printed.split("\n", 1)[1]
    # A process that sleeps gets no CPU time: the CPU clock does not count waiting.
    steps = {"sleep": lambda: time.sleep(0.05)}
    times = bench_core.time_alternating(
        steps, 1, 2, torch.device("cpu"), 0, clock=time.process_time
    )
    assert max(times["sleep"]) < 0.025


def test_percent_of_peak_compares_each_precision_with_its_own_matmul_peak():
    machine = {"fp32_matmul_gflops": 100.0, "bf16_matmul_gflops": 400.0}
    rows = [
        {"kind": "train", "precision": precision, "ours_images_per_second": 1000.0}
        | {"timm_images_per_second": 500.0}
        for precision in ("fp32", "bf16")
    ]
    result = {
        "config": "quick",
        "model": bench_core.CONFIGS["quick"]["model"],
        "batch_size": 16,
        "train_flops_per_image": 1e8,  # 1000 img/s * 1e8 FLOP = 100 GFLOP/s in both rows
        "infer_flops_per_image": 5e7,
        "rows": rows,
    }
    printed = bench.report(machine, result)
    percents = {
        line.split()[1]: (line.split()[5], line.split()[6])
        for line in printed.splitlines()
        if line.startswith("train ")
    }
    assert percents == {"fp32": ("100%", "50%"), "bf16": ("25%", "12%")}
    assert "% of fp32 matmul (100 GFLOP/s)" in printed
    assert "% of bf16 matmul (400 GFLOP/s)" in printed
    assert bench_core.peak_gflops(machine, "bf16") == 400.0


def test_data_mode_measures_both_input_paths_next_to_the_model_step(tmp_path, capsys, one_thread):
    argv = ["--quick", "--threads", "1", "--precision", "fp32", "--data"]
    assert bench.main([*argv, "--json", str(tmp_path / "b.json")]) == 0
    printed = capsys.readouterr().out
    assert "device batches" in printed and "per-image, 0 workers" in printed
    assert "ceiling, fp32 step" in printed
    data = json.loads((tmp_path / "b.json").read_text())["results"][0]["data"]
    assert [row["path"] for row in data["rows"]] == ["device batches", "per-image, 0 workers"]
    assert all(row["images_per_second"] > 0 for row in data["rows"])


def test_loop_ceiling_is_data_over_data_plus_model():
    data = {"config": "quick", "images": 64, "batch_size": 16, "device": "cpu"}
    data["rows"] = [{"path": "device batches", "images_per_second": 300.0}]
    result = {"rows": [{"kind": "train", "precision": "fp32", "ours_images_per_second": 100.0}]}
    line = bench.report_data(data, result).splitlines()[-1]
    assert line.split()[-2:] == ["300", "75.0%"]  # 300 / (300 + 100)


def test_loop_mode_runs_the_trainers_epoch_next_to_the_model_step(tmp_path, capsys, one_thread):
    argv = ["--quick", "--threads", "1", "--precision", "fp32", "--loop"]
    assert bench.main([*argv, "--json", str(tmp_path / "b.json")]) == 0
    printed = capsys.readouterr().out
    assert "through train_one_epoch" in printed
    loop = json.loads((tmp_path / "b.json").read_text())["results"][0]["loop"]
    (row,) = loop["rows"]
    assert set(row["seconds"]) == {
        "ours model-only", "ours loop", "ours evaluation", "ours model-only evaluation",
        "ours data", "ours checkpoint", "ours checkpoint write", "timm model-only",
    }  # fmt: skip
    assert "epoch parts, quick" in printed and "30 epochs s" in printed
    assert all(seconds > 0 for seconds in row["seconds"].values())


def test_loop_fractions_are_loop_and_loop_plus_evaluation_over_model_only():
    seconds = {"ours model-only": 1.0, "ours loop": 1.25, "ours evaluation": 0.75}
    seconds |= {"ours model-only evaluation": 0.25, "timm model-only": 2.0}
    loop = {"config": "quick", "train_images": 100, "test_images": 20, "batch_size": 10}
    loop |= {"device": "cpu", "rows": [{"precision": "fp32", "seconds": seconds}]}
    line = bench_loop.report_loop(loop).splitlines()[-1].split()
    # model-only 100 img/s; loop 80 (80%); with evaluation 100 / 2 s = 50 img/s, against the
    # model-only steps and forward passes of the same work, 100 / 1.25 s = 80 (62.5%); timm 50
    assert line == ["fp32", "100.0", "80.0", "80.0%", "50.0", "62.5%", "50.0", "1.60"]


def test_epoch_parts_are_fractions_of_the_epoch_and_project_to_cifar_size():
    seconds = {"ours model-only": 0.5, "ours loop": 0.75, "ours evaluation": 0.2}
    seconds |= {"ours data": 0.125, "ours checkpoint": 0.05}
    seconds |= {
        "ours compiled model-only": 0.25,
        "ours compiled loop": 0.4,
        "ours compiled evaluation": 0.1,
    }
    loop = {"config": "quick", "train_images": 1000, "test_images": 200, "batch_size": 100}
    loop |= {"rows": [{"precision": "fp32", "seconds": seconds, "compile": 20.0}]}
    eager, fast = (line.split() for line in bench_loop.report_epoch(loop).splitlines()[-2:])
    # eager epoch 1 s: data 12.5%, step 50%, the rest of the loop 12.5%, eval 20%, ckpt 5%
    assert eager[:7] == ["fp32", "eager", "12.5%", "50.0%", "12.5%", "20.0%", "5.0%"]
    # CIFAR-10 size: the loop x 50 (50,000 / 1,000 images), the evaluation x 50 (10,000 / 200),
    # one checkpoint; 30 such epochs, plus the compile of the compiled step
    assert eager[7:] == ["47.55", "0.0", f"{30 * (37.5 + 10 + 0.05):.0f}"]
    assert fast[1] == "compiled" and fast[7:] == ["25.05", "20.0", f"{30 * 25.05 + 20:.0f}"]


def test_datasheet_peaks_are_given_only_for_devices_with_cited_figures():
    assert peaks.datasheet_peak("NVIDIA H200")[1] == {"fp32": 67.0, "tf32": 494.0, "bf16": 989.0}
    assert peaks.datasheet_peak("NVIDIA H100 80GB HBM3")[0] == "H100/H200 SXM"
    assert peaks.datasheet_peak("NVIDIA H100 PCIe")[0] == "H100 PCIe"
    assert peaks.datasheet_peak("NVIDIA A100-SXM4-80GB")[0] == "A100"
    assert peaks.datasheet_peak("NVIDIA H200 NVL") is None
    assert peaks.datasheet_peak("Tesla T4") is None and peaks.datasheet_peak("Intel Xeon") is None
    assert peaks.matmul_size(torch.device("cuda")) == 8192  # big enough for the tensor cores
    machine = {"fp32_matmul_gflops": 50.0, "tf32_matmul_gflops": 400.0, "bf16_matmul_gflops": 800.0}
    assert bench_core.peak_gflops(machine, "fp32") == 400.0  # the trainer's fp32 on CUDA is TF32


def test_grad_checkpointing_mode_reports_memory_and_time_off_and_on(tmp_path, capsys, one_thread):
    argv = ["--quick", "--threads", "1", "--grad-checkpointing"]
    assert bench.main([*argv, "--json", str(tmp_path / "b.json")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("gradient checkpointing, quick") and "peak memory" in printed
    result = json.loads((tmp_path / "b.json").read_text())["checkpointing"]
    assert result["peak_bytes_on"] < result["peak_bytes_off"]
    assert result["seconds_on"] > 0 and result["seconds_off"] > 0
