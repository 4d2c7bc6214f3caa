"""CPU thread count under load: never more threads than CPUs left free by other processes.

Why: torch's OpenMP runtime (libgomp, wait policy unset) lets a thread that reaches a barrier
spin before it sleeps. When other processes hold the CPUs, the thread being waited for is
descheduled while its partner burns the CPU it needs, and every parallel region stalls. On the
2-core box of issue 13, at load ~5 (other engineers' jobs), one MLE epoch of preset quick took
16.4 s with torch's default 2 threads against 2.45 s with 1 thread, a discriminator round
59 s against 5.0 s; ``OMP_WAIT_POLICY=passive`` brought 2 threads back to 2.3 s / 7.6 s but
must be set before torch is imported, so it cannot be this package's default. One thread has
no barriers and degrades in proportion to the CPU share it gets, so the rule is:

    threads = max(1, min(torch's default, CPUs available to the process, CPUs - others))

where ``others`` counts the other runnable tasks right now (``/proc/loadavg`` field 4, minus
this process's own running threads; the 1-minute load average lags a minute behind new
load). :class:`ThreadGovernor` re-applies the rule every ``interval_s`` during training, on
the training thread (``torch.set_num_threads`` only affects the calling thread's OpenMP
regions), and logs a warning whenever the process is oversubscribed.
"""
from __future__ import annotations

import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


def available_cpus() -> int:
    """CPUs this process may run on (affinity / cgroup cpuset), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _own_running_threads() -> int:
    running = 0
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        running += state == "R"
    return max(running, 1)  # at least the thread asking


def other_runnable(samples: int = 5, gap_s: float = 0.002) -> float:
    """Runnable tasks of other processes now (median of a few samples of /proc/loadavg);
    falls back to the 1-minute load average where /proc is missing."""
    counts = []
    for i in range(samples):
        try:
            running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return max(0.0, os.getloadavg()[0] - 1) if hasattr(os, "getloadavg") else 0.0
        counts.append(max(0, running - _own_running_threads()))
        if i + 1 < samples:
            time.sleep(gap_s)
    return float(statistics.median(counts))


def choose_threads(default: int, cpus: int, others: float) -> int:
    """The rule of the module docstring."""
    free = cpus - int(round(others))
    return max(1, min(default, cpus, free))


class ThreadGovernor:
    """Sets torch's thread count by the rule above, now and every ``interval_s`` after
    (``attach`` hooks it on a trainer's optimizer steps). ``requested``: a fixed count
    (--threads): kept, with a warning when the machine is oversubscribed."""

    def __init__(self, requested: int | None = None, interval_s: float = 15.0) -> None:
        self.requested = requested
        self.default = requested or torch.get_num_threads()
        self.interval_s = interval_s
        self.cpus = available_cpus()
        self._next = 0.0
        self._warned = False

    def apply(self, warn: bool = True) -> int:
        """Choose and set the thread count; returns it. ``warn``: log the oversubscription
        warning (once) if it applies."""
        others = other_runnable()
        threads = self.requested or choose_threads(self.default, self.cpus, others)
        if threads != torch.get_num_threads():
            if self._next:  # not the first decision: say why it changed
                log.info("threads: %d -> %d (%.0f other runnable tasks on %d CPUs)",
                         torch.get_num_threads(), threads, others, self.cpus)
            torch.set_num_threads(threads)
        if warn and others + threads > self.cpus and not self._warned:
            self._warned = True
            log.warning("this machine is oversubscribed: %.0f other runnable task(s) on %d "
                        "CPU(s) available to this process; training with %d thread(s)%s, "
                        "expect it to take longer in proportion", others, self.cpus, threads,
                        " as --threads asks" if self.requested else "")
        self._next = time.monotonic() + self.interval_s
        return threads

    def tick(self, *_: Any) -> None:
        if time.monotonic() >= self._next:
            self.apply()

    def attach(self, trainer: Any) -> ThreadGovernor:
        """Apply the rule now (warning if oversubscribed) and again during ``trainer.fit()``."""
        self.apply()
        for opt in (trainer.g_mle_opt, trainer.g_adv_opt, trainer.d_opt):
            opt.register_step_pre_hook(self.tick)
        return self
