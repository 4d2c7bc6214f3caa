"""Optimizers of the training loop.

The discriminator step (batch 64, forward + backward + Adam, ~1 million times in the paper's
schedule) is dominated on CPU by its GEMMs and, with torch's default for-loop Adam, by ~7
million parameters updated one tensor and one elementwise op at a time: 30 of 113 ms per
step single-threaded at the paper size (`python benchmarks/micro.py d_step`, idle 2-core
AVX-512 instance). ``fused=True`` (torch >= 2.4, CPU and CUDA) does the same update in one
pass (4.4 ms). The arithmetic is Adam's; only float rounding
differs (tests/test_d_step.py: the same loss curve to 1e-4 over 200 steps).

On CUDA the optimizer is built ``capturable=True`` (its step count lives on the device), so
the whole discriminator step can be captured in a CUDA graph (seqgan_fast/train/dstep.py).
"""
from __future__ import annotations

from collections.abc import Iterable

import torch


def fast_adam(params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with the fused update where torch has it for these parameters, else foreach;
    capturable (CUDA-graph safe) when the parameters are on CUDA."""
    params = list(params)
    cuda = bool(params) and all(p.device.type == "cuda" for p in params)
    if params and all(p.dtype in (torch.float32, torch.float64) for p in params) and \
            all(p.device.type in ("cpu", "cuda") for p in params):
        try:
            return torch.optim.Adam(params, lr=lr, fused=True, capturable=cuda)
        except (RuntimeError, TypeError, ValueError):  # older torch: no fused Adam here
            pass
    return torch.optim.Adam(params, lr=lr, foreach=True)
