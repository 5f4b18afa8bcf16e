"""Shared set-up for the unit tests: plots render off-screen, and book/ is importable."""

import sys
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book"))


@pytest.fixture
def one_torch_thread():
    """For tests of tiny networks: one thread is faster than several, which mostly wait for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
