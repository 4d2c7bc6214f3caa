"""The ``device`` setting: which torch device a run (or a loaded generator) uses."""
from __future__ import annotations

import torch

from ..errors import ConfigError


def check_device(device: str) -> torch.device:
    """Parse ``cpu`` / ``cuda[:N]``; ConfigError when CUDA is asked for but unavailable."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"bad device {device!r}; choose from cpu, cuda") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"bad device {device!r}; choose from cpu, cuda")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available "
                              f"(torch {torch.__version__}, CUDA build: "
                              f"{torch.version.cuda or 'no'})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} CUDA "
                              "device(s)")
    return dev
