"""``rollout``: Monte-Carlo completions of every prefix, without the O(T^2) (DESIGN §5).

One teacher-forced pass gives the state after every prefix; all B*N*(T-1) completions then
start from those states and decode together. Completion rows are logical:
r = ((t-1)*N + n)*B + b for prefix length t, rollout n, batch row b; they are kept in that
order, so the rows still decoding at step s (those with t <= s) are always a leading block.
"""
from __future__ import annotations

import torch

from .. import _ext
from .backends import resolve
from .checks import check_seed, check_state, check_temperature, check_tokens, check_weights
from .philox import STREAM_ROLLOUT
from .sample_ref import canonical_sample
from .score import rollout_scores
from .weights import (
    LSTMWeights,
    as_weights,
    has_separate_encoder,
    lstm_step,
    prefix_states,
    project,
)

# The reference backend holds at most this many bytes of logits (and as many again of
# softmax temporaries) at once; completions are decoded in row chunks that fit.
REF_LOGIT_BYTES = 8 * 2**20  # measured best of 2, 8, 32, 64 MiB at the paper size


@torch.no_grad()
def rollout_ref(w: LSTMWeights, x: torch.Tensor, num_rollouts: int, seed: int,
                temperature: float = 1.0, logit_bytes: int = REF_LOGIT_BYTES,
                h0: torch.Tensor | None = None, c0: torch.Tensor | None = None,
                min_prefix: int = 1, batch_rows: tuple[int, int] | None = None
                ) -> torch.Tensor:
    """Reference rollout: x (B, T) int64 -> completions (T-min_prefix, N, B, T) int64 of the
    prefixes t >= min_prefix (logical rows from (min_prefix-1)*N*B on); the prefix pass
    starts from (h0, c0) (B, H) (default zeros). ``batch_rows=(lo, total)``: x is rows
    lo..lo+B-1 of a batch of ``total``; Philox rows are the whole batch's."""
    B, T = x.shape
    N = num_rollouts
    out = x.expand(max(T - min_prefix, 0), N, B, T).clone()
    if T - min_prefix < 1 or B == 0 or N == 0:
        return out
    h_pref, c_pref = prefix_states(w, x, h0, c0)  # (T, B, H): index t predicts position t
    flat = out.view(-1, T)
    R = flat.shape[0]
    all_rows = torch.arange(R, device=x.device) + (min_prefix - 1) * N * B  # this call's rows
    start_step = all_rows // (N * B) + 1  # the prefix length t, = the first sampled position
    philox = all_rows
    if batch_rows is not None:  # ((t-1)*N + n)*total + lo + b: the whole batch's rows
        lo, total = batch_rows
        philox = ((start_step - 1) * N + (all_rows % (N * B)) // B) * total + lo + all_rows % B
    chunk = max(1, logit_bytes // (4 * w.vocab_size))
    for r0 in range(0, R, chunk):
        rows = all_rows[r0 : r0 + chunk]
        ids = philox[r0 : r0 + chunk]
        t_rows = start_step[r0 : r0 + chunk]
        b_rows = rows % B
        h = h_pref[t_rows, b_rows]
        c = c_pref[t_rows, b_rows] if c_pref is not None else None
        for s in range(int(t_rows[0]), T):
            n = int(torch.searchsorted(t_rows, s, right=True))  # rows with t <= s
            tok = canonical_sample(project(w, h[:n]), seed, s, ids[:n], STREAM_ROLLOUT,
                                   temperature)
            flat[r0 : r0 + n, s] = tok
            if s < T - 1:
                if c is None:
                    h[:n] = lstm_step(w, w.emb[tok], h[:n], None)[0]
                else:
                    h[:n], c[:n] = lstm_step(w, w.emb[tok], h[:n], c[:n])
    return out


def _rollout_ref(w: LSTMWeights, x, num_rollouts, seed, temperature, h0, c0, min_prefix,
                 batch_rows):
    return rollout_ref(w, x, num_rollouts, seed, temperature, h0=h0, c0=c0,
                       min_prefix=min_prefix, batch_rows=batch_rows)


def _rollout_kernel(w: LSTMWeights, x, num_rollouts, seed, temperature, h0, c0, min_prefix,
                    batch_rows):
    # cpp and cuda skip the prefixes below min_prefix (their rows are not computed)
    lo, total = batch_rows if batch_rows is not None else (0, 0)
    return torch.ops.seqgan_fast.rollout(x.contiguous(), num_rollouts, *w.tensors(),
                                         w.start_token, _ext.signed_seed(seed), temperature,
                                         w.cell_id, h0, c0, min_prefix, lo, total)


def _rollout_triton(w: LSTMWeights, x, num_rollouts, seed, temperature, h0, c0, min_prefix,
                    batch_rows):
    from .triton_rollout import rollout_triton  # local: triton is optional (and heavy to import)

    return rollout_triton(w, x, num_rollouts, seed, temperature, h0, c0, min_prefix=min_prefix)


# backends whose rollout draws a share of a batch's rows (batch_rows); the others take it whole
BATCH_ROWS_BACKENDS = ("reference", "cpp")


_IMPLS = {"reference": _rollout_ref, "cpp": _rollout_kernel, "cuda": _rollout_kernel,
          "triton": _rollout_triton}


def rollout(
    policy,
    x: torch.Tensor,
    num_rollouts: int = 16,
    seed: int = 0,
    temperature: float = 1.0,
    backend: str = "auto",
    h0: torch.Tensor | None = None,
    c0: torch.Tensor | None = None,
    min_prefix: int = 1,
    batch_rows: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Complete every proper prefix of x of length >= ``min_prefix`` ``num_rollouts`` times
    with the rollout policy.

    ``batch_rows=(lo, total)`` (``reference`` and ``cpp``): x is rows lo..lo+B-1 of a batch
    of ``total`` rows (a data-parallel rank's share); its completions are exactly those rows
    of the whole batch's rollout (Philox row ((t-1)*N + n)*total + lo + b).

    policy: Generator/Oracle or LSTMWeights; x: (B, T) int64. ``h0``, ``c0`` (B, H): the
    state row b started from before its start token (default zeros): the prefix states,
    and so every completion, start from it (a separate encoder's output). A generator with a
    separate encoder and no h0 completes history and continuation (its
    ``rollout_with_encoder``, seqgan_fast/models/encoded.py).
    Returns (T-min_prefix, N, B, T) int64 (1 <= min_prefix <= T); completion
    [t-min_prefix, n, b, :t] == x[b, :t], and equal to the full rollout's completion
    [t-1, n, b] (the Philox rows are logical, so skipping short prefixes changes no token).
    Memory: the output plus, for the reference backend, ``REF_LOGIT_BYTES``-bounded logit
    chunks; the fused kernels never materialise logits beyond a tile per thread.
    """
    w = as_weights(policy)
    check_weights(w)
    check_tokens(x, w, "x")
    if not isinstance(num_rollouts, int) or num_rollouts < 1:
        raise ValueError(f"num_rollouts must be a positive int, got {num_rollouts!r}")
    B, T = x.shape
    if (T - 1) * num_rollouts * B > 2**32:
        raise ValueError("too many completions: (T-1)*num_rollouts*B must fit in 32 bits")
    if isinstance(min_prefix, bool) or not isinstance(min_prefix, int) or \
            not 1 <= min_prefix <= max(T, 1):
        raise ValueError(f"min_prefix must be an int in [1, T={T}], got {min_prefix!r}")
    seed, temperature = check_seed(seed), check_temperature(temperature)
    be = resolve(backend, w.device)
    if batch_rows is not None:
        lo, total = batch_rows
        if be not in BATCH_ROWS_BACKENDS or has_separate_encoder(policy):
            raise ValueError(f"batch_rows needs the {' or '.join(BATCH_ROWS_BACKENDS)} backend "
                             f"and a tied encoder, not {be}")
        if not (0 <= lo and lo + B <= total and (T - 1) * num_rollouts * total <= 2**32):
            raise ValueError(f"batch_rows={batch_rows}: x's {B} rows must lie inside the batch "
                             "and (T-1)*num_rollouts*total fit in 32 bits")
    if h0 is None and c0 is None and has_separate_encoder(policy):
        return policy.rollout_with_encoder(x.contiguous(), num_rollouts, seed, temperature,
                                           backend, min_prefix=min_prefix)
    h0, c0 = check_state(w, B, h0, c0)
    return _IMPLS[be](w, x.contiguous(), num_rollouts, seed, temperature, h0, c0, min_prefix,
                      batch_rows)


@torch.no_grad()
def rollout_rewards(
    policy,
    discriminator,
    x: torch.Tensor,
    num_rollouts: int = 16,
    seed: int = 0,
    temperature: float = 1.0,
    backend: str = "auto",
    score_batch: int = 4096,
    h0: torch.Tensor | None = None,
    c0: torch.Tensor | None = None,
    history_len: int = 0,
) -> torch.Tensor:
    """Per-token rewards (B, T) float: column t-1 (t < T) is the mean over the N completions
    of prefix t of D's P(real); the last column is D(x). Scored ``score_batch`` rows at a time
    by ``ops.score``'s kernels with the same backend (``cpp``: the fused scoring kernel, one
    call for the completions and x, folding the table pass by pass, prefix windows shared
    between completions).

    ``history_len`` (0 <= history_len < T): the first ``history_len`` positions are a given
    history, not generated (history-conditioned generation, config key ``history_len``): they
    get reward 0 and only the prefixes that contain a generated token (t > history_len, i.e.
    ``min_prefix = history_len + 1`` of ``rollout``) are rolled out and scored; the other
    columns equal the full computation's.
    """
    check_discriminator(discriminator, policy, x, score_batch)
    B, T = x.shape
    if isinstance(history_len, bool) or not isinstance(history_len, int) or \
            not 0 <= history_len < T:
        raise ValueError(f"history_len must be an int in [0, T-1={T - 1}], got {history_len!r}")
    m = history_len + 1  # the shortest prefix that ends in a generated token
    comps = rollout(policy, x, num_rollouts, seed, temperature, backend, h0=h0, c0=c0,
                    min_prefix=m)
    scores, last = rollout_scores(discriminator, comps.view(-1, T), x, num_rollouts, backend,
                                  score_batch, min_prefix=m)
    return reward_table(scores, last, num_rollouts, T, m)


def reward_table(scores: torch.Tensor, last: torch.Tensor, num_rollouts: int, seq_len: int,
                 min_prefix: int) -> torch.Tensor:
    """Per-token rewards (B, T) float32 from D's P(real) of the completions, ``scores``
    ((T - min_prefix) * N * B,) in rollout order (prefix t, rollout n, row b), and of the
    sequences themselves, ``last`` (B,): column t-1 (min_prefix <= t < T) is the mean over n
    of prefix t's scores, column T-1 is ``last``, the columns before min_prefix-1 are 0."""
    B, T = last.shape[0], seq_len
    rewards = torch.zeros(B, T, dtype=torch.float32, device=last.device)
    rewards[:, min_prefix - 1 : T - 1] = \
        scores.view(T - min_prefix, num_rollouts, B).mean(dim=1).t()
    rewards[:, T - 1] = last
    return rewards


def check_discriminator(discriminator, policy, x: torch.Tensor, score_batch: int) -> None:
    """The discriminator must score sequences of x's length over the policy's vocabulary."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a (batch, seq_len) tensor, got "
                         f"{tuple(getattr(x, 'shape', ()))}")
    T = x.shape[1]
    if T < 2:
        raise ValueError(f"rollout rewards need seq_len >= 2 (a prefix and a continuation), "
                         f"got x of shape {tuple(x.shape)}")
    if isinstance(score_batch, bool) or not isinstance(score_batch, int) or score_batch < 1:
        raise ValueError(f"score_batch must be a positive int, got {score_batch!r}")
    d_len = getattr(discriminator, "seq_len", None)
    if d_len is not None and d_len != T:
        raise ValueError(f"the discriminator was built for seq_len={d_len}, but x has "
                         f"seq_len={T}")
    d_vocab = getattr(discriminator, "vocab_size", None)
    p_vocab = as_weights(policy).vocab_size
    if d_vocab is not None and d_vocab != p_vocab:
        raise ValueError(f"the discriminator was built for vocab_size={d_vocab}, but the "
                         f"rollout policy has vocab_size={p_vocab}")
