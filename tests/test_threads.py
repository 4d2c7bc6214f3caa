"""CPU threads under load (seqgan_fast/cli/threads.py)."""
from __future__ import annotations

import logging
import os

import pytest
import torch

from seqgan_fast.cli.threads import ThreadGovernor, choose_threads

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.one_thread


@pytest.mark.parametrize("default,cpus,others,expect", [
    (2, 2, 0, 2), (2, 2, 1, 1), (2, 2, 2, 1), (2, 2, 7, 1), (8, 4, 0, 4), (8, 16, 3, 8),
    (4, 8, 6, 2), (1, 8, 0, 1),
])
def test_choose_threads(default, cpus, others, expect):
    assert choose_threads(default, cpus, others) == expect


def test_governor_lowers_threads_under_load_and_warns(monkeypatch, caplog):
    import seqgan_fast.cli.threads as threads

    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    load = {"others": 2.0}
    monkeypatch.setattr(threads, "other_runnable", lambda: load["others"])
    torch.set_num_threads(2)
    with caplog.at_level(logging.WARNING, logger="seqgan_fast.cli.threads"):
        gov = ThreadGovernor(interval_s=0.0)
        assert gov.apply() == 1 and torch.get_num_threads() == 1
    assert "oversubscribed" in caplog.text
    load["others"] = 0.0
    gov.tick()
    assert torch.get_num_threads() == 2  # load gone: back to the default
    fixed = ThreadGovernor(requested=2, interval_s=0.0)
    load["others"] = 5.0
    assert fixed.apply() == 2  # --threads is obeyed (with the warning)


def test_other_runnable_reads_this_machine():
    from seqgan_fast.cli.threads import available_cpus, other_runnable

    assert other_runnable(samples=2, gap_s=0.0) >= 0
    assert 1 <= available_cpus() <= (os.cpu_count() or 1)
