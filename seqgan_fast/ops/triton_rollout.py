"""``rollout`` in Triton (DESIGN §5): two launches, no O(T^2) and no logits in memory.

1. ``_prefix_kernel``: one teacher-forced pass over x, from the rows' initial states
   (h0, c0) or zeros, gives (h_t, c_t) for every prefix length t, (T, B, H) fp32: O(B*T)
   cell steps (the cell: LSTM or GRU, ``rnn_cell``'s constexpr CELL; a GRU keeps no c_t).
2. ``_rollout_kernel`` (persistent): one program owns BLOCK_R logical completion rows
   r = ((t-1)*N + n)*B + b (t >= min_prefix: the rows from (min_prefix-1)*N*B on) for all
   their steps; it copies the prefix x[b, :t], starts from
   (h_t, c_t) of its rows and decodes positions t..T-1 with h, c in registers, the projection
   tile by tile and the canonical sampler consuming each tile (stream 1, counter row r).
   Rows are ordered by t, so a block's rows share (almost always) one start step; a row joins
   the block's loop at its own t (masked before).
h also lives in a per-program scratch block (L1-resident) that the K-chunked tl.dot calls read.
Memory: the output (T-1)*N*B*T int64, the prefix states 2*T*B*H fp32 and the scratch
(programs * BLOCK_R, HP) fp32 (about (T-1)*N*B*HP).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .philox import STREAM_ROLLOUT
from .triton_common import (
    TILE_K,
    check_precision,
    join_seed,
    load_state,
    plan_launch,
    publish_state,
    rnn_cell,
    row_block,
    sample_rows,
    seed_words,
)
from .weights import LSTMWeights


@triton.jit(do_not_specialize=["B"])
def _prefix_kernel(x_ptr, emb_ptr, w_ih_ptr, w_hh_ptr, bias_ptr, hs_ptr, cs_ptr, scr_ptr,
                   h0_ptr, c0_ptr, B, T, E, H, start_token, CELL: tl.constexpr,
                   HAS_H0: tl.constexpr, HAS_C0: tl.constexpr,
                   BLOCK_R: tl.constexpr, HP: tl.constexpr, EP: tl.constexpr, KC: tl.constexpr,
                   PRECISION: tl.constexpr):
    b, rmask, scr = row_block(scr_ptr, B, BLOCK_R, HP)
    oh = tl.arange(0, HP)
    smask = rmask[:, None] & (oh[None, :] < H)
    h = load_state(h0_ptr, b, rmask, H, HAS_H0, BLOCK_R, HP)
    c = load_state(c0_ptr, b, rmask, H, HAS_C0, BLOCK_R, HP)
    tok = tl.zeros((BLOCK_R,), tl.int64) + start_token
    for t in range(0, T):
        publish_state(scr, h, BLOCK_R, HP)
        h, c = rnn_cell(CELL, tok, rmask, h, c, emb_ptr, scr, w_ih_ptr, w_hh_ptr, bias_ptr, H,
                        E, BLOCK_R, HP, EP, KC, PRECISION)
        off = (t * B + b)[:, None] * H + oh[None, :]
        tl.store(hs_ptr + off, h, mask=smask)
        if CELL == 0:
            tl.store(cs_ptr + off, c, mask=smask)
        tok = tl.load(x_ptr + b * T + t, mask=rmask, other=0)


@triton.jit(do_not_specialize=["R0", "R", "B", "seed_lo", "seed_hi"])
def _rollout_kernel(x_ptr, hs_ptr, cs_ptr, emb_ptr, w_ih_ptr, w_hh_ptr, bias_ptr, w_out_ptr,
                    b_out_ptr, out_ptr, scr_ptr, R0, R, B, N, T, V, E, H, seed_lo, seed_hi,
                    temperature,
                    STREAM: tl.constexpr, CELL: tl.constexpr, BLOCK_R: tl.constexpr,
                    HP: tl.constexpr, EP: tl.constexpr, KC: tl.constexpr, K: tl.constexpr,
                    PRECISION: tl.constexpr):
    seed = join_seed(seed_lo, seed_hi)
    pid = tl.program_id(0)
    r0 = R0 + pid.to(tl.int64) * BLOCK_R  # logical rows R0.. (R0 = (min_prefix-1)*N*B)
    r = r0 + tl.arange(0, BLOCK_R)
    rmask = r < R
    o_row = (r - R0) * T  # this call's output row
    t_row = r // (N * B) + 1  # prefix length = first sampled position
    b = r % B
    oh = tl.arange(0, HP)
    smask = rmask[:, None] & (oh[None, :] < H)
    scr = scr_ptr + pid.to(tl.int64) * (BLOCK_R * HP)
    off = (t_row * B + b)[:, None] * H + oh[None, :]
    h = tl.load(hs_ptr + off, mask=smask, other=0.0)
    if CELL == 0:
        c = tl.load(cs_ptr + off, mask=smask, other=0.0)
    else:
        c = tl.zeros((BLOCK_R, HP), tl.float32)
    for s in range(0, T - 1):  # the prefix x[b, :t]
        keep = rmask & (s < t_row)
        tl.store(out_ptr + o_row + s, tl.load(x_ptr + b * T + s, mask=keep, other=0), mask=keep)
    t_first = (r0 // (N * B) + 1).to(tl.int32)
    for s in range(t_first, T - 1):
        active = rmask & (s >= t_row)
        publish_state(scr, h, BLOCK_R, HP)
        tok = sample_rows(scr, w_out_ptr, b_out_ptr, V, H, temperature, seed, s, r, STREAM,
                          BLOCK_R, HP, KC, K, PRECISION)
        tl.store(out_ptr + o_row + s, tok, mask=active)
        h2, c2 = rnn_cell(CELL, tok, active, h, c, emb_ptr, scr, w_ih_ptr, w_hh_ptr, bias_ptr,
                          H, E, BLOCK_R, HP, EP, KC, PRECISION)
        h = tl.where(active[:, None], h2, h)
        c = tl.where(active[:, None], c2, c)
    publish_state(scr, h, BLOCK_R, HP)
    tok = sample_rows(scr, w_out_ptr, b_out_ptr, V, H, temperature, seed, T - 1, r, STREAM,
                      BLOCK_R, HP, KC, K, PRECISION)
    tl.store(out_ptr + o_row + (T - 1), tok, mask=rmask)


def rollout_triton(w: LSTMWeights, x: torch.Tensor, num_rollouts: int, seed: int,
                   temperature: float = 1.0, h0: torch.Tensor | None = None,
                   c0: torch.Tensor | None = None, precision: str = "ieee",
                   block_rows: int | None = None, min_prefix: int = 1) -> torch.Tensor:
    """x (B, T) int64 -> completions (T-min_prefix, N, B, T) int64 of the prefixes t >=
    min_prefix, [t-min_prefix, n, b, :t] == x[b, :t] (the full rollout's rows: logical rows
    from (min_prefix-1)*N*B on; shorter prefixes are not computed); the prefix pass starts
    from (h0, c0) (B, H) (None: zeros).

    Arguments are validated by ``ops.rollout``. ``precision``/``block_rows``: see
    ``decode_triton``.
    """
    check_precision(precision)
    B, T = x.shape
    N = num_rollouts
    V, E = w.emb.shape
    H = w.hidden_dim
    out = torch.empty(max(T - min_prefix, 0), N, B, T, dtype=torch.int64, device=x.device)
    rows = out.numel() // max(T, 1)
    if rows == 0:
        return out
    R0 = (min_prefix - 1) * N * B
    x = x.contiguous()
    hs = torch.empty(T, B, H, dtype=torch.float32, device=x.device)
    cs = torch.empty_like(hs) if w.has_cell_state else hs  # a GRU keeps no cell states
    lp = plan_launch(B, H, E)
    _prefix_kernel[(lp.grid,)](
        x, w.emb, w.w_ih, w.w_hh, w.bias, hs, cs, lp.scratch(x.device),
        w.emb if h0 is None else h0, w.emb if c0 is None else c0, B, T, E, H, w.start_token,
        CELL=w.cell_id, HAS_H0=h0 is not None, HAS_C0=c0 is not None, PRECISION=precision,
        **lp.meta)
    lp = plan_launch(rows, H, E, block_rows)
    _rollout_kernel[(lp.grid,)](
        x, hs, cs, *w.tensors(), out, lp.scratch(x.device), R0, R0 + rows, B, N, T, V, E, H,
        *seed_words(seed), float(temperature), STREAM=STREAM_ROLLOUT, CELL=w.cell_id, K=TILE_K,
        PRECISION=precision, **lp.meta)
    return out
