"""``first_non_finite``: which of several tensors holds a NaN, an inf, or an element whose
square overflows float32; one pass over the tensors, one host sync for the answer.

Checkpoints refuse such tensors (run/checkpoint.py) and the training guard stops at them
(train/guard.py). On CPU float32 the extension's check (csrc/common/finite.h) runs at the
memory's pace; elsewhere torch's aminmax, which propagates NaN. ``non_finite_flags`` is the
same test without a host sync, for the discriminator step's CUDA graph (train/dstep.py).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from .._ext import has_kernel

# Magnitudes from which an element's square overflows float32 (FLT_MAX < 2^128): such a
# gradient turns Adam's second moment (exp_avg_sq) into inf, silently freezing the weight.
OVERFLOW = 2.0 ** 64


def first_non_finite(named: Iterable[tuple[str, torch.Tensor | None]]) -> str | None:
    """The name of the first floating tensor of ``named`` ((name, tensor) pairs; None and
    non-floating tensors are skipped) holding a NaN, an inf, or an element of magnitude
    >= 2^64, or None when all are fine."""
    items = [(n, t.detach()) for n, t in named
             if t is not None and t.is_floating_point() and t.numel()]
    if not items:
        return None
    tensors = [t for _, t in items]
    if all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous()
           for t in tensors) and has_kernel("first_non_finite", "CPU"):
        i = int(torch.ops.seqgan_fast.first_non_finite(tensors))
        return None if i < 0 else items[i][0]
    bounds = torch.stack([torch.stack(torch.aminmax(t)).float() for t in tensors])
    ok = (bounds[:, 0] > -OVERFLOW) & (bounds[:, 1] < OVERFLOW)
    if bool(ok.all()):
        return None
    return items[int((~ok).nonzero()[0])][0]


def non_finite_flags(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """(len(tensors),) bool on the tensors' device, True where a float tensor holds a NaN, an
    inf or an element of magnitude >= 2^64: ``first_non_finite``'s test, computed without a
    host sync (two multi-tensor norms: the L1 norm is non-finite exactly when an element is,
    since 7M elements below 2^64 cannot sum past float32's range; the max norm catches the
    overflow), so it can run inside a CUDA graph."""
    l1 = torch.stack(torch._foreach_norm(list(tensors), 1))
    linf = torch.stack(torch._foreach_norm(list(tensors), float("inf")))
    return ~(torch.isfinite(l1) & (linf < OVERFLOW))
