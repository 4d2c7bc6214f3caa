"""Baselines the backends are measured against (DESIGN §8), written from the algorithm.

``reference_loop``: the classic SeqGAN rollout. For each of N rollouts and each prefix length
t = 1..T-1 it re-runs the prefix through the LSTM cell from a zero state, then samples the rest
step by step with softmax + ``torch.multinomial``; rewards score each batch of B completions
with the discriminator as it is produced. O(N T^2) LSTM steps of B rows. It uses the same
weights (``lstm_step`` / ``project``) but torch's global RNG, not the Philox contract, so its
tokens follow the right distribution without matching ours.

``torch_compile``: ``torch.compile`` of the batched reference's decode step (embedding, LSTM
cell, projection, canonical sampler), driven by the same loops as the reference backend. It
keeps the Philox contract, so its tokens agree with ``reference`` up to rare float ties.
"""
from __future__ import annotations

import logging

import torch

from seqgan_fast.ops.philox import STREAM_ROLLOUT, STREAM_SAMPLE
from seqgan_fast.ops.rollout import REF_LOGIT_BYTES
from seqgan_fast.ops.sample_ref import canonical_sample
from seqgan_fast.ops.weights import LSTMWeights, lstm_step, prefix_states, project

log = logging.getLogger("seqgan_fast.benchmarks")


# --------------------------------------------------------------------------------------------
# reference_loop: the per-prefix loop of public SeqGAN implementations
# --------------------------------------------------------------------------------------------
def _multinomial_step(w: LSTMWeights, h: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(project(h) / temperature) then one multinomial draw per row: (R,) int64."""
    logits = project(w, h)
    if temperature != 1.0:
        logits = logits / temperature
    return torch.multinomial(torch.softmax(logits, dim=1), 1).squeeze(1)


@torch.no_grad()
def loop_complete(w: LSTMWeights, prefix: torch.Tensor, seq_len: int,
                  temperature: float = 1.0) -> torch.Tensor:
    """Complete prefix (B, t) to (B, seq_len): re-run the prefix from h = c = 0, then sample."""
    B, t = prefix.shape
    out = torch.empty(B, seq_len, dtype=torch.int64, device=prefix.device)
    out[:, :t] = prefix
    h = torch.zeros(B, w.hidden_dim, device=prefix.device)
    c = torch.zeros_like(h)
    tok = torch.full((B,), w.start_token, dtype=torch.int64, device=prefix.device)
    for s in range(seq_len):
        h, c = lstm_step(w, w.emb[tok], h, c)  # h now predicts position s
        tok = prefix[:, s] if s < t else _multinomial_step(w, h, temperature)
        if s >= t:
            out[:, s] = tok
    return out


@torch.no_grad()
def loop_rollout(w: LSTMWeights, x: torch.Tensor, num_rollouts: int,
                 temperature: float = 1.0) -> torch.Tensor:
    """Classic rollout: x (B, T) -> completions (T-1, N, B, T), one prefix batch at a time."""
    B, T = x.shape
    out = torch.empty(max(T - 1, 0), num_rollouts, B, T, dtype=torch.int64, device=x.device)
    for n in range(num_rollouts):
        for t in range(1, T):
            out[t - 1, n] = loop_complete(w, x[:, :t], T, temperature)
    return out


@torch.no_grad()
def loop_rewards(w: LSTMWeights, discriminator, x: torch.Tensor, num_rollouts: int,
                 temperature: float = 1.0) -> torch.Tensor:
    """Classic rewards (B, T): each batch of B completions is scored as soon as it exists;
    the last column scores the full sequences (once per rollout, as the classic code does)."""
    B, T = x.shape
    rewards = torch.zeros(B, T, dtype=torch.float32, device=x.device)
    for _ in range(num_rollouts):
        for t in range(1, T):
            comp = loop_complete(w, x[:, :t], T, temperature)
            rewards[:, t - 1] += discriminator.prob_real(comp)
        rewards[:, T - 1] += discriminator.prob_real(x)
    return rewards / num_rollouts


@torch.no_grad()
def loop_sample(w: LSTMWeights, num_samples: int, seq_len: int,
                temperature: float = 1.0) -> torch.Tensor:
    """Step-by-step generation with softmax + multinomial: (num_samples, seq_len) int64."""
    empty = torch.zeros(num_samples, 0, dtype=torch.int64, device=w.device)
    return loop_complete(w, empty, seq_len, temperature)


@torch.no_grad()
def loop_decode(w: LSTMWeights, tokens: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
                temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step: tokens (B,), h/c (B, H) -> (next (B,), h, c), with multinomial sampling."""
    h, c = lstm_step(w, w.emb[tokens], h, c)
    return _multinomial_step(w, h, temperature), h, c


# --------------------------------------------------------------------------------------------
# torch_compile: the batched reference's step, compiled
# --------------------------------------------------------------------------------------------
def _make_decode_step(seed: int, stream: int, temperature: float):
    # seed, stream and temperature are constants of the graph: when the seed is a symbolic
    # int (torch.compile(dynamic=True)), inductor 2.13 types the Philox key words as float on
    # CPU and its C++ fails to compile. Only the row dimension is marked dynamic.
    def decode_step(w: LSTMWeights, tokens: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
                    step: torch.Tensor, rows: torch.Tensor):
        h, c = lstm_step(w, w.emb[tokens], h, c)
        return canonical_sample(project(w, h), seed, step, rows, stream, temperature), h, c

    return decode_step


class CompiledBackend:
    """The batched reference loops around a ``torch.compile``-d decode step.

    The step takes its position as a 0-d tensor and its rows as a tensor, and its row dimension
    is marked dynamic, so one graph serves every step and every block of completions; one
    graph is compiled per (seed, stream, temperature).
    """

    def __init__(self, mode: str | None = None) -> None:
        self.mode = mode
        self._steps: dict[tuple[int, int, float], object] = {}

    def _step(self, seed: int, stream: int, temperature: float):
        key = (seed, stream, float(temperature))
        if key not in self._steps:
            compiled = torch.compile(_make_decode_step(*key), mode=self.mode)

            def step(w, tokens, h, c, step, rows):
                for t in (tokens, h, c, rows):  # the row count varies, nothing else does
                    torch._dynamo.mark_dynamic(t, 0)
                # graphs of other keys share this code object; without this, a changed seed
                # would turn symbolic on recompilation (see above)
                with torch._dynamo.config.patch(automatic_dynamic_shapes=False):
                    return compiled(w, tokens, h, c, step, rows)

            self._steps[key] = step
        return self._steps[key]

    @torch.no_grad()
    def decode(self, w: LSTMWeights, tokens, h, c, seed: int = 0, step: int = 0,
               row_offset: int = 0, stream: int = STREAM_SAMPLE, temperature: float = 1.0):
        """Same contract as ``ops.decode``: (next (B,), h (B, H), c (B, H); None: GRU)."""
        rows = torch.arange(tokens.shape[0], device=tokens.device) + row_offset
        s = torch.tensor(step, dtype=torch.int64, device=tokens.device)
        tok, h, c_out = self._step(seed, stream, temperature)(
            w, tokens, h, torch.zeros_like(h) if c is None else c, s, rows)
        return tok, h, (c_out if w.has_cell_state else None)

    @torch.no_grad()
    def sample(self, w: LSTMWeights, num_samples: int, seq_len: int, seed: int = 0,
               temperature: float = 1.0) -> torch.Tensor:
        """Same tokens as ``ops.sample(..., backend="reference")``: (num_samples, seq_len)."""
        dev = w.device
        out = torch.empty(num_samples, seq_len, dtype=torch.int64, device=dev)
        rows = torch.arange(num_samples, device=dev)
        h = torch.zeros(num_samples, w.hidden_dim, device=dev)
        c = torch.zeros_like(h)
        tok = torch.full((num_samples,), w.start_token, dtype=torch.int64, device=dev)
        fn = self._step(seed, STREAM_SAMPLE, temperature)
        for s in range(seq_len):
            step = torch.tensor(s, dtype=torch.int64, device=dev)
            tok, h, c = fn(w, tok, h, c, step, rows)
            out[:, s] = tok
        return out

    @torch.no_grad()
    def rollout(self, w: LSTMWeights, x: torch.Tensor, num_rollouts: int, seed: int = 0,
                temperature: float = 1.0, logit_bytes: int = REF_LOGIT_BYTES) -> torch.Tensor:
        """Same contract and tokens as ``ops.rollout``: (T-1, N, B, T) int64.

        Completion rows r = ((t-1)*N + n)*B + b are decoded in blocks of logit_bytes worth of
        logits; the completion of prefix t starts from the state after x[:, :t-1] and feeds
        x[:, t-1], so every position is produced by the same compiled step.
        """
        B, T = x.shape
        N = num_rollouts
        out = x.expand(max(T - 1, 0), N, B, T).clone()
        if T < 2 or B == 0 or N == 0:
            return out
        h_pref, c_pref = prefix_states(w, x)  # index t: consumed the start token and x[:, :t]
        if c_pref is None:  # a GRU: the step passes a dummy cell state through
            c_pref = torch.zeros_like(h_pref)
        flat = out.view(-1, T)
        R = flat.shape[0]
        all_rows = torch.arange(R, device=x.device)
        prefix_len = all_rows // (N * B) + 1
        block = max(1, logit_bytes // (4 * w.vocab_size))
        fn = self._step(seed, STREAM_ROLLOUT, temperature)
        for r0 in range(0, R, block):
            rows = all_rows[r0 : r0 + block]
            t_rows = prefix_len[r0 : r0 + block]
            b_rows = rows % B
            h, c = h_pref[t_rows - 1, b_rows], c_pref[t_rows - 1, b_rows]
            tok = x[b_rows, t_rows - 1]
            for s in range(int(t_rows[0]), T):
                n = int(torch.searchsorted(t_rows, s, right=True))  # rows with t <= s
                step = torch.tensor(s, dtype=torch.int64, device=x.device)
                # rows n.. have not started yet: they keep their prefix state and input
                tok[:n], h[:n], c[:n] = fn(w, tok[:n], h[:n], c[:n], step, rows[:n])
                flat[r0 : r0 + n, s] = tok[:n]
        return out
