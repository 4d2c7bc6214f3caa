"""Timing, peak memory and machine description for the benchmark harness."""
from __future__ import annotations

import ctypes
import importlib.metadata
import os
import platform
import re
import time
from collections.abc import Callable
from typing import Any

import torch

_STATUS = "/proc/self/status"


def synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str, inner: int = 1) -> tuple[float, Any]:
    """Wall time of ``inner`` calls of fn, divided by inner, and the last result."""
    synchronize(device)
    t0 = time.perf_counter()
    out = None
    for _ in range(inner):
        out = fn()
    synchronize(device)
    return (time.perf_counter() - t0) / inner, out


def _status_kib(field: str) -> int | None:
    try:
        with open(_STATUS) as f:
            m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _reset_peak_rss() -> bool:
    """Give freed heap back to the OS and reset VmHWM to the current RSS (Linux >= 4.0)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cpu_peak_method() -> str | None:
    """How CPU peak memory is measured here, or None where it cannot be."""
    if _status_kib("VmHWM") is None or not _reset_peak_rss():
        return None
    return "resident-set growth: VmHWM after the call minus VmRSS before (clear_refs=5)"


def measure_peak(fn: Callable[[], Any], device: str) -> tuple[int | None, float, Any]:
    """Run fn once; return (peak memory growth in bytes or None, seconds, result).

    CUDA: torch.cuda.max_memory_allocated above what was allocated before the call. CPU: the
    process's peak resident set during the call above its resident set before it (the heap is
    trimmed first, so memory freed by earlier calls is not counted as reusable).
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        dt, out = timed(fn, device)
        return int(torch.cuda.max_memory_allocated() - base), dt, out
    ok = _reset_peak_rss()
    rss0 = _status_kib("VmRSS")
    dt, out = timed(fn, device)
    hwm = _status_kib("VmHWM")
    if not ok or rss0 is None or hwm is None:
        return None, dt, out
    return max(0, hwm - rss0) * 1024, dt, out


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return sorted(f for f in flags if f.startswith(("avx", "fma", "amx")))
    except OSError:
        pass
    return []


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info(device: str) -> dict[str, Any]:
    """What the numbers were measured on (the JSON's ``machine``)."""
    from seqgan_fast._version import __version__
    from seqgan_fast.ops import available_backends, cpu_isa, cpu_isa_best

    dev = torch.device(device)
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "seqgan_fast": __version__,
        "device": str(dev),
        "device_name": _cpu_model(),
        "backends_available": available_backends(dev),
        # the cpp backend's CPU core path in use (SEQGAN_FAST_ISA or the best supported), and
        # the best this CPU supports: rows named cpp@<isa> force one path for that row
        "cpu_isa": cpu_isa(),
        "cpu_isa_best": cpu_isa_best(),
        "loadavg_start": loadavg(),
        "peak_mem_method": cpu_peak_method() if dev.type == "cpu"
        else "torch.cuda.max_memory_allocated growth",
    }
    if dev.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(dev)
        info["cuda"] = torch.version.cuda
    return info
