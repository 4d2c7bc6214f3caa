"""Backend selection (DESIGN §3): one place decides which implementation runs."""
from __future__ import annotations

import importlib.util
import logging
import os

import torch

from .. import _ext

log = logging.getLogger("seqgan_fast")

BACKENDS = ("reference", "cpp", "triton", "cuda")
_warned: set[str] = set()


def triton_interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _triton_importable() -> bool:
    return importlib.util.find_spec("triton") is not None


def is_available(backend: str, device: torch.device | str | None = None) -> bool:
    """Whether ``backend`` can run on tensors of ``device`` (None: on some device)."""
    dev = torch.device(device) if device is not None else None
    if backend == "reference":
        return True
    if backend == "cpp":
        return (dev is None or dev.type == "cpu") and _ext.has_kernel("rollout", "CPU")
    if backend == "cuda":
        return (dev is None or dev.type == "cuda") and torch.cuda.is_available() \
            and _ext.has_kernel("rollout", "CUDA")
    if backend == "triton":
        if not _triton_importable():
            return False
        if dev is not None and dev.type == "cpu":
            return triton_interpret()
        return torch.cuda.is_available() or (dev is None and triton_interpret())
    raise ValueError(f"unknown backend {backend!r}; choose from auto, {', '.join(BACKENDS)}")


def available_backends(device: torch.device | str | None = None) -> list[str]:
    """Backends usable here (on ``device`` if given), fastest-preferred order last."""
    return [b for b in BACKENDS if is_available(b, device)]


def _why_unavailable(backend: str, dev: torch.device) -> str:
    if backend in ("cpp", "cuda") and _ext._C is None:
        return f"the extension seqgan_fast._C is not built ({_ext.IMPORT_ERROR}); " \
               f"rebuild with: {_ext.REBUILD_HINT}"
    if backend == "cpp":
        return "the cpp backend runs on CPU tensors only" if dev.type != "cpu" else \
            f"seqgan_fast._C has no CPU kernels; rebuild with: {_ext.REBUILD_HINT}"
    if backend == "cuda":
        if dev.type != "cuda":
            return "the cuda backend needs CUDA tensors"
        return "seqgan_fast._C was built without CUDA; rebuild with: " \
               f"SEQGAN_FAST_CUDA=1 {_ext.REBUILD_HINT}"
    if backend == "triton":
        if not _triton_importable():
            return "triton is not installed; install with: pip install triton"
        return "triton needs a CUDA device, or TRITON_INTERPRET=1 set before import for CPU"
    return "unknown reason"


def resolve(backend: str, device: torch.device | str) -> str:
    """Map ``auto`` to the best available backend for ``device``; check explicit requests."""
    dev = torch.device(device)
    if backend == "auto":
        order = ("cuda", "triton", "reference") if dev.type == "cuda" else ("cpp", "reference")
        for b in order:
            if is_available(b, dev):
                if b != order[0] and order[0] not in _warned:
                    _warned.add(order[0])
                    log.info("backend auto: %s unavailable on %s (%s); using %s", order[0],
                             dev.type, _why_unavailable(order[0], dev), b)
                return b
        return "reference"
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from auto, {', '.join(BACKENDS)}")
    if not is_available(backend, dev):
        raise RuntimeError(f"backend {backend!r} is unavailable: {_why_unavailable(backend, dev)}")
    return backend
