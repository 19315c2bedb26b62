import pytest
import torch

from mixer_edu.tools import course


def test_fast_mode_follows_the_environment(monkeypatch):
    monkeypatch.delenv(course.FAST_ENV, raising=False)
    assert not course.fast_mode()
    for value, expected in [("1", True), ("yes", True), ("0", False), ("false", False)]:
        monkeypatch.setenv(course.FAST_ENV, value)
        assert course.fast_mode() is expected


def test_course_dataset_is_cifar10_by_default_and_standin_in_fast_mode(monkeypatch):
    monkeypatch.delenv(course.FAST_ENV, raising=False)
    monkeypatch.delenv(course.DATASET_ENV, raising=False)
    assert course.course_dataset() == "cifar10"
    assert "CIFAR-10" in course.describe_mode()
    monkeypatch.setenv(course.DATASET_ENV, "standin")
    assert course.course_dataset() == "standin"
    assert "synthetic stand-in" in course.describe_mode()
    monkeypatch.setenv(course.DATASET_ENV, "imagenet")
    with pytest.raises(ValueError, match="imagenet"):
        course.course_dataset()
    monkeypatch.setenv(course.FAST_ENV, "1")
    assert course.course_dataset() == "standin"
    assert "NOT CIFAR-10" in course.describe_mode()


def test_cmp_prints_closeness_and_never_the_size_of_a_rounding_difference(capsys):
    a = torch.ones(3)
    course.cmp("same", a, a.clone())
    same = capsys.readouterr().out.strip()
    course.cmp("near", a, a + 3e-7)
    near = capsys.readouterr().out.strip()
    # A bitwise-equal pair and a pair that differs by rounding print the same verdict, so the
    # line does not depend on which BLAS kernels a CPU happens to run.
    assert same.split("|", 1)[1] == near.split("|", 1)[1]
    assert "got: same (max diff <= 1e-05)" in same and same.endswith("| as expected ✓")
    assert "identical" not in same + near
    course.cmp("loose", a, a + 5e-4, atol=1e-3)
    assert "got: same (max diff <= 1e-03)" in capsys.readouterr().out
    course.cmp("shape", a, torch.ones(4))
    assert "shape (3,) != (4,)" in capsys.readouterr().out


def test_cmp_says_what_was_expected_and_whether_it_held(capsys):
    a = torch.ones(3)
    cases = [  # (other tensor, expectation, what it got, the verdict)
        (a.clone(), "same", "got: same", "| as expected ✓"),
        (a + 0.5, "same", "got: different (max diff > 1e-05)", "| NOT as expected ✗"),
        (a + 0.5, "different", "got: different", "| as expected ✓"),
        (a.clone(), "different", "got: same", "| NOT as expected ✗"),
    ]
    for other, expect, got, verdict in cases:
        course.cmp("x", a, other, expect=expect)
        line = capsys.readouterr().out.strip()
        assert f"expected: {expect}" in line and got in line and line.endswith(verdict), line
    with pytest.raises(ValueError, match="expect"):
        course.cmp("x", a, a, expect="unchanged")


def test_cmp_exact_is_bitwise_and_says_so_only_when_asked(capsys):
    a = torch.arange(6.0).reshape(2, 3)
    course.cmp("reshape", a.flatten().reshape(2, 3), a, exact=True)
    line = capsys.readouterr().out.strip()
    assert "expected: identical" in line and "got: identical (bitwise)" in line
    assert line.endswith("| as expected ✓")
    course.cmp("rounding", a, a + 1e-7, exact=True)  # close, but not bitwise equal
    line = capsys.readouterr().out.strip()
    assert "got: not identical" in line and line.endswith("| NOT as expected ✗")


def test_sample_photo_is_a_batch_of_one_rgb_image_in_unit_range():
    photo = course.sample_photo(32)
    assert photo.shape == (1, 3, 32, 32) and photo.dtype == torch.float32
    assert 0.0 <= photo.min() < 0.2 and 0.8 < photo.max() <= 1.0


def test_run_dir_separates_fast_runs_from_full_runs(monkeypatch):
    monkeypatch.delenv(course.DATASET_ENV, raising=False)
    monkeypatch.setenv(course.FAST_ENV, "1")
    fast = course.run_dir("04-training")
    monkeypatch.setenv(course.FAST_ENV, "0")
    full = course.run_dir("04-training")
    assert fast.name == "04-training-standin-fast" and full.name == "04-training-cifar10"
    assert fast.parent == full.parent and fast.parent.name == "runs"


def test_setup_notebook_prints_the_run_mode_only_where_asked(capsys, monkeypatch):
    monkeypatch.setenv(course.FAST_ENV, "1")
    course.setup_notebook()
    assert "NOT CIFAR-10" in capsys.readouterr().out
    course.setup_notebook(banner=False)
    assert capsys.readouterr().out == ""


def test_course_device_is_mixer_edu_device_when_set_else_the_fastest(monkeypatch):
    from mixer_edu.support.runtime import default_device

    course_device = course.course_device
    monkeypatch.setenv("MIXER_EDU_DEVICE", "cpu")
    assert course_device() == torch.device("cpu") == default_device()
    monkeypatch.setenv("MIXER_EDU_DEVICE", "tpu")
    with pytest.raises(ValueError, match="device must be one of cuda, mps, cpu"):
        course_device()
    monkeypatch.delenv("MIXER_EDU_DEVICE")
    expected = (
        "cuda"
        if torch.cuda.is_available()
        else "mps"
        if torch.backends.mps.is_available()
        else "cpu"
    )
    assert course_device().type == expected
