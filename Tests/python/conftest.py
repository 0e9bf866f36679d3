"""Shared settings of the Python tests of libera's era package (Tests/python)."""

import os

import numpy as np
import pytest
from hypothesis import settings

# Property tests: few, fast examples; no deadline (the first call of a kernel may page in).
settings.register_profile("era", max_examples=40, deadline=None, derandomize=True)
settings.load_profile(os.environ.get("ERA_HYPOTHESIS_PROFILE", "era"))


@pytest.fixture
def rng():
    return np.random.default_rng(20251008)
