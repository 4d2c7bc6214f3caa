"""seqgan_fast/cli/malloc.py: glibc keeps freed memory for ``seqgan-fast train``; the opt-out and
a bad value of its variable."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from seqgan_fast.cli.commands import main

REPO = Path(__file__).resolve().parents[1]
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# In a fresh process (the settings are process-wide): allocate 25 MiB through torch and report
# how many bytes malloc holds in mmap'ed chunks (mallinfo2().hblkhd) before and after.
PROBE = """
import ctypes, sys
from seqgan_fast.cli.malloc import keep_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
applied = keep_freed_memory()
import torch
before = libc.mallinfo2().hblkhd
t = torch.empty(25 << 20, dtype=torch.uint8).fill_(1)
print(int(applied), libc.mallinfo2().hblkhd - before)
"""


def _probe(mode: str) -> tuple[int, int]:
    env = {**os.environ, "SEQGAN_FAST_MALLOC": mode,
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.skipif(not GLIBC, reason="glibc only (elsewhere keep_freed_memory does nothing)")
def test_large_tensors_come_from_the_heap_unless_opted_out():
    applied, mmapped = _probe("keep")
    assert applied == 1 and mmapped < (1 << 20)  # the 25 MiB tensor lives in the heap
    applied, mmapped = _probe("system")
    assert applied == 0 and mmapped >= (25 << 20)  # glibc's default: its own mmap


def test_a_bad_value_is_one_line_naming_the_variable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEQGAN_FAST_MALLOC", "jemalloc")
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "-q"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SEQGAN_FAST_MALLOC" in err[0] and "jemalloc" in err[0]
    assert not out.exists()  # refused before anything was written
