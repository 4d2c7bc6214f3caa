"""The ``seqgan-fast`` command line (``main``, in commands.py), with the process set-up it does
before training: CPU threads and the memory allocator."""
from .commands import main

__all__ = ["main"]
