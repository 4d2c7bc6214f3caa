"""Shared ``@triton.jit`` helpers of the fused Triton kernels (DESIGN §4).

Philox comes from ``triton.language.random.philox`` with the explicit counter words
(tile j, step s, row r, stream k) and the 64-bit seed as key (lo, hi words), which is exactly
``seqgan_fast.ops.philox.philox4x32``. The canonical sampler consumes one (rows x TILE) logit
tile at a time, so logits never leave registers. The cell (LSTM or GRU, one ``rnn_cell``
with a constexpr CELL flag) uses ``tl.dot`` with an explicit
``input_precision`` ("ieee" by default: fp32 products, needed for token agreement with the
reference; "tf32" trades agreement for speed). No libdevice: tanh = 2*sigmoid(2x) - 1.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
import triton
import triton.language as tl

from .backends import triton_interpret
from .philox import split_seed
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


def seed_words(seed: int) -> tuple[int, int]:
    """The 64-bit seed as two int32 kernel arguments (lo, hi words, two's complement).

    Triton types a Python int argument by its range (i32, i64 or u64) and compiles one kernel
    per type: passed whole, a fresh seed per call would recompile now and then mid-training.
    Two words in int32 range are always i32 (``join_seed`` rebuilds the seed in the kernel)."""
    lo, hi = split_seed(seed)
    return (lo - (1 << 32) if lo >= 1 << 31 else lo), (hi - (1 << 32) if hi >= 1 << 31 else hi)


@triton.jit
def join_seed(seed_lo, seed_hi):
    """The uint64 seed from ``seed_words``' two int32 words."""
    lo = seed_lo.to(tl.uint32, bitcast=True).to(tl.uint64)
    hi = seed_hi.to(tl.uint32, bitcast=True).to(tl.uint64)
    return (hi << 32) | lo


@triton.jit
def row_block(scr_ptr, B, BLOCK_R: tl.constexpr, HP: tl.constexpr):
    """This program's logical rows b (BLOCK_R,) int64 of the first B, their mask, and its
    (BLOCK_R, HP) scratch block (every kernel over batch rows starts here)."""
    pid = tl.program_id(0)
    b = pid.to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    return b, b < B, scr_ptr + pid.to(tl.int64) * (BLOCK_R * HP)


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
def publish_state(scr, h, BLOCK_R: tl.constexpr, HP: tl.constexpr):
    """Write h (BLOCK_R, HP) to the program's scratch rows, which the K-chunked tl.dot calls
    read back (L1-resident). The barriers order it after every read of the previous state
    and before every read of this one."""
    orow = tl.arange(0, BLOCK_R)
    oh = tl.arange(0, HP)
    tl.debug_barrier()
    tl.store(scr + orow[:, None] * HP + oh[None, :], h)
    tl.debug_barrier()


@triton.jit
def _gate(XG: tl.constexpr, HG: tl.constexpr, BG: tl.constexpr, tok, rmask, emb_ptr, scr,
          w_ih_ptr, w_hh_ptr, bias_ptr, H, E, BLOCK_R: tl.constexpr, HP: tl.constexpr,
          EP: tl.constexpr, KC: tl.constexpr, PRECISION: tl.constexpr):
    """Pre-activation of one gate segment (BLOCK_R, HP): bias[BG] + x W_ih[XG]^T +
    h W_hh[HG]^T (XG or HG = -1: that half is absent), with the reduction cut in KC-wide
    chunks (x from the embedding rows, h from scratch), so that no operand is larger than
    (KC, HP) whatever the hidden size."""
    orow = tl.arange(0, BLOCK_R)
    oh = tl.arange(0, HP)
    mh = oh < H
    bias = tl.load(bias_ptr + BG * H + oh, mask=mh, other=0.0)
    acc = tl.zeros((BLOCK_R, HP), tl.float32) + bias[None, :]
    if XG >= 0:
        unit = XG * H + oh
        for k0 in range(0, EP, KC):
            ke = k0 + tl.arange(0, KC)
            x = tl.load(emb_ptr + tok[:, None] * E + ke[None, :],
                        mask=rmask[:, None] & (ke[None, :] < E), other=0.0)
            w = tl.load(w_ih_ptr + unit[None, :] * E + ke[:, None],
                        mask=mh[None, :] & (ke[:, None] < E), other=0.0)
            acc += tl.dot(x, w, input_precision=PRECISION)
    if HG >= 0:
        unit = HG * H + oh
        for k0 in range(0, HP, KC):
            kh = k0 + tl.arange(0, KC)
            hc = tl.load(scr + orow[:, None] * HP + kh[None, :])
            w = tl.load(w_hh_ptr + unit[None, :] * H + kh[:, None],
                        mask=mh[None, :] & (kh[:, None] < H), other=0.0)
            acc += tl.dot(hc, w, input_precision=PRECISION)
    return acc


@triton.jit
def rnn_cell(CELL: tl.constexpr, tok, rmask, h, c, emb_ptr, scr, w_ih_ptr, w_hh_ptr, bias_ptr,
             H, E, BLOCK_R: tl.constexpr, HP: tl.constexpr, EP: tl.constexpr,
             KC: tl.constexpr, PRECISION: tl.constexpr):
    """One cell step, input emb[tok] (tok: (BLOCK_R,) int64), state h (BLOCK_R, HP), also
    published in scratch (see publish_state), and c (LSTM; passed through by the GRU) ->
    new (h, c). CELL = 0: LSTM, torch gate order (i, f, g, o). CELL = 1: GRU, torch's (r, z,
    n) with the kernels' bias [b_r, b_z, b_in, b_hn] (ops/weights.py). Weights outside
    (E, H) load as 0, so padded hidden units stay exactly 0."""
    if CELL == 1:
        gr = _gate(0, 0, 0, tok, rmask, emb_ptr, scr, w_ih_ptr, w_hh_ptr, bias_ptr, H, E,
                   BLOCK_R, HP, EP, KC, PRECISION)
        gz = _gate(1, 1, 1, tok, rmask, emb_ptr, scr, w_ih_ptr, w_hh_ptr, bias_ptr, H, E,
                   BLOCK_R, HP, EP, KC, PRECISION)
        gnx = _gate(2, -1, 2, tok, rmask, emb_ptr, scr, w_ih_ptr, w_hh_ptr, bias_ptr, H, E,
                    BLOCK_R, HP, EP, KC, PRECISION)
        gnh = _gate(-1, 2, 3, tok, rmask, emb_ptr, scr, w_ih_ptr, w_hh_ptr, bias_ptr, H, E,
                    BLOCK_R, HP, EP, KC, PRECISION)
        n = tanh(gnx + sigmoid(gr) * gnh)
        z = sigmoid(gz)
        h = (1.0 - z) * n + z * h
    else:
        gi = _gate(0, 0, 0, tok, rmask, emb_ptr, scr, w_ih_ptr, w_hh_ptr, bias_ptr, H, E,
                   BLOCK_R, HP, EP, KC, PRECISION)
        gf = _gate(1, 1, 1, tok, rmask, emb_ptr, scr, w_ih_ptr, w_hh_ptr, bias_ptr, H, E,
                   BLOCK_R, HP, EP, KC, PRECISION)
        gg = _gate(2, 2, 2, tok, rmask, emb_ptr, scr, w_ih_ptr, w_hh_ptr, bias_ptr, H, E,
                   BLOCK_R, HP, EP, KC, PRECISION)
        go = _gate(3, 3, 3, tok, rmask, emb_ptr, scr, w_ih_ptr, w_hh_ptr, bias_ptr, H, E,
                   BLOCK_R, HP, EP, KC, PRECISION)
        c = sigmoid(gf) * c + sigmoid(gi) * tanh(gg)
        h = sigmoid(go) * tanh(c)
    return h, c


@triton.jit
def load_state(ptr, rows, rmask, H, HAS: tl.constexpr, BLOCK_R: tl.constexpr,
               HP: tl.constexpr):
    """(BLOCK_R, HP) state of `rows` from a (B, H) tensor, zeros where HAS is False."""
    oh = tl.arange(0, HP)
    if HAS:
        st = tl.load(ptr + rows[:, None] * H + oh[None, :],
                     mask=rmask[:, None] & (oh[None, :] < H), other=0.0)
    else:
        st = tl.zeros((BLOCK_R, HP), tl.float32)
    return st


@triton.jit
def sample_rows(scr, w_out_ptr, b_out_ptr, V, H, temperature, seed, step, rows, stream,
                BLOCK_R: tl.constexpr, HP: tl.constexpr, KC: tl.constexpr, K: tl.constexpr,
                PRECISION: tl.constexpr):
    """Canonical exact sampler fused with the output projection.

    The hidden states are read from the program's scratch rows (publish_state first); rows:
    (BLOCK_R,) logical row ids. Logit tile j (BLOCK_R, K) is produced by KC-chunked tl.dot and
    consumed at once: tile max m, running sums of exp(z - m), the candidate where the running
    sum first exceeds u0 * S, and a Gumbel-max over tiles of m + log S + g.
    Returns the tokens (BLOCK_R,) int64.
    """
    orow = tl.arange(0, BLOCK_R)
    ok = tl.arange(0, K)
    best = tl.full((BLOCK_R,), float("-inf"), tl.float32)
    tok = tl.zeros((BLOCK_R,), tl.int64)
    num_tiles = tl.cdiv(V, K)
    for j in range(0, num_tiles):
        col = j * K + ok
        cmask = col < V
        acc = tl.zeros((BLOCK_R, K), tl.float32)
        for k0 in range(0, HP, KC):
            kh = k0 + tl.arange(0, KC)
            hc = tl.load(scr + orow[:, None] * HP + kh[None, :])
            wt = tl.load(w_out_ptr + col[None, :].to(tl.int64) * H + kh[:, None],
                         mask=cmask[None, :] & (kh[:, None] < H), other=0.0)
            acc += tl.dot(hc, wt, input_precision=PRECISION)
        logits = acc + tl.load(b_out_ptr + col, mask=cmask, other=0.0)[None, :]
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
    gets one big block. On a GPU: 16 rows, so that a (16 x 256) fp32 logit tile and its sampler
    temporaries stay in registers. Warps, measured by sm_90 AOT compiles (ptxas usage): H = 32
    with 8 warps: rollout 255 registers / 16 B stack (4 warps: 432 B); H = 128 with 8 warps
    ptxas fell back to 32 registers / 48,896 B stack, with 4 warps 255 registers / 1,320 B."""
    if interpret:
        return (next_pow2(rows, 16) if rows <= 1024 else 1024), 4
    return 16, (8 if hp <= 64 else 4)


def chunk(hp: int, ep: int) -> int:
    """Reduction chunk of the tl.dot calls: operands stay <= (32, 256) at any hidden size."""
    return min(32, hp, ep)


# The kernels keep weight loads out of software pipelining: multi-stage buffering of the
# (KC, HP) / (KC, 256) weight chunks would cost shared memory without hiding much latency
# (they are L2-resident and reused by every row of the block).
NUM_STAGES = 1


class Launch(NamedTuple):
    """Launch geometry of one kernel call over ``rows`` rows (see ``plan_launch``)."""

    grid: int
    block: int
    warps: int
    HP: int
    EP: int

    @property
    def meta(self) -> dict[str, Any]:
        """The compile-time arguments every kernel here takes."""
        return dict(BLOCK_R=self.block, HP=self.HP, EP=self.EP, KC=chunk(self.HP, self.EP),
                    num_warps=self.warps, num_stages=NUM_STAGES)

    def scratch(self, device: torch.device) -> torch.Tensor:
        """Per-program (BLOCK_R, HP) fp32 blocks where h is published for the chunked dots."""
        return torch.empty(self.grid * self.block * self.HP, dtype=torch.float32, device=device)


def plan_launch(rows: int, hidden: int, emb: int, block_rows: int | None = None) -> Launch:
    """The one place that decides grid, rows per program and warps (``block_rows`` overrides
    the rows per program: a power of two >= 16)."""
    HP, EP = next_pow2(hidden), next_pow2(emb)
    block, warps = launch_config(rows, HP, triton_interpret())
    block = block_rows or block
    return Launch(triton.cdiv(rows, block), block, warps, HP, EP)
