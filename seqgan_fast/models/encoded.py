"""``sample`` and ``rollout`` of a generator with a separate encoder (Generator docstring):
a composition of the ops, above them (``ops.sample`` / ``ops.rollout`` hand such a generator
back to its ``sample_with_encoder`` / ``rollout_with_encoder``, which call these).

Such a generator draws a sequence as a history x[:, :L] from the zero state, then a
continuation x[:, L:] restarted from ``encode(history)``. Both stages run in the fused kernels
of the chosen backend; only the encoder pass (a torch RNN over L positions) runs between them.
Rollouts by prefix length t:

- t > L:  the continuation's rollout, its prefix states starting from the encoder's state
          (``ops.rollout(..., h0=, c0=)``);
- t = L:  whole continuations sampled from the encoder's state;
- t < L:  the history's rollout, then each completed history is encoded and continued.

The stages draw from Philox with seeds derived from ``seed`` (``stage_seed``), so their
uniforms are independent; each stage keeps DESIGN §4's rows, so results do not depend on the
backend or on how a batch is split (``row_offset``).
"""
from __future__ import annotations

import torch

from ..ops.rollout import rollout
from ..ops.sample import sample

MASK64 = 2**64 - 1


def stage_seed(seed: int, stage: int) -> int:
    """SplitMix64 of seed + stage * golden ratio: an independent Philox key per stage."""
    z = (seed + (stage + 1) * 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


@torch.no_grad()
def _encode(g, history: torch.Tensor, chunk: int = 65536):
    """The encoder's (h0, c0) of `history` rows (c0 None for a GRU), in row chunks."""
    hs, cs = [], []
    was_training = g.training
    g.eval()
    try:
        for i in range(0, history.shape[0], chunk):
            h, c = g.encode(history[i : i + chunk])
            hs.append(h.float().contiguous())
            cs.append(None if c is None else c.float().contiguous())
    finally:
        g.train(was_training)
    h = torch.cat(hs)
    return h, (None if cs[0] is None else torch.cat(cs))


def sample_encoded(g, num_samples: int, seed: int, temperature: float, backend: str,
                   prefix: torch.Tensor, row_offset: int) -> torch.Tensor:
    """(num_samples, seq_len): history from zeros, continuation from its encoding."""
    w, L, T = g.kernel_weights(), g.encoder_len, g.seq_len
    P = prefix.shape[1]
    hist = sample(w, num_samples, seed=seed, temperature=temperature, backend=backend,
                  prefix=prefix[:, : min(P, L)], seq_len=L, row_offset=row_offset)
    h0, c0 = _encode(g, hist)
    cont = sample(w, num_samples, seed=stage_seed(seed, 1), temperature=temperature,
                  backend=backend, prefix=prefix[:, L:] if P > L else None, seq_len=T - L,
                  row_offset=row_offset, h0=h0, c0=c0)
    return torch.cat([hist, cont], dim=1)


def rollout_encoded(g, x: torch.Tensor, num_rollouts: int, seed: int, temperature: float,
                    backend: str, min_prefix: int = 1) -> torch.Tensor:
    """(T-min_prefix, N, B, T) completions of the prefixes t >= min_prefix of x (module
    docstring); the shorter prefixes are not computed, and every completion is the full
    call's (the same seeds and Philox rows)."""
    w, L, m = g.kernel_weights(), g.encoder_len, min_prefix
    B, T = x.shape
    N = num_rollouts
    out = x.expand(max(T - m, 0), N, B, T).clone()  # out[t - m] completes prefix t
    if T - m < 1 or B == 0 or T <= L:
        return out
    h0, c0 = _encode(g, x[:, :L])
    kw = dict(temperature=temperature, backend=backend)
    if max(m, L + 1) <= T - 1:  # t > L: the continuation's own rollout
        m2 = max(m - L, 1)  # its prefix t - L
        out[L + m2 - m:, :, :, L:] = rollout(w, x[:, L:].contiguous(), N,
                                             seed=stage_seed(seed, 1), h0=h0, c0=c0,
                                             min_prefix=m2, **kw)
    if m > L:
        return out

    def rep(t):
        return None if t is None else t.repeat(N, 1)  # row n*B + b starts from state b

    cont = sample(w, N * B, seed=stage_seed(seed, 2), seq_len=T - L, h0=rep(h0), c0=rep(c0),
                  **kw)  # t = L
    out[L - m, :, :, L:] = cont.view(N, B, T - L)
    if m < L:  # m <= t < L: complete the history, encode it, continue
        hist = rollout(w, x[:, :L].contiguous(), N, seed=seed, min_prefix=m, **kw)
        out[: L - m, :, :, :L] = hist  # (L-m, N, B, L)
        hh, cc = _encode(g, hist.reshape(-1, L))
        cont = sample(w, hh.shape[0], seed=stage_seed(seed, 3), seq_len=T - L, h0=hh, c0=cc,
                      row_offset=(m - 1) * N * B, **kw)
        out[: L - m, :, :, L:] = cont.view(L - m, N, B, T - L)
    return out
