"""Philox4x32-10 counter-based random numbers, vectorised in PyTorch (DESIGN §4).

Every backend derives its uniforms from the same (key, counter) pairs, so the token drawn
for a logical (seed, row, step) does not depend on batch layout or launch geometry.
Counter words: (tile j, step s, row r, stream k); key: the 64-bit seed split (lo, hi).

32-bit words are held in int64 tensors; products of two 32-bit words wrap modulo 2**64 in
int64 arithmetic, which keeps both the low and (after an arithmetic shift and mask) the high
32 bits exact.
"""
from __future__ import annotations

import torch

PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
MASK32 = 0xFFFFFFFF
UNIFORM_SCALE = 4.6566127342e-10  # as triton.language.random.uint_to_uniform_float

STREAM_SAMPLE = 0
STREAM_ROLLOUT = 1


def split_seed(seed: int) -> tuple[int, int]:
    """Split a seed in [0, 2**64) into its (lo, hi) 32-bit key words."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return seed & MASK32, (seed >> 32) & MASK32


def _mulhilo(a: int, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    prod = b * a  # wraps modulo 2**64
    return prod & MASK32, (prod >> 32) & MASK32


def philox4x32(
    seed: int, c0: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor, c3: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Philox4x32-10 of broadcastable int64 counter words.

    Returns four int64 words in [0, 2**32)."""
    k0, k1 = split_seed(seed)
    c0, c1, c2, c3 = torch.broadcast_tensors(
        *(torch.as_tensor(c, dtype=torch.int64) & MASK32 for c in (c0, c1, c2, c3))
    )
    for _ in range(10):
        lo0, hi0 = _mulhilo(PHILOX_M0, c0)
        lo1, hi1 = _mulhilo(PHILOX_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = (k0 + PHILOX_W0) & MASK32
        k1 = (k1 + PHILOX_W1) & MASK32
    return c0, c1, c2, c3


def to_uniform(word: torch.Tensor) -> torch.Tensor:
    """Map 32-bit words (int64 tensor) to float32 uniforms in [0, 1] as Triton does."""
    x = torch.where(word >= 2**31, word - 2**32, word)  # reinterpret as int32
    x = torch.where(x < 0, -x - 1, x)
    return x.to(torch.float32) * torch.tensor(UNIFORM_SCALE, dtype=torch.float32)


def tile_uniforms(
    seed: int, num_tiles: int, step: int, rows: torch.Tensor, stream: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniforms (u0, u1) for counters (j, step, row, stream).

    rows: (R,) int64; returns two (R, num_tiles) float32 tensors."""
    j = torch.arange(num_tiles, dtype=torch.int64, device=rows.device)
    w0, w1, _, _ = philox4x32(seed, j[None, :], step, rows[:, None].to(torch.int64), stream)
    return to_uniform(w0), to_uniform(w1)
