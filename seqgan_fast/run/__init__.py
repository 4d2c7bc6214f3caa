"""A run on disk: its state and resumption, checkpoints, the run folder's checks, the lock
that keeps two processes out of one folder, and the training curves."""
