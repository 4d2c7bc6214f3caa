"""The generator's parameters in the layout every kernel takes (torch RNN layout, fp32).

Two cells share one layout, so every kernel packs one (E + H) -> 4H gate GEMM per step:

- ``cell="lstm"``: torch gate order (i, f, g, o); w_ih (4H, E), w_hh (4H, H),
  bias (4H,) = b_ih + b_hh.
- ``cell="gru"``: torch gate order (r, z, n); w_ih (3H, E), w_hh (3H, H),
  bias (4H,) = [b_ir + b_hr, b_iz + b_hz, b_in, b_hn]: the n gate keeps its two biases
  apart because b_hn sits inside r * (W_hn h + b_hn). In the fused kernels the gate GEMM
  writes [r | z | W_in x + b_in | W_hn h + b_hn], four H-wide segments like the LSTM's.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

CELLS = ("lstm", "gru")
CELL_IDS = {"lstm": 0, "gru": 1}  # the kernels' `cell` argument


class LSTMWeights(NamedTuple):
    """Single-layer RNN language model (LSTM or GRU, see the module docstring).

    emb: (V, E); w_ih: (G*H, E); w_hh: (G*H, H) with G = 4 (lstm) or 3 (gru); bias: (4H,);
    w_out: (V, H); b_out: (V,). start_token: the first input of every sequence.
    """

    emb: torch.Tensor
    w_ih: torch.Tensor
    w_hh: torch.Tensor
    bias: torch.Tensor
    w_out: torch.Tensor
    b_out: torch.Tensor
    start_token: int = 0
    cell: str = "lstm"

    @property
    def vocab_size(self) -> int:
        return self.emb.shape[0]

    @property
    def hidden_dim(self) -> int:
        return self.w_hh.shape[1]

    @property
    def gates(self) -> int:
        """Gate blocks in w_ih / w_hh: 4 for the LSTM, 3 for the GRU."""
        return 3 if self.cell == "gru" else 4

    @property
    def cell_id(self) -> int:
        return CELL_IDS[self.cell]

    @property
    def has_cell_state(self) -> bool:
        return self.cell == "lstm"

    @property
    def device(self) -> torch.device:
        return self.emb.device

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.emb, self.w_ih, self.w_hh, self.bias, self.w_out, self.b_out)

    def to(self, device: torch.device | str) -> LSTMWeights:
        return LSTMWeights(*(t.to(device) for t in self.tensors()), start_token=self.start_token,
                           cell=self.cell)


RNNWeights = LSTMWeights  # the name that says what it holds; LSTMWeights stays for callers


def gru_bias(b_ih: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """torch's GRU biases (3H,) each -> the kernels' (4H,) [b_r, b_z, b_in, b_hn]."""
    H = b_ih.shape[0] // 3
    return torch.cat([b_ih[: 2 * H] + b_hh[: 2 * H], b_ih[2 * H :], b_hh[2 * H :]])


def has_separate_encoder(model) -> bool:
    """Whether ``model`` draws in two stages, history then continuation (a Generator with
    ``encoder="separate"``): ops.sample / ops.rollout then call its ``sample_with_encoder``
    / ``rollout_with_encoder``, which compose these ops (seqgan_fast/models/encoded.py)."""
    return getattr(model, "encoder", None) is not None and getattr(model, "encoder_len", 0) > 0


def as_weights(model_or_weights) -> LSTMWeights:
    """Accept a Generator/Oracle (anything with kernel_weights()) or LSTMWeights."""
    if isinstance(model_or_weights, LSTMWeights):
        return model_or_weights
    if hasattr(model_or_weights, "kernel_weights"):
        return model_or_weights.kernel_weights()
    raise TypeError(
        "expected a Generator, Oracle or LSTMWeights, got " f"{type(model_or_weights).__name__}"
    )


def lstm_step(w: LSTMWeights, x_emb: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None):
    """One cell step: x_emb (R, E), h (R, H), c (R, H) (LSTM; None for the GRU) -> (h, c).

    The GRU returns c unchanged (None): it has no cell state.
    """
    if w.cell == "gru":
        return gru_step(w, x_emb, h), c
    gates = torch.addmm(w.bias, x_emb, w.w_ih.t()).addmm_(h, w.w_hh.t())
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


cell_step = lstm_step  # one name for either cell


def gru_step(w: LSTMWeights, x_emb: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One GRU step (torch's nn.GRU): r, z = s(W_i x + W_h h + b); n = tanh(W_in x + b_in +
    r * (W_hn h + b_hn)); h' = (1 - z) * n + z * h."""
    H = h.shape[1]
    gx = torch.addmm(w.bias[: 3 * H], x_emb, w.w_ih.t())
    gh = h @ w.w_hh.t()
    r = torch.sigmoid(gx[:, :H] + gh[:, :H])
    z = torch.sigmoid(gx[:, H : 2 * H] + gh[:, H : 2 * H])
    n = torch.tanh(gx[:, 2 * H :] + r * (gh[:, 2 * H :] + w.bias[3 * H :]))
    return (1 - z) * n + z * h


def zero_state(w: LSTMWeights, rows: int, device=None):
    """(h, c) of zeros for `rows` rows; c is None for the GRU."""
    h = torch.zeros(rows, w.hidden_dim, device=device or w.device, dtype=w.emb.dtype)
    return h, (torch.zeros_like(h) if w.has_cell_state else None)


def project(w: LSTMWeights, h: torch.Tensor) -> torch.Tensor:
    """Output projection: h (R, H) -> logits (R, V)."""
    return torch.addmm(w.b_out, h, w.w_out.t())

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
