"""The run's random draws, shared by the trainer and the tasks: seed derivation and sampling in
bounded chunks. Its own module so that the tasks need not import the trainer (which imports
them)."""
from __future__ import annotations

import numpy as np
import torch

from .. import ops
from ..parallel.distributed import active

SAMPLE_CHUNK = 4096  # rows per sampling call: bounds the reference backend's logit memory


def draw_seed(base: int, stream: int, index: int) -> int:
    """A 64-bit seed for draw ``index`` of ``stream``, derived from ``base`` (SeedSequence:
    well mixed, platform independent)."""
    words = np.random.SeedSequence([base % 2**64, stream, index]).generate_state(2, np.uint32)
    return int(words[0]) | (int(words[1]) << 32)


def sample_in_chunks(model, num: int, seed: int, backend: str = "auto",
                     temperature: float = 1.0, chunk: int = SAMPLE_CHUNK,
                     prefix: torch.Tensor | None = None) -> torch.Tensor:
    """``model.sample(num, seed)`` drawn ``chunk`` rows at a time (same tokens: each row keeps
    its Philox row index): (num, seq_len) int64. ``prefix`` (num, P): given first positions
    (history-conditioned generation).

    During a data-parallel run (``distributed.active()``) every rank draws its share of the
    rows and the shares are gathered: the same tensor on every rank, and the same tokens as
    one process draws. It is then a collective: every rank must call it.
    """
    world = active()
    if world is None:
        return sample_rows(model, 0, num, seed, backend, temperature, chunk, prefix)
    lo, hi = world.shard(num)
    return world.gather_rows(sample_rows(model, lo, hi, seed, backend, temperature, chunk,
                                         prefix), num)


def sample_rows(model, start: int, stop: int, seed: int, backend: str = "auto",
                temperature: float = 1.0, chunk: int = SAMPLE_CHUNK,
                prefix: torch.Tensor | None = None) -> torch.Tensor:
    """Rows ``start..stop-1`` of ``model.sample(stop, seed)`` (Philox rows are logical, so a
    part drawn alone equals that part of the whole): (stop - start, seq_len) int64.
    ``prefix`` (stop, P): the given first positions of every row (history-conditioned)."""
    parts = [ops.sample(model, min(chunk, stop - r0), seed=seed, temperature=temperature,
                        backend=backend, row_offset=r0,
                        prefix=None if prefix is None else prefix[r0 : min(r0 + chunk, stop)])
             for r0 in range(start, stop, chunk)]
    if not parts:
        return torch.zeros(0, model.seq_len, dtype=torch.int64, device=model.device)
    return torch.cat(parts)
