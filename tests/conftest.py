"""Shared pytest configuration: deterministic, single-threaded torch for reproducible parity."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# The instructor-side grader (grader/) is not installed: the tests import it from the root.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

torch.set_num_threads(1)


@pytest.fixture
def rng():
    """A fresh, seeded NumPy generator for each test."""
    return np.random.default_rng(0)
