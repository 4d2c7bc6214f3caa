"""pytest-benchmark front end: ``pytest benchmarks --benchmark-only`` times every op at the
paper configuration; ``SEQGAN_FAST_BENCH_TINY=1 pytest benchmarks --benchmark-disable`` is the
CI smoke (tiny sizes, every call checked, nothing timed)."""
from __future__ import annotations

import pytest
import torch

from seqgan_fast.benchmarks.configs import CONFIGS, tiny_requested


@pytest.fixture(scope="session")
def bench_config():
    """The tiny config under SEQGAN_FAST_BENCH_TINY=1, else the paper's."""
    return CONFIGS["tiny" if tiny_requested() else "paper"]


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(1234)
