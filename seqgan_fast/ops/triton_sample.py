"""``sample`` in Triton: whole sequences in one launch, persistent over the steps.

One program owns BLOCK_R rows for all seq_len steps, starting from the rows' initial states
(h0, c0) or zeros; h and c stay in registers; each step runs the cell (LSTM or GRU:
``rnn_cell``), then the output projection tile by tile with the canonical sampler consuming
each tile as it is produced (no logits in global memory). Memory: the output plus a scratch
of (programs * BLOCK_R, HP) fp32 for the K-chunked tl.dot operands.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .philox import STREAM_SAMPLE
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


@triton.jit(do_not_specialize=["B", "P", "seed_lo", "seed_hi", "row_offset"])
def _sample_kernel(prefix_ptr, emb_ptr, w_ih_ptr, w_hh_ptr, bias_ptr, w_out_ptr, b_out_ptr,
                   out_ptr, scr_ptr, h0_ptr, c0_ptr, B, P, L, V, E, H, start_token, seed_lo,
                   seed_hi, row_offset, temperature, STREAM: tl.constexpr, CELL: tl.constexpr,
                   HAS_H0: tl.constexpr, HAS_C0: tl.constexpr, BLOCK_R: tl.constexpr,
                   HP: tl.constexpr, EP: tl.constexpr, KC: tl.constexpr, K: tl.constexpr,
                   PRECISION: tl.constexpr):
    seed = join_seed(seed_lo, seed_hi)
    b, rmask, scr = row_block(scr_ptr, B, BLOCK_R, HP)
    h = load_state(h0_ptr, b, rmask, H, HAS_H0, BLOCK_R, HP)
    c = load_state(c0_ptr, b, rmask, H, HAS_C0, BLOCK_R, HP)
    tok = tl.zeros((BLOCK_R,), tl.int64) + start_token
    # teacher-forced over the given prefix: position s consumes the token before it
    for s in range(0, P):
        publish_state(scr, h, BLOCK_R, HP)
        h, c = rnn_cell(CELL, tok, rmask, h, c, emb_ptr, scr, w_ih_ptr, w_hh_ptr, bias_ptr, H,
                        E, BLOCK_R, HP, EP, KC, PRECISION)
        tok = tl.load(prefix_ptr + b * P + s, mask=rmask, other=0)
        tl.store(out_ptr + b * L + s, tok, mask=rmask)
    for s in range(P, L):
        publish_state(scr, h, BLOCK_R, HP)
        h, c = rnn_cell(CELL, tok, rmask, h, c, emb_ptr, scr, w_ih_ptr, w_hh_ptr, bias_ptr, H,
                        E, BLOCK_R, HP, EP, KC, PRECISION)
        publish_state(scr, h, BLOCK_R, HP)
        tok = sample_rows(scr, w_out_ptr, b_out_ptr, V, H, temperature, seed, s, row_offset + b,
                          STREAM, BLOCK_R, HP, KC, K, PRECISION)
        tl.store(out_ptr + b * L + s, tok, mask=rmask)


def sample_triton(w: LSTMWeights, prefix: torch.Tensor, seq_len: int, seed: int,
                  temperature: float = 1.0, row_offset: int = 0,
                  h0: torch.Tensor | None = None, c0: torch.Tensor | None = None,
                  precision: str = "ieee", block_rows: int | None = None) -> torch.Tensor:
    """prefix (B, P) int64 -> (B, seq_len) int64; position s >= P of row b is drawn with
    Philox counter (tile, s, row_offset + b, 0), from the initial state (h0, c0) (B, H)
    (None: zeros). Arguments are validated by ``ops.sample``.
    ``precision``/``block_rows``: see ``decode_triton``.
    """
    check_precision(precision)
    B, P = prefix.shape
    V, E = w.emb.shape
    H = w.hidden_dim
    out = torch.empty(B, seq_len, dtype=torch.int64, device=prefix.device)
    if B == 0:
        return out
    lp = plan_launch(B, H, E, block_rows)
    _sample_kernel[(lp.grid,)](
        prefix.contiguous(), *w.tensors(), out, lp.scratch(prefix.device),
        w.emb if h0 is None else h0, w.emb if c0 is None else c0, B, P, seq_len, V, E,
        H, w.start_token, *seed_words(seed), row_offset, float(temperature), STREAM=STREAM_SAMPLE,
        CELL=w.cell_id, HAS_H0=h0 is not None, HAS_C0=c0 is not None, K=TILE_K,
        PRECISION=precision, **lp.meta)
    return out
