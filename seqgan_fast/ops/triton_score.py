"""``score`` in Triton: the discriminator's embedding-folded convolution + ReLU + max-pool.

The same arithmetic as the ``cpp`` kernel (csrc/common/score.h): for filter group g (width k)
a window's value is ``bias + U_0[x_p] + U_1[x_{p+1}] + ... + U_{k-1}[x_{p+k-1}]``, plain adds in
that order, so on the same folded table the two backends give bit-identical pooled features
(tests/test_score.py). One launch per group; a program owns BLOCK_R rows x BLOCK_F filter
columns, keeps their running maximum in registers and walks the windows, gathering table rows
by token. Rows are scored whole: the CPU kernel's prefix sharing for rollout completions
saves a third of the window adds, which on a GPU is not worth a second pass and its buffer.
Memory: the (M, F) pooled output only.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_common import next_pow2


@triton.jit(do_not_specialize=["M"])
def _pool_group_kernel(tok_ptr, table_ptr, bias_ptr, out_ptr, M, T, Kp, F_out, out_stride,
                       col_out, off, fp, nf, k,
                       BLOCK_R: tl.constexpr, BLOCK_F: tl.constexpr):
    pid_r = tl.program_id(0)
    pid_f = tl.program_id(1)
    r = pid_r.to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    c = pid_f * BLOCK_F + tl.arange(0, BLOCK_F)
    rmask = r < M
    cmask = c < nf
    mask = rmask[:, None] & cmask[None, :]
    b = tl.load(bias_ptr + c, mask=cmask, other=0.0)
    mx = tl.full((BLOCK_R, BLOCK_F), float("-inf"), tl.float32)
    for p in range(0, T - k + 1):
        acc = tl.zeros((BLOCK_R, BLOCK_F), tl.float32) + b[None, :]
        for o in range(0, k):
            tok = tl.load(tok_ptr + r * T + p + o, mask=rmask, other=0)
            col = off + o * fp + c
            acc = acc + tl.load(table_ptr + tok[:, None] * Kp + col[None, :], mask=mask,
                                other=0.0)
        mx = tl.maximum(mx, acc)
    out = tl.maximum(mx, 0.0)
    tl.store(out_ptr + r[:, None] * out_stride + col_out + c[None, :], out, mask=mask)


def pool_triton(rows: torch.Tensor, table: torch.Tensor, bias: torch.Tensor,
                widths: list[int], filters: list[int], lanes: int,
                block_rows: int = 32, block_filters: int = 64) -> torch.Tensor:
    """pooled (M, sum(filters)) = relu(max-pool(conv)) of token rows (M, T) int64 from the
    folded table (V, Kp) and padded bias (``ops.score.fold``; groups padded to ``lanes``)."""
    M, T = rows.shape
    F = sum(filters)
    out = torch.empty(M, F, dtype=torch.float32, device=rows.device)
    if M == 0:
        return out
    rows = rows.contiguous()
    off = fpoff = col = 0
    for k, f in zip(widths, filters, strict=True):
        fp = -(-f // lanes) * lanes
        bf = min(next_pow2(f), block_filters)
        grid = (triton.cdiv(M, block_rows), triton.cdiv(f, bf))
        _pool_group_kernel[grid](rows, table, bias[fpoff:], out, M, T, table.shape[1], F, F,
                                 col, off, fp, f, k, BLOCK_R=block_rows, BLOCK_F=bf)
        off += k * fp
        fpoff += fp
        col += f
    return out
