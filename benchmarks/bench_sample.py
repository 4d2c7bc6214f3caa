"""``sample``: whole-sequence generation of ``sample_batch`` rows (1024 by default: the size
of a negative-sample batch, where per-step overheads no longer dominate; the paper's B=64
would time Python overheads). tokens = sample_batch * T.
"""
from __future__ import annotations

import torch

from seqgan_fast import ops

from .baselines import loop_sample
from .common import SEED, Case, backend_case, build_models, by_contender, check_draws, expect
from .configs import BenchConfig


def sample_fn(backend: str, cfg: BenchConfig, device: str, num_samples: int | None = None):
    """A zero-argument callable: (num_samples, T) int64 sequences (default sample_batch)."""
    w = build_models(cfg, device).weights
    n, T = num_samples or cfg.sample_batch, cfg.seq_len
    return by_contender(backend, lambda: loop_sample(w, n, T),
                        lambda cb: cb.sample(w, n, T, seed=SEED),
                        lambda: ops.sample(w, n, seed=SEED, seq_len=T, backend=backend))


def _check(backend: str, cfg: BenchConfig):
    def check(out: torch.Tensor, case: Case) -> None:
        shape = (cfg.sample_batch, cfg.seq_len)
        expect(tuple(out.shape) == shape, f"{backend}: shape {tuple(out.shape)} != {shape}")
        check_draws(out, case.reference_output, cfg.vocab, backend, case)

    return check


def build_case(op: str, cfg: BenchConfig, device: str, backends: list[str] | None) -> Case:
    return backend_case(op, cfg, device, backends, sample_fn, lambda b: _check(b, cfg),
                        cfg.sample_tokens, cfg.sample_batch,
                        f"{cfg.sample_batch} sequences of T={cfg.seq_len}")
