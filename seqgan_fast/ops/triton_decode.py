"""``decode`` in Triton: one fused step — embedding, RNN cell (LSTM or GRU), projection,
exact sample.

One program owns BLOCK_R rows: it loads their tokens and state, runs the cell (h, c in
registers; h also in a per-program scratch row block that the K-chunked tl.dot calls read,
L1-resident), then produces the logits tile by tile and samples as it goes (DESIGN §4).
Memory: the outputs plus a scratch of (programs * BLOCK_R, HP) fp32.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_common import (
    TILE_K,
    check_precision,
    join_seed,
    plan_launch,
    publish_state,
    rnn_cell,
    row_block,
    sample_rows,
    seed_words,
)
from .weights import LSTMWeights


@triton.jit(do_not_specialize=["B", "seed_lo", "seed_hi", "step", "row_offset", "stream"])
def _decode_kernel(tok_ptr, h_ptr, c_ptr, emb_ptr, w_ih_ptr, w_hh_ptr, bias_ptr, w_out_ptr,
                   b_out_ptr, next_ptr, h_out_ptr, c_out_ptr, scr_ptr,
                   B, V, E, H, seed_lo, seed_hi, step, row_offset, stream, temperature,
                   CELL: tl.constexpr, BLOCK_R: tl.constexpr, HP: tl.constexpr, EP: tl.constexpr,
                   KC: tl.constexpr, K: tl.constexpr, PRECISION: tl.constexpr):
    seed = join_seed(seed_lo, seed_hi)
    b, rmask, scr = row_block(scr_ptr, B, BLOCK_R, HP)
    oh = tl.arange(0, HP)
    smask = rmask[:, None] & (oh[None, :] < H)
    tok = tl.load(tok_ptr + b, mask=rmask, other=0)
    h = tl.load(h_ptr + b[:, None] * H + oh[None, :], mask=smask, other=0.0)
    if CELL == 1:  # a GRU has no cell state: c passes through as zeros
        c = tl.zeros((BLOCK_R, HP), tl.float32)
    else:
        c = tl.load(c_ptr + b[:, None] * H + oh[None, :], mask=smask, other=0.0)
    publish_state(scr, h, BLOCK_R, HP)
    h, c = rnn_cell(CELL, tok, rmask, h, c, emb_ptr, scr, w_ih_ptr, w_hh_ptr, bias_ptr, H, E,
                    BLOCK_R, HP, EP, KC, PRECISION)
    publish_state(scr, h, BLOCK_R, HP)
    nxt = sample_rows(scr, w_out_ptr, b_out_ptr, V, H, temperature, seed, step, row_offset + b,
                      stream, BLOCK_R, HP, KC, K, PRECISION)
    tl.store(next_ptr + b, nxt, mask=rmask)
    tl.store(h_out_ptr + b[:, None] * H + oh[None, :], h, mask=smask)
    tl.store(c_out_ptr + b[:, None] * H + oh[None, :], c, mask=smask)


def decode_triton(w: LSTMWeights, tokens: torch.Tensor, h: torch.Tensor,
                  c: torch.Tensor | None,
                  seed: int, step: int, row_offset: int, stream: int, temperature: float,
                  precision: str = "ieee", block_rows: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """tokens (B,) int64, h, c (B, H) float32 -> (next (B,) int64, h (B, H), c (B, H));
    a GRU takes and returns c = None.

    Arguments are validated by ``ops.decode``. ``precision``: "ieee" (fp32, default) or "tf32"
    (faster tl.dot on tensor cores; tokens then agree with the reference less often).
    ``block_rows`` overrides the rows per program (a power of two >= 16).
    """
    check_precision(precision)
    B = tokens.shape[0]
    V, E = w.emb.shape
    H = w.hidden_dim
    nxt = torch.empty(B, dtype=torch.int64, device=tokens.device)
    h_out = torch.empty(B, H, dtype=torch.float32, device=tokens.device)
    c_out = torch.empty_like(h_out)
    keep_c = w.has_cell_state
    if B == 0:
        return nxt, h_out, (c_out if keep_c else None)
    lp = plan_launch(B, H, E, block_rows)
    h = h.contiguous()
    _decode_kernel[(lp.grid,)](
        tokens.contiguous(), h, h if c is None else c.contiguous(), *w.tensors(), nxt, h_out,
        c_out, lp.scratch(tokens.device), B, V, E, H, *seed_words(seed), step, row_offset,
        stream, float(temperature), CELL=w.cell_id, K=TILE_K, PRECISION=precision, **lp.meta)
    return nxt, h_out, (c_out if keep_c else None)
