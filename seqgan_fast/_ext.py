"""Guarded import of the compiled extension ``seqgan_fast._C``.

The package works without it (reference backend); the fast CPU/CUDA backends need it.
Its ops are registered with the torch dispatcher as ``torch.ops.seqgan_fast.{decode,sample,
rollout}`` with one kernel per device type (CPU in csrc/cpu, CUDA in csrc/cuda).
"""
from __future__ import annotations

import functools

import torch

REBUILD_HINT = "pip install --no-build-isolation -e .  (from the repository root)"

try:
    from . import _C  # noqa: F401  (registers torch.ops.seqgan_fast.*)

    IMPORT_ERROR: Exception | None = None
except ImportError as exc:  # not built, or built against another torch
    _C = None
    IMPORT_ERROR = exc


@functools.cache
def has_kernel(op: str, dispatch_key: str) -> bool:
    """Whether the extension registered ``seqgan_fast::op`` for a dispatch key (CPU/CUDA);
    cached: registrations happen once, at import (the D step asks on every call)."""
    if _C is None:
        return False
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(f"seqgan_fast::{op}", dispatch_key)
    except RuntimeError:
        return False


def signed_seed(seed: int) -> int:
    """Seeds are unsigned 64-bit; torch op schemas carry int64, so pass the same bits signed."""
    return seed - 2**64 if seed >= 2**63 else seed
