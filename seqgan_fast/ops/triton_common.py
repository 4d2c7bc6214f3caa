"""Shared ``@triton.jit`` helpers of the fused Triton kernels (DESIGN §4).

Philox comes from ``triton.language.random.philox`` with the explicit counter words
(tile j, step s, row r, stream k) and the 64-bit seed as key (lo, hi words), which is exactly
``seqgan_fast.ops.philox.philox4x32``. The canonical sampler consumes one (rows x TILE) logit
tile at a time, so logits never leave registers. The LSTM cell uses ``tl.dot`` with an explicit
``input_precision`` ("ieee" by default: fp32 products, needed for token agreement with the
reference; "tf32" trades agreement for speed). No libdevice: tanh = 2*sigmoid(2x) - 1.
"""
from __future__ import annotations

import triton
import triton.language as tl

from .sample_ref import GUMBEL_FLOOR, TILE

PRECISIONS = ("ieee", "tf32")
_GUMBEL_FLOOR = tl.constexpr(GUMBEL_FLOOR)
TILE_K = TILE


def next_pow2(n: int, floor: int = 16) -> int:
    """Smallest power of two >= max(n, floor) (tl.arange and tl.dot need powers of two >= 16)."""
    return max(floor, triton.next_power_of_2(max(int(n), 1)))


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


@triton.jit
def philox_uniforms(seed, j, step, rows, stream):
    """(u0, u1) float32 of Philox4x32-10 at counters (j, step, rows, stream); rows: (R,) int."""
    zero = rows.to(tl.int64) * 0  # scalars may arrive as Python ints (loop variables, constants)
    c0 = (zero + j).to(tl.uint32)
    c1 = (zero + step).to(tl.uint32)
    c2 = rows.to(tl.uint32)
    c3 = (zero + stream).to(tl.uint32)
    w0, w1, _, _ = tl.random.philox(seed, c0, c1, c2, c3)
    return tl.random.uint_to_uniform_float(w0), tl.random.uint_to_uniform_float(w1)


@triton.jit
def sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def tanh(x):
    return 2.0 * sigmoid(2.0 * x) - 1.0


@triton.jit
def load_gate_weights(w_ih_ptr, w_hh_ptr, bias_ptr, gate: tl.constexpr, H, E,
                      HP: tl.constexpr, EP: tl.constexpr):
    """Transposed gate blocks W_ih[gate]^T (EP, HP), W_hh[gate]^T (HP, HP) and bias (HP,);
    zero outside (E, H), so padded hidden units stay exactly 0."""
    oh = tl.arange(0, HP)
    oe = tl.arange(0, EP)
    mh = oh < H
    unit = gate * H + oh
    wih = tl.load(w_ih_ptr + unit[None, :] * E + oe[:, None],
                  mask=mh[None, :] & (oe[:, None] < E), other=0.0)
    whh = tl.load(w_hh_ptr + unit[None, :] * H + oh[:, None],
                  mask=mh[None, :] & mh[:, None], other=0.0)
    b = tl.load(bias_ptr + unit, mask=mh, other=0.0)
    return wih, whh, b


@triton.jit
def lstm_cell(x, h, c, w_ih_ptr, w_hh_ptr, bias_ptr, H, E,
              HP: tl.constexpr, EP: tl.constexpr, PRECISION: tl.constexpr):
    """One LSTM step, torch gate order (i, f, g, o): x (R, EP), h, c (R, HP) -> (h, c)."""
    wih, whh, b = load_gate_weights(w_ih_ptr, w_hh_ptr, bias_ptr, 0, H, E, HP, EP)
    gi = b[None, :] + tl.dot(x, wih, input_precision=PRECISION) \
        + tl.dot(h, whh, input_precision=PRECISION)
    wih, whh, b = load_gate_weights(w_ih_ptr, w_hh_ptr, bias_ptr, 1, H, E, HP, EP)
    gf = b[None, :] + tl.dot(x, wih, input_precision=PRECISION) \
        + tl.dot(h, whh, input_precision=PRECISION)
    wih, whh, b = load_gate_weights(w_ih_ptr, w_hh_ptr, bias_ptr, 2, H, E, HP, EP)
    gg = b[None, :] + tl.dot(x, wih, input_precision=PRECISION) \
        + tl.dot(h, whh, input_precision=PRECISION)
    wih, whh, b = load_gate_weights(w_ih_ptr, w_hh_ptr, bias_ptr, 3, H, E, HP, EP)
    go = b[None, :] + tl.dot(x, wih, input_precision=PRECISION) \
        + tl.dot(h, whh, input_precision=PRECISION)
    c = sigmoid(gf) * c + sigmoid(gi) * tanh(gg)
    h = sigmoid(go) * tanh(c)
    return h, c


@triton.jit
def embed(emb_ptr, tok, E, row_mask, EP: tl.constexpr):
    """Embedding rows emb[tok] as (R, EP), zero-padded; tok: (R,) int64."""
    oe = tl.arange(0, EP)
    return tl.load(emb_ptr + tok[:, None] * E + oe[None, :],
                   mask=row_mask[:, None] & (oe[None, :] < E), other=0.0)


@triton.jit
def sample_rows(h, w_out_ptr, b_out_ptr, V, H, temperature, seed, step, rows, stream,
                HP: tl.constexpr, K: tl.constexpr, PRECISION: tl.constexpr):
    """Canonical exact sampler fused with the output projection.

    h: (R, HP) hidden states; rows: (R,) logical row ids. Logit tile j (R, K) is produced by
    tl.dot and consumed at once: tile max m, running sums of exp(z - m), the candidate where
    the running sum first exceeds u0 * S, and a Gumbel-max over tiles of m + log S + g.
    Returns the tokens (R,) int64.
    """
    oh = tl.arange(0, HP)
    ok = tl.arange(0, K)
    best = tl.full(rows.shape, float("-inf"), tl.float32)
    tok = tl.zeros(rows.shape, tl.int64)
    num_tiles = tl.cdiv(V, K)
    for j in range(0, num_tiles):
        col = j * K + ok
        cmask = col < V
        wt = tl.load(w_out_ptr + col[None, :].to(tl.int64) * H + oh[:, None],
                     mask=cmask[None, :] & (oh[:, None] < H), other=0.0)
        bo = tl.load(b_out_ptr + col, mask=cmask, other=0.0)
        logits = tl.dot(h, wt, input_precision=PRECISION) + bo[None, :]
        z = tl.where(cmask[None, :], logits / temperature, float("-inf"))
        m = tl.max(z, axis=1)
        run = tl.cumsum(tl.exp(z - m[:, None]), axis=1)
        s = tl.max(run, axis=1)  # the last running sum (running sums never decrease)
        u0, u1 = philox_uniforms(seed, j, step, rows, stream)
        below = tl.sum((run <= (u0 * s)[:, None]).to(tl.int32), axis=1)
        cand = tl.minimum(below, tl.minimum(V - j * K, K) - 1)
        g = -tl.log(-tl.log(tl.maximum(u1, _GUMBEL_FLOOR)))
        score = m + tl.log(s) + g
        win = score > best  # strict: ties keep the lowest tile
        best = tl.where(win, score, best)
        tok = tl.where(win, (j * K + cand).to(tl.int64), tok)
    return tok



def launch_config(rows: int, hp: int, interpret: bool) -> tuple[int, int]:
    """(BLOCK_R rows per program, num_warps). The interpreter pays per program instance, so it
    gets one big block; on a GPU a 32-row block keeps a (32 x 256) fp32 logit tile plus the
    state in registers, with 8 warps once H >= 128."""
    if interpret:
        return next_pow2(rows, 16) if rows <= 1024 else 1024, 4
    block = 16 if rows <= 2048 else 32
    return block, (8 if hp >= 128 else 4)
