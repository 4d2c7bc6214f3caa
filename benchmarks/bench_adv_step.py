"""``adv_step``: one adversarial generator update — sample B sequences, per-token rewards from
N rollouts of the rollout policy scored by the discriminator, a policy-gradient step (Adam,
gradient clipping 5.0), then the rollout policy's delayed update (rate 0.8).

tokens = B * N * T(T-1)/2 (rollouts) + B * T (the sampled batch). ``reference_loop`` samples
with multinomial and uses the loop rewards. Every contender owns a copy of the generator, its
rollout policy and optimiser, so the round robin never mixes their states.
"""
from __future__ import annotations

import copy

import torch

from seqgan_fast import ops

from .baselines import loop_rewards, loop_sample
from .common import (
    SEED,
    Case,
    backend_case,
    build_models,
    by_contender,
    check_draws,
    expect,
    rewards_from_completions,
    shares_rng,
)
from .configs import BenchConfig

G_LR, GRAD_CLIP, UPDATE_RATE = 0.01, 5.0, 0.8


def adv_step_fn(backend: str, cfg: BenchConfig, device: str):
    """A zero-argument callable: one generator update; returns (loss, x (B, T), rewards)."""
    m = build_models(cfg, device)
    gen = copy.deepcopy(m.generator)
    policy = copy.deepcopy(m.generator).requires_grad_(False)
    d = m.discriminator
    opt = torch.optim.Adam(gen.parameters(), lr=G_LR)
    B, T, N = cfg.batch, cfg.seq_len, cfg.rollouts

    # one seed for every update: the weights change between updates, so the batches do too,
    # and torch_compile's graphs (specialised on the seed) are not rebuilt per step
    def loop():
        w, pw = gen.kernel_weights(), policy.kernel_weights()
        x = loop_sample(w, B, T)
        return x, loop_rewards(pw, d, x, N)

    def compiled(cb):
        w, pw = gen.kernel_weights(), policy.kernel_weights()
        x = cb.sample(w, B, T, seed=SEED)
        return x, rewards_from_completions(d, cb.rollout(pw, x, N, seed=SEED), x)

    def package():
        w, pw = gen.kernel_weights(), policy.kernel_weights()
        x = ops.sample(w, B, seed=SEED, seq_len=T, backend=backend)
        return x, ops.rollout_rewards(pw, d, x, N, seed=SEED, backend=backend)

    draw = by_contender(backend, loop, compiled, package)

    def step():
        x, rewards = draw()
        loss = gen.pg_loss(x, rewards)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), GRAD_CLIP)
        opt.step()
        with torch.no_grad():
            for p_pol, p_gen in zip(policy.parameters(), gen.parameters(), strict=True):
                p_pol.mul_(UPDATE_RATE).add_(p_gen, alpha=1.0 - UPDATE_RATE)
        return loss.detach().item(), x, rewards

    return step


def _check(backend: str, cfg: BenchConfig, device: str):
    base = [p.detach().clone() for p in build_models(cfg, device).generator.parameters()]

    def check(out, case: Case) -> None:
        loss, x, rewards = out
        expect(torch.isfinite(torch.tensor(loss)).item(), f"{backend}: loss {loss}")
        expect(tuple(x.shape) == (cfg.batch, cfg.seq_len), f"{backend}: x {tuple(x.shape)}")
        expect(tuple(rewards.shape) == tuple(x.shape), f"{backend}: rewards shape")
        ref_loss, ref_x, _ = case.reference_output()
        check_draws(x, lambda: ref_x, cfg.vocab, backend, case)
        if shares_rng(backend):
            expect(abs(loss - ref_loss) <= 1e-3 * max(1.0, abs(ref_loss)),
                   f"{backend}: loss {loss} != reference {ref_loss}")
        # the shared models must be untouched: each contender updates its own copy
        now = list(build_models(cfg, device).generator.parameters())
        expect(all(torch.equal(a, b) for a, b in zip(base, now, strict=True)),
               f"{backend}: the shared generator was modified")

    return check


def build_case(op: str, cfg: BenchConfig, device: str, backends: list[str] | None) -> Case:
    return backend_case(op, cfg, device, backends, adv_step_fn,
                        lambda b: _check(b, cfg, device),
                        cfg.rollout_tokens + cfg.adv_sample_tokens, cfg.batch * cfg.rollouts,
                        f"B={cfg.batch}, N={cfg.rollouts}, T={cfg.seq_len}; sample + rewards "
                        "+ policy-gradient step + rollout-policy update")
