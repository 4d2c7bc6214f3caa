"""The ``seqgan-fast`` command line (``main``), with the process set-up it does before
training: CPU threads and the memory allocator."""
