"""Fixtures shared by the tests."""

import os

import pytest
import torch

from mixer_edu.support import standin

# On a GPU machine (tools/gpu_check.py), cuBLAS gives bit-identical results run to run only with
# a fixed workspace, which must be set before CUDA starts; tests that compare runs bit for bit
# also switch on torch.use_deterministic_algorithms. No effect on the CPU.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@pytest.fixture(autouse=True)
def _fixed_seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """One default-sized stand-in data set for the whole session (a few seconds to generate)."""
    root = tmp_path_factory.getbasetemp() / "shared-data"
    standin.write_standin(root)
    return root
