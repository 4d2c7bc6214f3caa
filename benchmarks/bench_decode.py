"""``decode``: one generator step (embedding, LSTM cell, projection, sample) at a large batch
(``decode_batch`` rows, 4096 by default). tokens = decode_batch.
"""
from __future__ import annotations

import torch

from seqgan_fast import ops

from .baselines import loop_decode
from .common import SEED, Case, backend_case, build_models, by_contender, check_draws, expect
from .configs import BenchConfig

STEP = 3  # any position: the Philox counter's step word


def decode_inputs(cfg: BenchConfig, device: str):
    """Fixed input tokens (Bd,) and state h, c (Bd, H) for the decode step."""
    gen = torch.Generator().manual_seed(cfg.seed + 7)
    B, H = cfg.decode_batch, cfg.hidden
    tok = torch.randint(0, cfg.vocab, (B,), generator=gen)
    h = torch.randn(B, H, generator=gen).tanh_()
    c = torch.randn(B, H, generator=gen)
    return tok.to(device), h.to(device), (c.to(device) if cfg.cell == "lstm" else None)


def decode_fn(backend: str, cfg: BenchConfig, device: str):
    """A zero-argument callable returning (next tokens (Bd,), h, c)."""
    w = build_models(cfg, device).weights
    tok, h, c = decode_inputs(cfg, device)
    return by_contender(backend, lambda: loop_decode(w, tok, h, c),
                        lambda cb: cb.decode(w, tok, h, c, seed=SEED, step=STEP),
                        lambda: ops.decode(w, tok, h, c, seed=SEED, step=STEP, backend=backend))


def _check(backend: str, cfg: BenchConfig):
    def check(out, case: Case) -> None:
        tok, h, c = out
        expect(tuple(tok.shape) == (cfg.decode_batch,), f"{backend}: tokens {tuple(tok.shape)}")
        check_draws(tok, lambda: case.reference_output()[0], cfg.vocab, backend,
                    case)
        _, h_ref, c_ref = case.reference_output()
        for name, a, b in (("h", h, h_ref), ("c", c, c_ref)):
            if a is None or b is None:  # a GRU has no cell state
                expect(a is None and b is None, f"{backend}: state {name} given for a GRU")
                continue
            expect(a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5),
                   f"{backend}: state {name} differs from reference")

    return check


def build_case(op: str, cfg: BenchConfig, device: str, backends: list[str] | None) -> Case:
    return backend_case(op, cfg, device, backends, decode_fn, lambda b: _check(b, cfg),
                        cfg.decode_batch, cfg.decode_batch, f"one step at B={cfg.decode_batch}")
