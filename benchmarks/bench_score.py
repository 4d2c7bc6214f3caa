"""``score``: the discriminator's P(real) of every rollout completion of the config (at the
paper size the 19 * 16 * 64 = 19,456 completions one reward computation scores).

Contenders: ``reference`` (``Discriminator.prob_real``: convolutions as GEMMs) and the
package backends through ``ops.score`` (``cpp``: embedding folded into the first layer,
prefix windows shared; ``triton``: the same fold on a GPU, rows scored whole).
tokens = completions * T scored positions. Floor (the ``/GEMM`` column): the highway layer's
two (rows x F) @ (F x F) GEMMs for the same rows, which no exact formulation removes (its
input, the max-pooled features, is not linear in the tokens).
"""
from __future__ import annotations

import functools

import torch

from seqgan_fast import ops

from .common import (
    SEED,
    Case,
    backend_case,
    build_models,
    expect,
    select_backends,
    shares_rng,
    split_backend,
)
from .configs import BenchConfig


@functools.lru_cache(maxsize=2)
def _completions(cfg: BenchConfig, device: str) -> torch.Tensor:
    m = build_models(cfg, device)
    return ops.rollout(m.generator, m.x, cfg.rollouts, seed=SEED, backend="reference"
                       if not ops.is_available("cpp", device) else "cpp")


def score_fn(backend: str, cfg: BenchConfig, device: str):
    m = build_models(cfg, device)
    comps = _completions(cfg, device).view(-1, cfg.seq_len)
    if backend == "reference":
        return lambda: m.discriminator.prob_real(comps)
    return lambda: ops.score(m.discriminator, comps, backend=backend, prefix_x=m.x,
                             num_rollouts=cfg.rollouts)


def _check_score(backend: str):
    def check(out: torch.Tensor, case: Case) -> None:
        expect(out.dim() == 1 and bool(torch.isfinite(out).all()), f"{backend}: bad scores")
        if shares_rng(backend):
            diff = (out - case.reference_output()).abs().max().item()
            expect(diff <= 1e-5, f"{backend}: scores differ from the reference by {diff:.2e}")

    return check


def _highway_floor(cfg: BenchConfig, device: str):
    d = build_models(cfg, device).discriminator
    rows = (cfg.seq_len - 1) * cfg.rollouts * cfg.batch
    F = d.highway.hidden.in_features
    block = min(rows, 4096)
    x = torch.rand(block, F, device=device)
    full, rem = divmod(rows, block)

    @torch.no_grad()
    def run():
        for n in [block] * full + ([rem] if rem else []):
            d.highway.hidden(x[:n]), d.highway.gate(x[:n])

    return run, f"highway: 2 x nn.Linear({F}, {F}) over {rows} rows in blocks of {block}"


def build_case(op: str, cfg: BenchConfig, device: str, backends: list[str] | None) -> Case:
    if op != "score":
        raise ValueError(f"bench_score builds score, not {op!r}")
    rows = (cfg.seq_len - 1) * cfg.rollouts * cfg.batch
    # the classic loop and torch.compile change nothing in how D scores: reference stands
    # for both; triton (and cuda, which uses it) run the folded-table Triton kernel on GPU
    if backends is None:
        backends = ["reference", "cpp", "cpp@avx2", "cpp@baseline", "triton"]
        backends = [b for b in backends if b in select_backends(backends, device)[0]]
    backends = [b for b in backends if split_backend(b)[0] not in ("reference_loop",
                                                                   "torch_compile")]
    case = backend_case(op, cfg, device, backends, score_fn, _check_score, rows * cfg.seq_len,
                        1, f"{rows} completions of B={cfg.batch} x N={cfg.rollouts}, "
                        f"T={cfg.seq_len}")
    case.gemm, case.gemm_desc = _highway_floor(cfg, device)
    return case
