"""The training loop (``SeqGANTrainer``) and what it steps: the discriminator step, the
optimizer, the finite-value guard and the run's random draws."""
