"""The canonical exact sampler of DESIGN §4, in vectorised PyTorch (the test oracle).

The vocabulary is cut into logical tiles of TILE entries. Tile j draws (u0, u1) from Philox at
counter (j, step, row, stream); it proposes the first index whose running sum of
exp(z - m_j) exceeds u0 * S_j, and the tiles compete by Gumbel-max over their log-masses
m_j + log S_j. The result is an exact draw from softmax(z), with one exp per logit, and the
cross-tile reduction is order-free, so a fused kernel may visit tiles in any order.
"""
from __future__ import annotations

import torch

from .philox import tile_uniforms

TILE = 256
GUMBEL_FLOOR = 1e-20


def num_tiles(vocab_size: int) -> int:
    return (vocab_size + TILE - 1) // TILE


def canonical_sample(
    logits: torch.Tensor,
    seed: int,
    step: int,
    rows: torch.Tensor,
    stream: int,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Draw one token per row from softmax(logits / temperature).

    logits: (R, V) float; rows: (R,) int64 logical row ids; returns (R,) int64 tokens.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    R, V = logits.shape
    J = num_tiles(V)
    pad = J * TILE - V
    # one working buffer, updated in place: z -> exp(z - m) -> running sums
    z = torch.nn.functional.pad(logits.float(), (0, pad), value=float("-inf"))
    if temperature != 1.0:
        z.div_(temperature)
    z = z.view(R, J, TILE)
    u0, u1 = tile_uniforms(seed, J, step, rows.to(z.device), stream)
    m = z.amax(dim=2, keepdim=True)
    running = torch.cumsum(z.sub_(m).exp_(), dim=2, out=z)
    total = running[:, :, -1]
    # first index whose running sum exceeds u0 * S == number of running sums <= u0 * S
    below = torch.searchsorted(running.view(R * J, TILE), (u0 * total).view(R * J, 1),
                               right=True).view(R, J)
    tile_len = torch.full((J,), TILE, dtype=torch.int64, device=z.device)
    tile_len[-1] = V - (J - 1) * TILE
    candidate = torch.minimum(below, tile_len - 1)
    gumbel = -torch.log(-torch.log(torch.clamp(u1, min=GUMBEL_FLOOR)))
    score = m.squeeze(2) + torch.log(total) + gumbel
    winner = score.argmax(dim=1)  # first maximum: ties go to the lowest tile
    return winner * TILE + candidate.gather(1, winner[:, None]).squeeze(1)
