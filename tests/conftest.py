"""Shared pytest configuration: deterministic, single-threaded torch for reproducible parity."""

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def rng():
    """A fresh, seeded NumPy generator for each test."""
    return np.random.default_rng(0)
