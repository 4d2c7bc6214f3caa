"""``score``: the discriminator's P(real) of token sequences (DESIGN §2, §5).

``reference`` is ``Discriminator.prob_real`` (convolutions as GEMMs, eval mode). ``cpp``
folds the embedding into the first layer: for filter group g (width k) and offset o < k,
U_{g,o} = Emb · W_{g,:,:,o}ᵀ is a (V x F_g) table, so a convolution window becomes k row
loads and adds (csrc/common/score.h) instead of k·E multiply-adds; ReLU and max-pool over
time are fused behind it. The table is never built whole: the kernel visits it a pass at a
time (one group's block of columns, at most ``SCORE_PASS_BYTES`` = 32 MiB), computing the
pass's slice (one GEMM, emb times the pass's weight columns) into a cache-sized scratch and
pooling every row of the call from there. For rollout completions the windows that lie
inside the shared prefix are computed once per (sequence, prefix length), and so are the
prefix parts of the windows that straddle it.
The highway and output layers then run on the pooled features, ``batch_size`` rows at a
time (on CPU's FMA paths as one fused kernel, ops/highway.py ``highway_logits``: the two
highway GEMMs a row chunk at a time with the gate and the output layer behind them), so no
(rows x filters x T) tensor is ever materialised.

Memory: a call pools up to ``SCORE_POOL_BYTES`` (256 MiB, ``SEQGAN_FAST_SCORE_POOL_MB``) of
features (39,000 rows at the paper's 1,720 filters; the 19,456 completions of a paper reward
computation and its 64 sequences are one call) into a buffer the calling thread keeps, beside
a scratch of one pass's slice (``ops.release_score_workspace()`` frees both: filling a fresh
134 MB buffer costs a third of the fold and pool, ``benchmarks/micro.py score``). Where even
one 16-column block of the widest group's slice (V x k x 16 floats) would exceed
``table_bytes_limit`` (default ``SCORE_TABLE_BYTES`` = 512 MiB, or
``SEQGAN_FAST_SCORE_TABLE_MB``; a smaller limit also narrows the passes) the call falls back to
the reference's GEMM form (logged once) and gives the same scores to float rounding.
``triton`` (and ``cuda``, which has no scoring kernel of its own) runs the same folded-table
arithmetic as a Triton kernel (ops/triton_score.py: bit-identical pooled features to ``cpp``'s
table op ``score_pool`` on the same table; rows scored whole, no prefix sharing) on a whole
table built by one cuBLAS GEMM (``fold``), so there the limit bounds the whole table
(``table_bytes``). Not yet measured on a GPU (issue 9's check runs it).
"""
from __future__ import annotations

import logging
import os
import threading
from typing import NamedTuple

import torch

from .backends import is_available, resolve
from .checks import check_finite
from .cpu_isa import cpu_isa
from .highway import fused_available, highway_logits, inference_weights

log = logging.getLogger("seqgan_fast")

SCORE_TABLE_BYTES = int(float(os.environ.get("SEQGAN_FAST_SCORE_TABLE_MB", "512")) * 2**20)
SCORE_POOL_BYTES = int(float(os.environ.get("SEQGAN_FAST_SCORE_POOL_MB", "256")) * 2**20)
SCORE_PASS_BYTES = 32 * 2**20  # the kernel's pass: the L3 of the 2-core instances (score.h)
_LANES = 16  # the kernel's filter padding
_warned_budget = False
_workspace = threading.local()  # .pooled: this thread's reusable CPU buffer for the features


class FoldOperands(NamedTuple):
    """The discriminator's first layer as the kernel takes it (see module doc): the table
    would be ``emb @ w_all``."""

    emb: torch.Tensor  # (V, E) float32
    w_all: torch.Tensor  # (E, Kp): column off_g + o * Fp_g + c is filter c's offset-o weights
    bias: torch.Tensor  # (sum of padded filter counts,) float32
    widths: list[int]
    filters: list[int]


class FoldedConv(NamedTuple):
    """The discriminator's first layer as a whole embedding-folded table (``fold``)."""

    table: torch.Tensor  # (V, Kp) float32
    bias: torch.Tensor  # (sum of padded filter counts,) float32
    widths: list[int]
    filters: list[int]


def _groups(d) -> tuple[list[int], list[int]]:
    widths = [int(c.kernel_size[0]) for c in d.convs]
    filters = [int(c.out_channels) for c in d.convs]
    return widths, filters


def table_bytes(d) -> int:
    """Bytes of the whole folded table of discriminator ``d`` (what ``fold`` builds)."""
    widths, filters = _groups(d)
    kp = sum(k * -(-f // _LANES) * _LANES for k, f in zip(widths, filters, strict=True))
    return 4 * d.vocab_size * kp


def min_pass_bytes(d) -> int:
    """Bytes of the smallest table slice the ``cpp`` kernel can pool from: one 16-column
    block of the widest filter group over the whole vocabulary."""
    widths, _ = _groups(d)
    return 4 * d.vocab_size * max(widths) * _LANES


def release_workspace() -> None:
    """Free the calling thread's scoring buffers (the pooled features and the kernel's slice
    scratch, both kept between ``score`` calls)."""
    _workspace.pooled = None
    if is_available("cpp", "cpu"):
        torch.ops.seqgan_fast.score_release_workspace()


def _pooled_buffer(rows: int, cols: int) -> torch.Tensor:
    """This thread's reusable (rows, cols) CPU buffer (grown when too small)."""
    buf = getattr(_workspace, "pooled", None)
    if buf is None or buf.numel() < rows * cols:
        _workspace.pooled = None  # free the old one before allocating the new
        buf = _workspace.pooled = torch.empty(rows * cols)
    return buf[: rows * cols].view(rows, cols)


@torch.no_grad()
def fold_operands(d) -> FoldOperands:
    """emb, the padded weight columns w_all and the padded bias of discriminator ``d``."""
    widths, filters = _groups(d)
    emb = d.embedding.weight.detach().float().contiguous()
    E = emb.shape[1]
    cols, biases = [], []
    for conv, k, f in zip(d.convs, widths, filters, strict=True):
        fp = -(-f // _LANES) * _LANES
        w = conv.weight.detach().float()  # (F, E, k)
        block = emb.new_zeros(E, k, fp)
        block[:, :, :f] = w.permute(1, 2, 0)
        cols.append(block.view(E, k * fp))
        b = emb.new_zeros(fp)
        b[:f] = conv.bias.detach().float()
        biases.append(b)
    return FoldOperands(emb, torch.cat(cols, dim=1), torch.cat(biases).contiguous(), widths,
                        filters)


@torch.no_grad()
def fold(d) -> FoldedConv:
    """The whole table U = emb @ w_all and the padded bias of discriminator ``d`` (one GEMM;
    the ``triton`` path's input, and ``score_pool``'s)."""
    ops = fold_operands(d)
    return FoldedConv(ops.emb @ ops.w_all, ops.bias, ops.widths, ops.filters)


def _pool(rows: torch.Tensor, row0: int, prefix_x: torch.Tensor | None, num_rollouts: int,
          folded: FoldedConv) -> torch.Tensor:
    """The fused conv + ReLU + max-pool of rows (M, T) from a whole folded table: (M, F)."""
    return torch.ops.seqgan_fast.score_pool(rows, row0, prefix_x, num_rollouts, folded.table,
                                            folded.bias, folded.widths, folded.filters)


def _fold_pool(rows: torch.Tensor, row0: int, prefix_x: torch.Tensor | None,
               num_rollouts: int, extra: torch.Tensor | None, ops: FoldOperands,
               pass_bytes: int, out: torch.Tensor) -> torch.Tensor:
    """The same pooling with the table computed pass by pass: rows (M, T) (completions of
    prefix_x from logical row row0, or whole), then extra's rows whole, into out
    (M + len(extra), F)."""
    return torch.ops.seqgan_fast.score_fold_pool(rows, row0, prefix_x, num_rollouts, extra,
                                                 ops.emb, ops.w_all, ops.bias, ops.widths,
                                                 ops.filters, pass_bytes, out)


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


def check_discriminator_weights(d) -> None:
    """ValueError naming the first discriminator weight that holds NaN or inf: the ``cpp``
    path (a folded table, ReLU and max-pool) would otherwise turn it into finite scores
    where the reference gives NaN. Every backend refuses alike, as the generator ops do."""
    check_finite(((n, t.detach()) for n, t in d.named_parameters()), "discriminator weight")


def _check_job(d, x: torch.Tensor, prefix_x: torch.Tensor | None, num_rollouts: int | None,
               batch_size: int, min_prefix: int = 1) -> None:
    _check(d, x, "x")
    check_discriminator_weights(d)
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


def _within_budget(d, budget: int | None, whole_table: bool) -> bool:
    """Whether the folded form fits the memory budget: the smallest slice the cpp kernel
    pools from, or (``whole_table``: the triton path) the whole table."""
    global _warned_budget
    limit = SCORE_TABLE_BYTES if budget is None else budget
    need = table_bytes(d) if whole_table else min_pass_bytes(d)
    if need <= limit:
        return True
    if not _warned_budget:
        _warned_budget = True
        what = "folded table" if whole_table else "smallest folded-table slice"
        log.info("score: the %s would need %.1f MB > budget %.1f MB; using the GEMM form",
                 what, need / 2**20, limit / 2**20)
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


def _triton_pooler(device: torch.device):
    """The Triton kernel's pooling over a whole folded table (rows scored whole)."""
    from .triton_score import pool_triton  # local: triton is optional (and heavy to import)

    def pool_rows(rows, folded):
        return pool_triton(rows, folded.table, folded.bias, folded.widths, folded.filters,
                           _LANES)
    return pool_rows


def _score_all(d, jobs, backend: str, batch_size: int, table_bytes_limit: int | None):
    """Scores of each (rows, prefix_x, num_rollouts, min_prefix) job; the table is folded
    once per kernel call (cpp) or once (triton)."""
    device = jobs[0][0].device
    be = resolve(backend, device)
    fused = be == "cpp" or (be in ("triton", "cuda") and is_available("triton", device))
    if not fused or not _within_budget(d, table_bytes_limit, whole_table=be != "cpp"):
        return [d.prob_real(rows, batch_size=batch_size) for rows, *_ in jobs]
    was_training = d.training
    d.eval()
    try:
        if be == "cpp":
            return _score_cpp(d, jobs, batch_size, table_bytes_limit)
        pool, folded = _triton_pooler(device), fold(d)
        return [torch.cat([_head(d, pool(x[r0 : r0 + batch_size].contiguous(), folded))
                           for r0 in range(0, x.shape[0], batch_size)])
                if x.shape[0] else x.new_zeros(0, dtype=torch.float32)
                for x, *_ in jobs]
    finally:
        d.train(was_training)


def _rows(call: list[tuple[int, int, int]]) -> int:
    return sum(b - a for _, a, b in call)


def _score_cpp(d, jobs, batch_size: int, table_bytes_limit: int | None):
    """The cpp path: kernel calls of up to SCORE_POOL_BYTES of pooled features each (a call
    computes the table's slices once for all its rows), whole-row jobs riding along as the
    previous call's extra rows; then the head, ``batch_size`` rows at a time."""
    ops = fold_operands(d)
    limit = SCORE_TABLE_BYTES if table_bytes_limit is None else table_bytes_limit
    pass_bytes = min(SCORE_PASS_BYTES, limit)
    F = sum(ops.filters)
    cap = max(1, SCORE_POOL_BYTES // (4 * F))
    # the fused head on the FMA paths; the baseline path's (SSE2) microkernel is slower than
    # torch's GEMM (score 5.1 s against 1.9 s forced onto it, cpu_suite.sh paper)
    hw = inference_weights(d.highway) if fused_available(jobs[0][0].device) \
        and cpu_isa() != "baseline" else None
    # each call: segments (job, r0, r1), the first its main rows, the rest whole rows as extra
    calls: list[list[tuple[int, int, int]]] = []
    for j, (x, prefix_x, _, _) in enumerate(jobs):
        for r0 in range(0, x.shape[0], cap):
            seg = (j, r0, min(x.shape[0], r0 + cap))
            if prefix_x is None and calls and _rows(calls[-1]) + seg[2] - r0 <= cap:
                calls[-1].append(seg)
            else:
                calls.append([seg])
    parts: list[list[torch.Tensor]] = [[] for _ in jobs]
    for call in calls:
        (j, r0, r1), extras = call[0], call[1:]
        x, prefix_x, num_rollouts, min_prefix = jobs[j]
        px = None if prefix_x is None else prefix_x.contiguous()
        n = 1 if num_rollouts is None else num_rollouts
        # logical row of x's first row: completions of shorter prefixes are absent
        base = 0 if px is None else (min_prefix - 1) * n * px.shape[0]
        extra = torch.cat([jobs[e][0][a:b] for e, a, b in extras]).contiguous() \
            if extras else None
        rows = _rows(call)
        out = _fold_pool(x[r0:r1].contiguous(), base + r0, px, n, extra, ops, pass_bytes,
                         _pooled_buffer(rows, F))
        probs = torch.cat([_head(d, out[i : i + batch_size], hw)
                           for i in range(0, rows, batch_size)])
        at = 0
        for e, a, b in call:
            parts[e].append(probs[at : at + b - a])
            at += b - a
    return [torch.cat(p) if p else x.new_zeros(0, dtype=torch.float32)
            for p, (x, *_) in zip(parts, jobs, strict=True)]
