"""The instruction-set path of the ``cpp`` backend's fused CPU core.

One build carries an ``avx512`` (x86-64-v4), an ``avx2`` (x86-64-v3: AVX2 + FMA) and a
``baseline`` (x86-64 SSE2, or any other CPU) copy of the core, each register-blocked for its
register file; the best one the CPU supports is chosen by CPUID at first use. The
environment variable ``SEQGAN_FAST_ISA=avx512|avx2|baseline|auto``, read at that first use,
or :func:`set_cpu_isa` / :func:`force_cpu_isa` choose a lower one (tests and benchmarks run
every path on one machine that way). All paths draw the same tokens up to rare float ties:
avx512 and avx2 compute every lane with the same FMAs in the same order (bit-identical), the
baseline has no FMA.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .. import _ext

ISA_PATHS = ("avx512", "avx2", "baseline")  # best first


def _op(name: str):
    if _ext._C is None:
        raise RuntimeError(f"the extension seqgan_fast._C is not built ({_ext.IMPORT_ERROR}); "
                           f"rebuild with: {_ext.REBUILD_HINT}")
    return getattr(torch.ops.seqgan_fast, name)


def _call(name: str, *args):
    try:
        return _op(name)(*args)
    except RuntimeError as exc:
        if _ext._C is None:
            raise
        raise ValueError(str(exc).splitlines()[0]) from None


def cpu_isa() -> str | None:
    """The path the ``cpp`` backend runs (None where the extension is not built).

    Raises ValueError if ``SEQGAN_FAST_ISA`` names an unknown path or one this CPU cannot run.
    """
    return None if _ext._C is None else _call("cpu_isa")


def cpu_isa_best() -> str | None:
    """The best path this CPU (and OS) supports; None where the extension is not built."""
    return None if _ext._C is None else _call("cpu_isa_best")


def cpu_isa_paths() -> list[str]:
    """Every path this machine can run, best first (empty without the extension)."""
    best = cpu_isa_best()
    return [] if best is None else list(ISA_PATHS[ISA_PATHS.index(best):])


def set_cpu_isa(isa: str) -> str:
    """Use path ``isa`` (``avx512``, ``avx2``, ``baseline`` or ``auto`` = the best supported)
    for the rest of the process; returns the previous path. ValueError (naming ``isa``) for
    an unknown path or one this CPU cannot run; the path in use then stays."""
    if not isinstance(isa, str):
        raise ValueError(f"isa must be a string, got {type(isa).__name__}")
    return _call("set_cpu_isa", isa)


@contextlib.contextmanager
def force_cpu_isa(isa: str) -> Iterator[str]:
    """``with force_cpu_isa("avx2"): ...`` runs the block on that path, then restores."""
    previous = set_cpu_isa(isa)
    try:
        yield cpu_isa()
    finally:
        set_cpu_isa(previous)
