"""Keep freed memory in the process for ``seqgan-fast train`` and ``bench`` (glibc only).

Why: a training step allocates the same large tensors every time (the generator's logits and
their gradient, 1,280 x 5,000 floats = 25.6 MB at the paper size; the discriminator's highway
weight gradients, 11.8 MB each), frees them, and allocates them again. glibc's malloc serves
such sizes with fresh ``mmap`` regions or trims them off the heap when freed, so every step
pays the kernel's page faults and zero-fill again. ``python benchmarks/micro.py g_profile``
(the generator's MLE step at the paper size, 2 threads, idle AVX-512 instance, two runs each):
39.1-47.6 ms a step with glibc's defaults (``_log_softmax_backward_data`` 7.6-8.1 ms,
``fill_`` 4.3-4.9) against 26.8-29.5 ms with the settings below (3.0-3.6 and 0.9).
``mallopt`` serves requests up to 32 MiB (glibc's largest allowed threshold) from the heap
and never trims it below 1 GiB of free space, as running under jemalloc or tcmalloc would.
Numerics are untouched: ``seqgan-fast train`` (preset ``quick``, 2 threads, idle AVX-512
instance) gives the same metrics bit for bit, in 70.4 s instead of 85.3 s.

The cost: memory a run freed stays mapped to it (its RSS does not shrink after a peak).
``SEQGAN_FAST_MALLOC=system`` keeps glibc's defaults. Elsewhere (no glibc) this does nothing.
"""
from __future__ import annotations

import ctypes
import logging
import os
import platform

log = logging.getLogger("seqgan_fast")

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
MMAP_THRESHOLD = 32 << 20  # glibc's maximum (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 1 << 30
MODES = ("keep", "system")


def keep_freed_memory() -> bool:
    """Apply the settings above unless ``SEQGAN_FAST_MALLOC=system``; returns whether they
    are in force. An unknown value of the variable is an error naming it."""
    mode = os.environ.get("SEQGAN_FAST_MALLOC", "keep")
    if mode not in MODES:
        raise ValueError(f"SEQGAN_FAST_MALLOC must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "system" or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    ok = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not ok:
        log.info("malloc: glibc refused the mmap/trim thresholds; keeping its defaults")
    return ok
