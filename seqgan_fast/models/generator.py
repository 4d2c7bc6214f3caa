"""SeqGAN's networks: the LSTM/GRU generator, the oracle ("target LSTM") and the CNN
discriminator."""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..ops.weights import CELLS, LSTMWeights, gru_bias, lstm_step

log = logging.getLogger(__name__)

_ORACLE_GATES = ("i", "f", "c", "o")  # torch's gate order (i, f, g, o) in the oracle's names


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

    With a separate encoder a sequence x (B, T) is a history x[:, :L] (L = ``history_len``,
    default T // 2) and its continuation: p(x) = p(x[:L] | zeros) * p(x[L:] | encode(x[:L])),
    both factors by the same generator network, the second restarted (start token) from the
    encoder's final state. ``forward``, ``nll``, ``mle_loss`` and ``pg_loss`` follow that
    factorisation (so the encoder trains jointly in MLE and in the policy gradient), and
    ``ops.sample`` / ``ops.rollout`` draw from it (seqgan_fast/ops/encoded.py): the
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
        history_len: int | None = None,
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
        self.history_len = 0
        if encoder == "separate":
            L = seq_len // 2 if history_len is None else history_len
            if not isinstance(L, int) or not 1 <= L < seq_len:
                raise ValueError(f"history_len must be an int in [1, seq_len - 1] = "
                                 f"[1, {seq_len - 1}] for a separate encoder, got {L!r}")
            self.history_len = L
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
                "g_history": self.history_len}

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
        separate encoder and no state, positions >= history_len restart from
        ``encode(x[:, :history_len])`` (the class docstring's factorisation)."""
        return self.output(self.features(x, state))

    def features(self, x: torch.Tensor, state: State | None = None) -> torch.Tensor:
        """The RNN outputs behind ``forward``'s logits: (B, T, H); the output layer of
        position t predicts x[:, t] (``Recommender`` projects only the position it needs)."""
        L = self.history_len
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
        from ..ops import linear_nll

        if self.output.bias is None or type(self).forward is not Generator.forward \
                or not linear_nll.fused_available(self.output.weight):
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
            from ..ops.linear_nll import weighted_nll

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
        from ..ops.linear_nll import nll_rows

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
        from ..ops.sample import sample

        return sample(self, num_samples, seed=seed, temperature=temperature,
                      backend=backend, prefix=prefix, h0=h0, c0=c0)


def prefix_states(w: LSTMWeights, x: torch.Tensor, h0: torch.Tensor | None = None,
                  c0: torch.Tensor | None = None):
    """(h, c) of shape (T, B, H): the state after the start token and x[:, :t], t = 0..T-1,
    from (h0, c0) (B, H) (default zeros). c is None for a GRU."""
    B, T = x.shape
    inp = torch.cat([torch.full_like(x[:, :1], w.start_token), x[:, :-1]], dim=1)
    emb = w.emb[inp]  # (B, T, E)
    h, c = initial_state(w, B, h0, c0)
    hs, cs = [], []
    for t in range(T):
        h, c = lstm_step(w, emb[:, t], h, c)
        hs.append(h)
        cs.append(c)
    return torch.stack(hs), (torch.stack(cs) if w.has_cell_state else None)


def initial_state(w: LSTMWeights, rows: int, h0: torch.Tensor | None = None,
                  c0: torch.Tensor | None = None):
    """(h, c) working copies (rows, H) from optional h0, c0 (zeros where absent; c None for
    a GRU)."""
    h = torch.zeros(rows, w.hidden_dim, device=w.device, dtype=w.emb.dtype)
    if h0 is not None:
        h.copy_(h0)
    if not w.has_cell_state:
        return h, None
    c = torch.zeros_like(h)
    if c0 is not None:
        c.copy_(c0)
    return h, c


class Oracle(Generator):
    """The synthetic data's "target LSTM": fixed weights, same sample()/nll() as Generator.

    ``Oracle(seed=s)`` draws N(0, 1) weights (the paper's oracle is N(0, 1) initialised);
    ``Oracle.from_npz(path)`` loads the paper's exact weights (``target_params.npz``).
    """

    def __init__(self, vocab_size: int = 5000, emb_dim: int = 32, hidden_dim: int = 32,
                 seq_len: int = 20, start_token: int = 0, seed: int = 0) -> None:
        super().__init__(vocab_size, emb_dim, hidden_dim, seq_len, start_token)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))
            self.lstm.bias_hh_l0.zero_()
        self.requires_grad_(False)

    @classmethod
    def from_npz(cls, path: str | os.PathLike, seq_len: int = 20, start_token: int = 0) -> Oracle:
        """Load the reference code's oracle: row-vector convention ``x @ W + h @ U + b``,
        gates (i, f, o, c), no forget-gate offset; see shared/data/README.md."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"oracle parameter file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as npz:
                p = {k: torch.from_numpy(np.asarray(npz[k], dtype=np.float32)) for k in npz.files}
        except Exception as exc:  # zip/npy errors come in many types
            raise ValueError(f"{path}: not a readable .npz file ({exc})") from exc
        needed = ["embedding", "W_out", "b_out"] + [
            f"{m}_{g}" for g in _ORACLE_GATES for m in ("W", "U", "b")]
        missing = [k for k in needed if k not in p]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing}")
        V, E = p["embedding"].shape
        H = p["U_i"].shape[0]
        expect = {"W_out": (H, V), "b_out": (V,)}
        for g in _ORACLE_GATES:
            expect.update({f"W_{g}": (E, H), f"U_{g}": (H, H), f"b_{g}": (H,)})
        for k, shape in expect.items():
            if tuple(p[k].shape) != shape:
                raise ValueError(f"{path}: {k} has shape {tuple(p[k].shape)}, expected {shape}")
        oracle = cls(V, E, H, seq_len, start_token)
        with torch.no_grad():
            oracle.embedding.weight.copy_(p["embedding"])
            oracle.lstm.weight_ih_l0.copy_(torch.cat([p[f"W_{g}"].t() for g in _ORACLE_GATES]))
            oracle.lstm.weight_hh_l0.copy_(torch.cat([p[f"U_{g}"].t() for g in _ORACLE_GATES]))
            oracle.lstm.bias_ih_l0.copy_(torch.cat([p[f"b_{g}"] for g in _ORACLE_GATES]))
            oracle.lstm.bias_hh_l0.zero_()
            oracle.output.weight.copy_(p["W_out"].t())
            oracle.output.bias.copy_(p["b_out"])
        return oracle


def glorot_uniform_(t: torch.Tensor) -> torch.Tensor:
    """In place U(-a, a), a = sqrt(6 / (fan_in + fan_out)), with TensorFlow's fans: a vector
    of n has fan_in = fan_out = n. This is ``tf.get_variable``'s default initialiser, so it
    is what the reference code's highway layer gets for its matrices and its biases."""
    if t.dim() == 1:
        fan_in = fan_out = t.shape[0]
    else:
        fan_out, fan_in = t.shape[0], t[0].numel()
    bound = (6.0 / (fan_in + fan_out)) ** 0.5
    with torch.no_grad():
        return t.uniform_(-bound, bound)


class Highway(nn.Module):
    """y = t * relu(W_h x + b_h) + (1 - t) * x with t = sigmoid(W_t x + b_t) (Srivastava et
    al.); x, y: (B, size).

    All four tensors are Glorot-uniform initialised (the reference code's ``linear``, created
    by ``tf.get_variable`` without an initialiser); ``transform_bias`` is added to the
    initial ``b_t``. The reference discriminator passes 0 (its highway default is -2).
    """

    def __init__(self, size: int, transform_bias: float = 0.0) -> None:
        super().__init__()
        self.hidden = nn.Linear(size, size)
        self.gate = nn.Linear(size, size)
        for p in (*self.hidden.parameters(), *self.gate.parameters()):
            glorot_uniform_(p)
        with torch.no_grad():
            self.gate.bias.add_(transform_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.sigmoid(self.gate(x))
        return t * F.relu(self.hidden(x)) + (1 - t) * x


PAPER_FILTER_SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20)
PAPER_NUM_FILTERS = (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160)


class Discriminator(nn.Module):
    """CNN text classifier (Kim, 2014) with a highway layer, as SeqGAN's discriminator.

    Class 1 is "real". Filters wider than ``seq_len`` are dropped (logged). Initialised as
    the reference code: embedding U(-1, 1); convolutions and output layer truncated normal
    (std 0.1, at most 2 std) with bias 0.1; highway Glorot uniform, gate offset 0.
    ``l2_loss()`` is the paper code's L2 term on the output layer (weight ``l2_reg``).
    """

    def __init__(
        self,
        vocab_size: int,
        seq_len: int = 20,
        emb_dim: int = 64,
        filter_sizes: Sequence[int] = PAPER_FILTER_SIZES,
        num_filters: Sequence[int] = PAPER_NUM_FILTERS,
        dropout_keep: float = 0.75,
        l2_reg: float = 0.2,
    ) -> None:
        super().__init__()
        if len(filter_sizes) != len(num_filters):
            raise ValueError("filter_sizes and num_filters must have the same length")
        if not 0 < dropout_keep <= 1:
            raise ValueError(f"dropout_keep must be in (0, 1], got {dropout_keep}")
        kept = [(k, n) for k, n in zip(filter_sizes, num_filters, strict=True) if k <= seq_len]
        if len(kept) < len(filter_sizes):
            log.info("discriminator: dropped filters wider than seq_len=%d", seq_len)
        if not kept:
            raise ValueError(f"no filter fits seq_len={seq_len}")
        self.vocab_size, self.seq_len, self.l2_reg = vocab_size, seq_len, l2_reg
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        nn.init.uniform_(self.embedding.weight, -1.0, 1.0)
        self.convs = nn.ModuleList(nn.Conv1d(emb_dim, n, k) for k, n in kept)
        for conv in self.convs:
            nn.init.trunc_normal_(conv.weight, std=0.1, a=-0.2, b=0.2)
            nn.init.constant_(conv.bias, 0.1)
        total = sum(n for _, n in kept)
        self.highway = Highway(total)
        self.dropout = nn.Dropout(1.0 - dropout_keep)
        self.output = nn.Linear(total, 2)
        # As the reference code: truncated normal (re-drawn beyond 2 std), bias 0.1.
        nn.init.trunc_normal_(self.output.weight, std=0.1, a=-0.2, b=0.2)
        nn.init.constant_(self.output.bias, 0.1)

    def forward(self, x: torch.Tensor, batch_rows: tuple[int, int] | None = None,
                pool: str = "module") -> torch.Tensor:
        """x (B, seq_len) int64 -> class logits (B, 2); class 1 = real.

        ``pool="fused"``: the trainer's CPU step, the same values: the convolution + ReLU +
        max-pool as seqgan_fast/ops/dpool.py (a sparse backward) and the highway layer on
        the unpacked GEMM of seqgan_fast/ops/highway.py; ``"module"``: plain torch ops.

        ``batch_rows=(lo, total)``: x is rows lo..lo+B-1 of a batch of ``total`` rows split
        across processes; in training the dropout mask is drawn for all ``total`` rows (the
        draw a single process makes for the whole batch, on CPU bit for bit) and these rows'
        part is used, so every rank's mask is its slice of the single-process one.
        """
        if pool == "fused":
            from ..ops.dpool import conv_pool

            return self.head(conv_pool(self.embedding(x), self.convs), batch_rows, fused=True)
        if pool != "module":
            raise ValueError(f"pool must be 'module' or 'fused', got {pool!r}")
        e = self.embedding(x).transpose(1, 2)  # (B, E, T)
        pooled = torch.cat([F.relu(conv(e)).amax(dim=2) for conv in self.convs], dim=1)
        return self.head(pooled, batch_rows)

    def head(self, pooled: torch.Tensor, batch_rows: tuple[int, int] | None = None,
             fused: bool = False) -> torch.Tensor:
        """Max-pooled features (B, F) -> logits (B, 2): highway, dropout, output layer
        (``batch_rows``: as ``forward``; ``fused``: the highway on the unpacked GEMM where it
        runs, seqgan_fast/ops/highway.py)."""
        h = self._highway(pooled, fused)
        if batch_rows is None or not self.training or self.dropout.p == 0:
            return self.output(self.dropout(h))
        lo, total = batch_rows
        keep = 1.0 - self.dropout.p
        noise = torch.empty((total, h.shape[1]), dtype=h.dtype, device=h.device)
        noise.bernoulli_(keep).div_(keep)  # as F.dropout: empty_like(h).bernoulli_(keep) / keep
        return self.output(h * noise[lo : lo + h.shape[0]])

    def _highway(self, pooled: torch.Tensor, fused: bool) -> torch.Tensor:
        if fused and pooled.dtype == torch.float32:
            from ..ops import highway as fused_highway

            if fused_highway.fused_available(pooled.device):
                return fused_highway.highway(pooled, self.highway)
        return self.highway(pooled)

    def l2_loss(self) -> torch.Tensor:
        return self.l2_reg * 0.5 * (self.output.weight.square().sum()
                                    + self.output.bias.square().sum())

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.forward(x), labels) + self.l2_loss()

    @torch.no_grad()
    def prob_real(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """P(real) for x (M, seq_len), in eval mode, scored in chunks: (M,) float."""
        was_training = self.training
        self.eval()
        try:
            out = [torch.softmax(self.forward(x[i : i + batch_size]), dim=1)[:, 1]
                   for i in range(0, x.shape[0], batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(out) if out else x.new_zeros(0, dtype=torch.float32)
