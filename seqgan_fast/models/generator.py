"""SeqGAN's generator: embedding -> LSTM or GRU -> linear over the vocabulary."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.linear_nll import fused_available as fused_nll_available
from ..ops.linear_nll import nll_rows, weighted_nll
from ..ops.sample import sample as sample_op
from ..ops.weights import CELLS, LSTMWeights, gru_bias, prefix_states
from .encoded import rollout_encoded, sample_encoded

ENCODERS = ("tied", "separate")

State = tuple[torch.Tensor, torch.Tensor | None]  # (h0, c0): (B, H) each; c0 None for a GRU


class Generator(nn.Module):
    """Embedding -> single-layer LSTM or GRU -> linear over the vocabulary (Yu et al., 2017).

    Every sequence starts from an initial state (zeros unless given: ``state=(h0, c0)``) with
    the start token as first input; all ``seq_len`` positions are sampled (the start token is
    not part of the sequence). ``cell``: ``"lstm"`` (the paper's) or ``"gru"`` (torch's
    nn.GRU convention, GRU4Rec's cell); the module is ``self.lstm`` or ``self.gru``, so its
    weights load into nn.LSTM / nn.GRU and back. ``encoder``: ``"tied"`` (the generator's own
    pass over a history is the encoder: condition by ``prefix``) or ``"separate"`` (an RNN of
    the same cell reads the history; its final state starts the generator, see ``encode``).

    With a separate encoder a sequence x (B, T) is a history x[:, :L] (L = ``encoder_len``,
    default T // 2) and its continuation: p(x) = p(x[:L] | zeros) * p(x[L:] | encode(x[:L])),
    both factors by the same generator network, the second restarted (start token) from the
    encoder's final state. ``forward``, ``nll``, ``mle_loss`` and ``pg_loss`` follow that
    factorisation (so the encoder trains jointly in MLE and in the policy gradient), and
    ``ops.sample`` / ``ops.rollout`` draw from it (seqgan_fast/models/encoded.py): the
    continuation's prefix states start from the encoder's state.
    Parameters are initialised N(0, 0.1) as in the paper's code, hidden-side biases zero.
    """

    def __init__(
        self,
        vocab_size: int,
        emb_dim: int = 32,
        hidden_dim: int = 32,
        seq_len: int = 20,
        start_token: int = 0,
        init_std: float = 0.1,
        cell: str = "lstm",
        encoder: str = "tied",
        encoder_len: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("emb_dim", emb_dim),
                            ("hidden_dim", hidden_dim), ("seq_len", seq_len)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0 <= start_token < vocab_size:
            raise ValueError(f"start_token must be in [0, {vocab_size}), got {start_token}")
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        self.vocab_size, self.emb_dim, self.hidden_dim = vocab_size, emb_dim, hidden_dim
        self.seq_len, self.start_token = seq_len, start_token
        self.cell, self.encoder_kind = cell, encoder
        self.encoder_len = 0  # the positions a separate encoder reads (config key g_history)
        if encoder == "separate":
            L = seq_len // 2 if encoder_len is None else encoder_len
            if not isinstance(L, int) or not 1 <= L < seq_len:
                raise ValueError(f"encoder_len must be an int in [1, seq_len - 1] = "
                                 f"[1, {seq_len - 1}] for a separate encoder, got {L!r}")
            self.encoder_len = L
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        setattr(self, cell, rnn(emb_dim, hidden_dim, batch_first=True))
        self.output = nn.Linear(hidden_dim, vocab_size)
        # the separate encoder shares the embedding table: history and output are one vocabulary
        self.encoder = rnn(emb_dim, hidden_dim, batch_first=True) if encoder == "separate" \
            else None
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0.0, init_std)
            for m in (self.rnn, self.encoder):
                if m is not None:
                    m.bias_hh_l0.zero_()  # one bias per gate, as the paper's cell

    def arch_info(self) -> dict[str, Any]:
        """What a checkpoint records to rebuild this architecture."""
        return {"g_cell": self.cell, "g_encoder": self.encoder_kind,
                "g_history": self.encoder_len}

    @staticmethod
    def complete_arch(model: dict[str, Any] | None) -> dict[str, Any] | None:
        """A checkpoint's model record with the architecture fields that older checkpoints
        lack filled in (they were all LSTM generators with a tied encoder)."""
        if not isinstance(model, dict):
            return model
        return {"g_cell": "lstm", "g_encoder": "tied", "g_history": 0, **model}

    @property
    def rnn(self) -> nn.LSTM | nn.GRU:
        """The generator's recurrent layer (``self.lstm`` or ``self.gru``)."""
        return getattr(self, self.cell)

    # -- layout shared with the kernels ---------------------------------------------------
    def kernel_weights(self) -> LSTMWeights:
        """Detached fp32 contiguous weights in the kernels' layout (see LSTMWeights)."""
        def d(t: torch.Tensor) -> torch.Tensor:
            return t.detach().float().contiguous()

        rnn = self.rnn
        if self.cell == "gru":
            bias = gru_bias(rnn.bias_ih_l0.detach(), rnn.bias_hh_l0.detach())
        else:
            bias = rnn.bias_ih_l0 + rnn.bias_hh_l0
        return LSTMWeights(
            d(self.embedding.weight), d(rnn.weight_ih_l0), d(rnn.weight_hh_l0), d(bias),
            d(self.output.weight), d(self.output.bias), start_token=self.start_token,
            cell=self.cell,
        )

    # -- initial states -------------------------------------------------------------------
    def encode(self, history: torch.Tensor) -> State:
        """The initial state (h0, c0) (B, H) each (c0 None for a GRU) that a history
        (B, L) int64 gives, differentiable: the separate encoder's final state; for a tied
        generator, its own state after the start token and the history."""
        self.check_tokens(history, "history")
        emb = self.embedding(history)
        if self.encoder is not None:
            if history.shape[1] == 0:
                return self.zero_state(history.shape[0])
            _, final = self.encoder(emb)
        else:
            start = self.embedding(torch.full_like(history[:, :1], self.start_token))
            _, final = self.rnn(torch.cat([start, emb], dim=1))
        if self.cell == "lstm":
            return final[0][0], final[1][0]
        return final[0], None

    def zero_state(self, batch: int) -> State:
        h = torch.zeros(batch, self.hidden_dim, device=self.device)
        return h, (torch.zeros_like(h) if self.cell == "lstm" else None)

    def _rnn_state(self, state: State | None, batch: int):
        """(h0, c0) -> what nn.LSTM / nn.GRU take (None: zeros)."""
        if state is None:
            return None
        h0, c0 = state
        if h0 is None:
            return None
        if tuple(h0.shape) != (batch, self.hidden_dim):
            raise ValueError(f"h0 must have shape ({batch}, {self.hidden_dim}), "
                             f"got {tuple(h0.shape)}")
        if self.cell == "gru":
            return h0.unsqueeze(0)
        if c0 is None:
            c0 = torch.zeros_like(h0)
        return h0.unsqueeze(0), c0.unsqueeze(0)

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    # -- teacher forcing ------------------------------------------------------------------
    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        start = torch.full_like(x[:, :1], self.start_token)
        return torch.cat([start, x[:, :-1]], dim=1)

    def check_tokens(self, x: torch.Tensor, name: str = "x") -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            raise ValueError(f"{name} must be a (batch, seq_len) tensor")
        if x.dtype != torch.int64:
            raise TypeError(f"{name} must be int64, got {x.dtype}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.vocab_size):
            raise ValueError(f"{name} has token ids outside [0, {self.vocab_size})")

    def forward(self, x: torch.Tensor, state: State | None = None) -> torch.Tensor:
        """Teacher-forced logits: x (B, T) int64 -> (B, T, V); position t sees x[:, :t].
        ``state``: the initial (h0, c0) (e.g. ``encode(history)``; default zeros). With a
        separate encoder and no state, positions >= encoder_len restart from
        ``encode(x[:, :encoder_len])`` (the class docstring's factorisation)."""
        return self.output(self.features(x, state))

    def features(self, x: torch.Tensor, state: State | None = None) -> torch.Tensor:
        """The RNN outputs behind ``forward``'s logits: (B, T, H); the output layer of
        position t predicts x[:, t] (``Recommender`` projects only the position it needs)."""
        L = self.encoder_len
        if self.encoder is not None and state is None and x.shape[1] > L:
            head = self._features(x[:, :L], None)
            return torch.cat([head, self._features(x[:, L:], self.encode(x[:, :L]))], dim=1)
        return self._features(x, state)

    def _features(self, x: torch.Tensor, state: State | None) -> torch.Tensor:
        out, _ = self.rnn(self.embedding(self._inputs(x)), self._rnn_state(state, x.shape[0]))
        return out

    def log_probs(self, x: torch.Tensor, state: State | None = None) -> torch.Tensor:
        """log p(x_t | x_<t) for every position: (B, T) float (differentiable)."""
        logp = F.log_softmax(self.forward(x, state), dim=-1)
        return logp.gather(2, x.unsqueeze(2)).squeeze(2)

    def _fused_features(self, x: torch.Tensor, state: State | None):
        """The features behind the logits when the fused output layer + NLL kernel runs on
        them (seqgan_fast/ops/linear_nll.py), else None."""
        if self.output.bias is None or type(self).forward is not Generator.forward \
                or not fused_nll_available(self.output.weight):
            return None  # (the features have the output layer's device and dtype)
        h = self.features(x, state)
        return h.reshape(-1, h.shape[-1])

    def mle_loss(self, x: torch.Tensor, state: State | None = None, fused: bool = False,
                 total_tokens: int | None = None) -> torch.Tensor:
        """Mean per-token negative log-likelihood of x (B, T) (differentiable).

        ``total_tokens``: the sum divided by this count instead (a rank's share of a batch
        split across processes). ``fused``: the output layer, log-softmax and NLL as one
        kernel where it runs (CPU float32 with the extension; seqgan_fast/ops/linear_nll.py),
        the same loss and gradients to float rounding; elsewhere torch's ops."""
        h = self._fused_features(x, state) if fused else None
        if h is not None:
            n = x.numel() if total_tokens is None else total_tokens
            return weighted_nll(h, self.output, x.reshape(-1), h.new_full((x.numel(),), 1 / n))
        logits = self.forward(x, state).reshape(-1, self.vocab_size)
        if total_tokens is None:
            return F.cross_entropy(logits, x.reshape(-1))
        return F.cross_entropy(logits, x.reshape(-1), reduction="sum") / total_tokens

    def pg_loss(self, x: torch.Tensor, rewards: torch.Tensor, norm: str = "sum",
                state: State | None = None) -> torch.Tensor:
        """Policy-gradient loss -sum log p(x_t) * R_t (paper eq. 7) of x (B, T) int64 with
        rewards (B, T) float (not differentiated): a scalar.

        ``norm="sum"`` sums over all B*T positions, as the reference code's ``g_loss``;
        ``"batch_mean"`` divides that by B. With the global-norm clip of 5 the scale matters:
        the sum's gradient (norm ~10-40) is clipped on every step, the mean's is not.
        """
        total = -(self.log_probs(x, state) * rewards.detach()).sum()
        if norm == "sum":
            return total
        if norm == "batch_mean":
            return total / x.shape[0]
        raise ValueError(f"norm must be 'sum' or 'batch_mean', got {norm!r}")

    def adversarial_loss(self, x: torch.Tensor, rewards: torch.Tensor,
                         real: torch.Tensor | None = None, pg_weight: float = 1.0,
                         mle_weight: float = 0.0, baseline: str = "none",
                         norm: str = "sum", fused: bool = False) -> torch.Tensor:
        """The generator's adversarial objective: ``pg_weight`` x the policy-gradient loss of
        samples x with rewards (``baseline="batch_mean"`` subtracts each position's mean reward
        over the batch first) + ``mle_weight`` x the teacher-forced NLL (``mle_loss``, mean per
        token) of real sequences ``real`` (``fused``: as mle_loss's). pg_weight=1,
        mle_weight=0, no baseline is SeqGAN."""
        if baseline == "batch_mean":
            rewards = rewards - rewards.mean(dim=0, keepdim=True)
        elif baseline != "none":
            raise ValueError(f"baseline must be 'none' or 'batch_mean', got {baseline!r}")
        loss = pg_weight * self.pg_loss(x, rewards, norm=norm)
        if mle_weight:
            if real is None:
                raise ValueError("mle_weight > 0 needs real sequences")
            loss = loss + mle_weight * self.mle_loss(real, fused=fused)
        return loss

    @torch.no_grad()
    def nll(self, x: torch.Tensor, batch_size: int = 1024, fused: bool = True) -> float:
        """Mean per-token NLL (nats) of x (N, T), teacher-forced from the start token. By
        default (``fused``) through the fused output layer + NLL kernel where it runs
        (mle_loss's: the same value to float rounding, without materialising the logits;
        the metrics of every backend's runs use it alike), else torch's ops."""
        self.check_tokens(x)
        x = x.to(self.device)
        total = 0.0
        for i in range(0, x.shape[0], batch_size):
            chunk = x[i : i + batch_size]
            h = self._fused_features(chunk, None) if fused else None
            if h is None:
                total += float(-self.log_probs(chunk).double().sum())
            else:
                total += float(nll_rows(h, self.output, chunk.reshape(-1)).double().sum())
        return total / max(x.numel(), 1)

    @torch.no_grad()
    def prefix_states(self, x: torch.Tensor, h0: torch.Tensor | None = None,
                      c0: torch.Tensor | None = None):
        """State that predicts each position: h, c of shape (T, B, H) (c None for a GRU);
        index t has consumed the start token and x[:, :t] from (h0, c0) (default zeros).
        One teacher-forced pass, O(B*T)."""
        return prefix_states(self.kernel_weights(), x, h0, c0)

    # -- sampling -------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        seed: int = 0,
        temperature: float = 1.0,
        backend: str = "auto",
        prefix: torch.Tensor | None = None,
        h0: torch.Tensor | None = None,
        c0: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Generate (num_samples, seq_len) int64 tokens (canonical sampler, DESIGN §4),
        from the initial state (h0, c0) (num_samples, H) each (default zeros)."""
        return sample_op(self, num_samples, seed=seed, temperature=temperature,
                      backend=backend, prefix=prefix, h0=h0, c0=c0)

    def sample_with_encoder(self, num_samples: int, seed: int, temperature: float,
                            backend: str, prefix: torch.Tensor, row_offset: int) -> torch.Tensor:
        """``ops.sample`` of a separate-encoder generator: history, then its continuation
        from the encoder's state (seqgan_fast/models/encoded.py)."""
        return sample_encoded(self, num_samples, seed, temperature, backend, prefix, row_offset)

    def rollout_with_encoder(self, x: torch.Tensor, num_rollouts: int, seed: int,
                             temperature: float, backend: str, min_prefix: int = 1
                             ) -> torch.Tensor:
        """``ops.rollout`` of a separate-encoder generator (seqgan_fast/models/encoded.py)."""
        return rollout_encoded(self, x, num_rollouts, seed, temperature, backend, min_prefix)
