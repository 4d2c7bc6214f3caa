"""``rollout`` (completions only) and ``rewards`` (rollouts + discriminator scoring).

tokens = B * N * T(T-1)/2 sampled completion tokens per call. GEMM floor: the projection of
those tokens in blocks of B*N rows (one prefix length across all rollouts).
"""
from __future__ import annotations

import torch

from seqgan_fast import ops

from .baselines import loop_rewards, loop_rollout
from .common import (
    SEED,
    Case,
    backend_case,
    build_models,
    by_contender,
    check_agreement,
    check_rollout_output,
    expect,
    rewards_from_completions,
    shares_rng,
)
from .configs import BenchConfig


def rollout_fn(backend: str, cfg: BenchConfig, device: str):
    """A zero-argument callable: one rollout of the config's B sequences, (T-1, N, B, T)."""
    m = build_models(cfg, device)
    w, x, N = m.weights, m.x, cfg.rollouts
    return by_contender(backend, lambda: loop_rollout(w, x, N),
                        lambda cb: cb.rollout(w, x, N, seed=SEED),
                        lambda: ops.rollout(w, x, N, seed=SEED, backend=backend))


def rewards_fn(backend: str, cfg: BenchConfig, device: str):
    """A zero-argument callable: per-token rewards (B, T) of the config's B sequences."""
    m = build_models(cfg, device)
    w, d, x, N = m.weights, m.discriminator, m.x, cfg.rollouts
    return by_contender(backend, lambda: loop_rewards(w, d, x, N),
                        lambda cb: rewards_from_completions(d, cb.rollout(w, x, N, seed=SEED), x),
                        lambda: ops.rollout_rewards(w, d, x, N, seed=SEED, backend=backend))


def _check_rollout(backend: str, cfg: BenchConfig, device: str):
    x = build_models(cfg, device).x

    def check(out: torch.Tensor, case: Case) -> None:
        check_rollout_output(out, x, cfg.rollouts, cfg.vocab, backend)
        if shares_rng(backend):
            check_agreement(out, case.reference_output(), backend, case)

    return check


def _check_rewards(backend: str, cfg: BenchConfig, device: str):
    m = build_models(cfg, device)

    def check(out: torch.Tensor, case: Case) -> None:
        B, T = m.x.shape
        expect(tuple(out.shape) == (B, T), f"{backend}: rewards shape {tuple(out.shape)}")
        expect(bool(torch.isfinite(out).all()), f"{backend}: non-finite rewards")
        expect(bool(((out >= 0) & (out <= 1)).all()), f"{backend}: rewards outside [0, 1]")
        last = m.discriminator.prob_real(m.x)
        expect(torch.allclose(out[:, -1], last, atol=1e-5),
               f"{backend}: last column is not D(x)")
        if shares_rng(backend):
            diff = (out - case.reference_output()).abs().mean().item()
            expect(diff <= 1e-3, f"{backend}: rewards differ from reference by {diff:.2e} (mean)")

    return check


def build_case(op: str, cfg: BenchConfig, device: str, backends: list[str] | None) -> Case:
    """The ``rollout`` or ``rewards`` case for a config; backends None: every available."""
    if op not in ("rollout", "rewards"):
        raise ValueError(f"bench_rollout builds rollout/rewards, not {op!r}")
    make, make_check = (rollout_fn, _check_rollout) if op == "rollout" else \
        (rewards_fn, _check_rewards)
    return backend_case(op, cfg, device, backends, make,
                        lambda b: make_check(b, cfg, device),
                        cfg.rollout_tokens, cfg.batch * cfg.rollouts,
                        f"B={cfg.batch} sequences, N={cfg.rollouts} rollouts, T={cfg.seq_len}")
