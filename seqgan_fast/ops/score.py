"""``score``: the discriminator's P(real) of token sequences (DESIGN §2, §5).

``reference`` is ``Discriminator.prob_real`` (convolutions as GEMMs, eval mode). ``cpp``
folds the embedding into the first layer: for filter group g (width k) and offset o < k,
U_{g,o} = Emb · W_{g,:,:,o}ᵀ is one (V x F_g) table built per call by a single GEMM, so a
convolution window becomes k row loads and adds (csrc/common/score.h) instead of k·E
multiply-adds; ReLU and max-pool over time are fused behind it. For rollout completions the
windows that lie inside the shared prefix are computed once per (sequence, prefix length),
and so are the prefix parts of the windows that straddle it.
The highway and output layers then run on the pooled features, ``batch_size`` rows at a
time (on CPU's FMA paths as one fused kernel, ops/highway.py ``highway_logits``: the two
highway GEMMs a row chunk at a time with the gate and the output layer behind them), so no
(rows x filters x T) tensor is ever materialised, nor any (rows x filters) one past the pool.

Memory: the table is V x sum_g(k_g * round_up(F_g, 16)) floats (262 MB at the paper's
V = 5000 and 1,720 filters). Where it would exceed ``table_bytes`` (default
``SCORE_TABLE_BYTES`` = 512 MiB, or ``SEQGAN_FAST_SCORE_TABLE_MB``) the call falls back to
the reference's GEMM form (logged once) and gives the same scores to float rounding. On CPU
the table is built into a buffer that each thread keeps between calls
(``ops.release_score_workspace()`` frees it): a fresh 250 MB tensor costs its page faults on
every call (``python benchmarks/micro.py score``, 2-core Zen 5 instance: the fold 0.19 s
fresh, 0.10 s reused). Under ``seqgan-fast train`` glibc keeps freed memory anyway
(seqgan_fast/malloc.py); the workspace serves every other caller (benchmarks, user code).
``triton`` (and ``cuda``, which has no scoring kernel of its own) runs the same folded-table
arithmetic as a Triton kernel (ops/triton_score.py: bit-identical pooled features to ``cpp``
on the same table; rows scored whole, no prefix sharing); the table GEMM and the head stay
cuBLAS. Not yet measured on a GPU (issue 9's check runs it).
"""
from __future__ import annotations

import logging
import os
import threading
from typing import NamedTuple

import torch

from .backends import is_available, resolve
from .cpu_isa import cpu_isa
from .highway import fused_available, highway_logits, inference_weights

log = logging.getLogger("seqgan_fast")

SCORE_TABLE_BYTES = int(float(os.environ.get("SEQGAN_FAST_SCORE_TABLE_MB", "512")) * 2**20)
_LANES = 16  # the kernel's filter padding
_warned_budget = False
_workspace = threading.local()  # .table: this thread's reusable CPU buffer for fold()


class FoldedConv(NamedTuple):
    """The discriminator's first layer as an embedding-folded table (see module doc)."""

    table: torch.Tensor  # (V, Kp) float32
    bias: torch.Tensor  # (sum of padded filter counts,) float32
    widths: list[int]
    filters: list[int]


def _groups(d) -> tuple[list[int], list[int]]:
    widths = [int(c.kernel_size[0]) for c in d.convs]
    filters = [int(c.out_channels) for c in d.convs]
    return widths, filters


def table_bytes(d) -> int:
    """Bytes of the folded table of discriminator ``d``."""
    widths, filters = _groups(d)
    kp = sum(k * -(-f // _LANES) * _LANES for k, f in zip(widths, filters, strict=True))
    return 4 * d.vocab_size * kp


def release_workspace() -> None:
    """Free the calling thread's folded-table buffer (kept between ``score`` calls)."""
    _workspace.table = None


def _table_buffer(rows: int, cols: int, device: torch.device) -> torch.Tensor | None:
    """This thread's reusable (rows, cols) CPU buffer (grown when too small), None off CPU
    (the CUDA caching allocator already reuses memory)."""
    if device.type != "cpu":
        return None
    buf = getattr(_workspace, "table", None)
    if buf is None or buf.numel() < rows * cols:
        _workspace.table = None  # free the old one before allocating the new
        buf = _workspace.table = torch.empty(rows * cols)
    return buf[: rows * cols].view(rows, cols)


@torch.no_grad()
def fold(d, reuse: bool = False) -> FoldedConv:
    """Build the table U and the padded bias from discriminator ``d`` (one GEMM). With
    ``reuse`` the table is written into this thread's workspace buffer (valid until the next
    ``fold(..., reuse=True)`` on this thread): for callers that drop it before that."""
    widths, filters = _groups(d)
    emb = d.embedding.weight.detach().float()
    E = emb.shape[1]
    cols, biases = [], []
    for conv, k, f in zip(d.convs, widths, filters, strict=True):
        fp = -(-f // _LANES) * _LANES
        w = conv.weight.detach().float()  # (F, E, k)
        for o in range(k):
            block = emb.new_zeros(E, fp)
            block[:, :f] = w[:, :, o].t()
            cols.append(block)
        b = emb.new_zeros(fp)
        b[:f] = conv.bias.detach().float()
        biases.append(b)
    w_all = torch.cat(cols, dim=1)
    out = _table_buffer(emb.shape[0], w_all.shape[1], emb.device) if reuse else None
    table = emb @ w_all if out is None else torch.mm(emb, w_all, out=out)
    return FoldedConv(table, torch.cat(biases).contiguous(), widths, filters)


def _pool(rows: torch.Tensor, row0: int, prefix_x: torch.Tensor | None, num_rollouts: int,
          folded: FoldedConv) -> torch.Tensor:
    """The fused conv + ReLU + max-pool of rows (M, T) from the folded table: (M, F)."""
    return torch.ops.seqgan_fast.score_pool(rows, row0, prefix_x, num_rollouts, folded.table,
                                            folded.bias, folded.widths, folded.filters)


@torch.no_grad()
def _head(d, pooled: torch.Tensor, hw=None) -> torch.Tensor:
    """P(real) from pooled features (M, F): highway and output layer (``hw``: the highway's
    weights for ops/highway.py's fused ``highway_logits``; None: the modules), softmax (eval:
    no dropout)."""
    if hw is None:
        logits = d.output(d.highway(pooled))
    else:
        logits = highway_logits(pooled, hw, d.output)
    return torch.softmax(logits, dim=1)[:, 1]


def _check(d, x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.int64 or x.dim() != 2:
        raise ValueError(f"{name} must be an int64 tensor of shape (M, T), got "
                         f"{getattr(x, 'dtype', type(x).__name__)} "
                         f"{tuple(getattr(x, 'shape', ()))}")
    if x.shape[1] != d.seq_len:
        raise ValueError(f"{name} has T={x.shape[1]} positions but the discriminator was built "
                         f"for seq_len={d.seq_len}")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= d.vocab_size):
        raise ValueError(f"{name} has token ids outside [0, {d.vocab_size}) of the "
                         "discriminator's vocabulary")


def _check_job(d, x: torch.Tensor, prefix_x: torch.Tensor | None, num_rollouts: int | None,
               batch_size: int, min_prefix: int = 1) -> None:
    _check(d, x, "x")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if prefix_x is not None:
        _check(d, prefix_x, "prefix_x")
        if not isinstance(num_rollouts, int) or num_rollouts < 1:
            raise ValueError(f"num_rollouts must be a positive int, got {num_rollouts!r}")
        B, T = prefix_x.shape
        if not isinstance(min_prefix, int) or not 1 <= min_prefix <= T:
            raise ValueError(f"min_prefix must be an int in [1, T={T}], got {min_prefix!r}")
        if x.shape[0] != (T - min_prefix) * num_rollouts * B:
            raise ValueError(f"x has {x.shape[0]} rows; the completions of prefix_x need "
                             f"(T-min_prefix)*N*B = {(T - min_prefix) * num_rollouts * B}")


def _use_table(d, budget: int | None) -> bool:
    global _warned_budget
    limit = SCORE_TABLE_BYTES if budget is None else budget
    need = table_bytes(d)
    if need <= limit:
        return True
    if not _warned_budget:
        _warned_budget = True
        log.info("score: folded table would need %.0f MB > budget %.0f MB; using the GEMM form",
                 need / 2**20, limit / 2**20)
    return False


@torch.no_grad()
def score(
    discriminator,
    x: torch.Tensor,
    backend: str = "auto",
    batch_size: int = 4096,
    prefix_x: torch.Tensor | None = None,
    num_rollouts: int | None = None,
    table_bytes_limit: int | None = None,
    min_prefix: int = 1,
) -> torch.Tensor:
    """P(real) of each row of x (M, T) int64 under ``discriminator`` in eval mode: (M,) float.

    prefix_x (B, T) with num_rollouts N: x holds the (T-1)*N*B completions of prefix_x in
    ``ops.rollout``'s row order (row ((t-1)*N + n)*B + b equals prefix_x[b] before t); the
    ``cpp`` backend then shares the prefix windows (same scores as scoring rows whole).
    With ``min_prefix`` m, x holds only the completions of prefixes t >= m (``ops.rollout``'s
    min_prefix layout: (T-m)*N*B rows, the first of logical row (m-1)*N*B).
    """
    d = discriminator
    _check_job(d, x, prefix_x, num_rollouts, batch_size, min_prefix)
    return _score_all(d, [(x, prefix_x, num_rollouts, min_prefix)], backend, batch_size,
                      table_bytes_limit)[0]


@torch.no_grad()
def rollout_scores(discriminator, completions: torch.Tensor, x: torch.Tensor,
                   num_rollouts: int, backend: str = "auto",
                   batch_size: int = 4096, min_prefix: int = 1
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(P(real) of the completions ((T-min_prefix)*N*B, T) of x, P(real) of x (B, T)) with
    one folded table for both: what a reward computation scores."""
    d = discriminator
    _check_job(d, completions, x, num_rollouts, batch_size, min_prefix)
    return tuple(_score_all(d, [(completions, x, num_rollouts, min_prefix),
                                (x, None, None, 1)], backend, batch_size, None))


def _pooler(be: str, device: torch.device):
    """The fused pooling function of backend ``be`` (None: the reference's GEMM form)."""
    if be == "cpp":
        return _pool
    if be in ("triton", "cuda") and is_available("triton", device):
        from .triton_score import pool_triton

        def pool_rows(rows, row0, prefix_x, num_rollouts, folded):  # rows scored whole
            return pool_triton(rows, folded.table, folded.bias, folded.widths, folded.filters,
                               _LANES)
        return pool_rows
    return None


def _score_all(d, jobs, backend: str, batch_size: int, table_bytes_limit: int | None):
    """Scores of each (rows, prefix_x, num_rollouts, min_prefix) job; the table is folded
    once."""
    device = jobs[0][0].device
    pool = _pooler(resolve(backend, device), device)
    if pool is None or not _use_table(d, table_bytes_limit):
        return [d.prob_real(rows, batch_size=batch_size) for rows, *_ in jobs]
    was_training = d.training
    d.eval()
    try:
        folded = fold(d, reuse=True)  # dropped before this function returns
        # the fused head on the FMA paths; the baseline path's (SSE2) microkernel is slower
        # than torch's GEMM (score 5.1 s against 1.9 s forced onto it, cpu_suite.sh paper)
        hw = inference_weights(d.highway) if fused_available(device) \
            and cpu_isa() != "baseline" else None
        results = []
        for x, prefix_x, num_rollouts, min_prefix in jobs:
            px = None if prefix_x is None else prefix_x.contiguous()
            n = 1 if num_rollouts is None else num_rollouts
            # logical row of x's first row: completions of shorter prefixes are absent
            base = 0 if px is None else (min_prefix - 1) * n * px.shape[0]
            out = [_head(d, pool(x[r0 : r0 + batch_size].contiguous(), base + r0, px, n,
                                 folded), hw)
                   for r0 in range(0, x.shape[0], batch_size)]
            results.append(torch.cat(out) if out else x.new_zeros(0, dtype=torch.float32))
    finally:
        d.train(was_training)
    return results
