"""The generator's parameters in the layout every kernel takes (torch LSTM layout, fp32)."""
from __future__ import annotations

from typing import NamedTuple

import torch


class LSTMWeights(NamedTuple):
    """Single-layer LSTM language model, torch gate order (i, f, g, o).

    emb: (V, E); w_ih: (4H, E); w_hh: (4H, H); bias: (4H,) = b_ih + b_hh;
    w_out: (V, H); b_out: (V,). start_token: the first input of every sequence.
    """

    emb: torch.Tensor
    w_ih: torch.Tensor
    w_hh: torch.Tensor
    bias: torch.Tensor
    w_out: torch.Tensor
    b_out: torch.Tensor
    start_token: int = 0

    @property
    def vocab_size(self) -> int:
        return self.emb.shape[0]

    @property
    def hidden_dim(self) -> int:
        return self.w_hh.shape[1]

    @property
    def device(self) -> torch.device:
        return self.emb.device

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.emb, self.w_ih, self.w_hh, self.bias, self.w_out, self.b_out)

    def to(self, device: torch.device | str) -> LSTMWeights:
        return LSTMWeights(*(t.to(device) for t in self.tensors()), start_token=self.start_token)


def as_weights(model_or_weights) -> LSTMWeights:
    """Accept a Generator/Oracle (anything with kernel_weights()) or LSTMWeights."""
    if isinstance(model_or_weights, LSTMWeights):
        return model_or_weights
    if hasattr(model_or_weights, "kernel_weights"):
        return model_or_weights.kernel_weights()
    raise TypeError(
        "expected a Generator, Oracle or LSTMWeights, got " f"{type(model_or_weights).__name__}"
    )


def lstm_step(w: LSTMWeights, x_emb: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
    """One LSTM cell step: x_emb (R, E), h/c (R, H) -> new (h, c)."""
    gates = torch.addmm(w.bias, x_emb, w.w_ih.t()).addmm_(h, w.w_hh.t())
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def project(w: LSTMWeights, h: torch.Tensor) -> torch.Tensor:
    """Output projection: h (R, H) -> logits (R, V)."""
    return torch.addmm(w.b_out, h, w.w_out.t())
