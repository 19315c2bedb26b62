import json
import time

import pytest
import torch

from mixer_edu import bench


def test_forward_flops_match_the_formula_for_a_mixer():
    # quick: 32x32 images, patch 4 -> N=64 tokens of P*P*3=48 pixels; C=32, D_S=16, D_C=128
    config = bench.CONFIGS["quick"]["model"]
    n, pixels, c, d_s, d_c, blocks = 64, 48, 32, 16, 128, config["num_blocks"]
    expected = 2 * (n * pixels * c + blocks * (2 * d_s * n * c + 2 * n * c * d_c) + c * 10)
    ours, _ = bench.build_pair(config)
    images = torch.randn(2, 3, 32, 32)
    assert bench.count_flops(ours, images, train=False) == 2 * expected  # two images
    # The backward pass multiplies twice per matmul (gradients of the input and of the weights),
    # except in the stem: the images need no gradient.
    stem = 2 * n * pixels * c
    assert bench.count_flops(ours, images, train=True) == 2 * (3 * expected - stem)


def test_the_two_models_get_the_same_weights():
    ours, theirs = bench.build_pair(bench.CONFIGS["quick"]["model"])
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            ours.eval().forward_features(images), theirs.eval().forward_features(images)
        )


def test_measurements_take_turns():
    calls = []
    steps = {"ours": lambda: calls.append("ours"), "timm": lambda: calls.append("timm")}
    times = bench.time_alternating(steps, calls=1, repeats=4, device=torch.device("cpu"))
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
    assert all(r["ours_images_per_sec"] > 0 and r["timm_images_per_sec"] > 0 for r in rows)
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
    times = bench.time_alternating(steps, 1, 2, torch.device("cpu"), 0, clock=time.process_time)
    assert max(times["sleep"]) < 0.025
