"""``sample``: whole-sequence generation of ``sample_batch`` rows (1024 by default: the size
of a negative-sample batch, where per-step overheads no longer dominate; the paper's B=64
would time Python overheads). tokens = sample_batch * T.
"""
from __future__ import annotations

import torch

from seqgan_fast import ops

from .baselines import loop_sample
from .common import (
    RNG_CONTRACT,
    SEED,
    Case,
    backend_case,
    build_models,
    check_agreement,
    check_tokens_range,
    compiled_backend,
    expect,
)
from .configs import BenchConfig


def sample_fn(backend: str, cfg: BenchConfig, device: str, num_samples: int | None = None):
    """A zero-argument callable: (num_samples, T) int64 sequences (default sample_batch)."""
    w = build_models(cfg, device).weights
    n, T = num_samples or cfg.sample_batch, cfg.seq_len
    if backend == "reference_loop":
        return lambda: loop_sample(w, n, T)
    if backend == "torch_compile":
        cb = compiled_backend()
        return lambda: cb.sample(w, n, T, seed=SEED)
    return lambda: ops.sample(w, n, seed=SEED, seq_len=T, backend=backend)


def _check(backend: str, cfg: BenchConfig):
    def check(out: torch.Tensor, case: Case) -> None:
        shape = (cfg.sample_batch, cfg.seq_len)
        expect(tuple(out.shape) == shape, f"{backend}: shape {tuple(out.shape)} != {shape}")
        check_tokens_range(out, cfg.vocab, backend)
        if backend in RNG_CONTRACT and backend != "reference":
            check_agreement(out, case.reference_output(), backend, case)

    return check


def build_case(op: str, cfg: BenchConfig, device: str, backends: list[str] | None) -> Case:
    return backend_case(op, cfg, device, backends, sample_fn, lambda b: _check(b, cfg),
                        cfg.sample_tokens, cfg.sample_batch,
                        f"{cfg.sample_batch} sequences of T={cfg.seq_len}")
