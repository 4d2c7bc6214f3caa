"""Argument checks shared by every op, run before any backend is launched."""
from __future__ import annotations

import math

import torch

from .weights import CELLS, LSTMWeights

MIN_TEMPERATURE = 1e-3       # below, logits / t overflow float32 for ordinary logits
MAX_TEMPERATURE = 1e3


def check_seed(seed) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return seed


def check_temperature(temperature) -> float:
    t = float(temperature)
    if not (math.isfinite(t) and MIN_TEMPERATURE <= t <= MAX_TEMPERATURE):
        raise ValueError(f"temperature must be a number in [{MIN_TEMPERATURE:g}, "
                         f"{MAX_TEMPERATURE:g}], got {temperature}")
    return t


def check_tokens(x: torch.Tensor, w: LSTMWeights, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (batch, seq_len), got {tuple(x.shape)}")
    if x.dtype != torch.int64:
        raise TypeError(f"{name} must be int64, got {x.dtype}")
    if x.device != w.device:
        raise ValueError(f"{name} is on {x.device} but the generator is on {w.device}")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= w.vocab_size):
        raise ValueError(f"{name} has token ids outside [0, {w.vocab_size})")


def check_weights(w: LSTMWeights) -> None:
    V, E = w.emb.shape
    H = w.w_hh.shape[1]
    if w.cell not in CELLS:
        raise ValueError(f"weights: cell must be one of {CELLS}, got {w.cell!r}")
    G = w.gates
    expect = {"emb": (V, E), "w_ih": (G * H, E), "w_hh": (G * H, H), "bias": (4 * H,),
              "w_out": (V, H), "b_out": (V,)}
    for name, shape in expect.items():
        t = getattr(w, name)
        if tuple(t.shape) != shape:
            raise ValueError(f"weight {name} has shape {tuple(t.shape)}, expected {shape}")
        if t.dtype != torch.float32:
            raise TypeError(f"weight {name} must be float32, got {t.dtype}")
        if t.device != w.device:
            raise ValueError(f"weight {name} is on {t.device}, emb on {w.device}")
    if not 0 <= w.start_token < V:
        raise ValueError(f"start_token must be in [0, {V}), got {w.start_token}")
    check_finite(w._asdict().items(), "weight")


def check_state(w: LSTMWeights, rows: int, h0, c0):
    """Validates an initial state (h0, c0) (rows, H) float32 on the weights' device; returns
    them contiguous (None where absent; a GRU takes no c0)."""
    if c0 is not None and not w.has_cell_state:
        raise ValueError("c0 was given, but a GRU has no cell state (pass h0 only)")
    if c0 is not None and h0 is None:
        raise ValueError("c0 was given without h0")
    out = []
    for name, t in (("h0", h0), ("c0", c0)):
        if t is None:
            out.append(None)
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if tuple(t.shape) != (rows, w.hidden_dim) or t.dtype != torch.float32:
            raise ValueError(f"{name} must be ({rows}, {w.hidden_dim}) float32, got "
                             f"{tuple(t.shape)} {t.dtype}")
        if t.device != w.device:
            raise ValueError(f"{name} is on {t.device} but the generator is on {w.device}")
        out.append(t.detach().contiguous())
    check_finite((("h0", out[0]), ("c0", out[1])), "initial state")
    if out[0] is not None and out[1] is None and w.has_cell_state:
        out[1] = torch.zeros_like(out[0])  # kernels take both or neither
    return out[0], out[1]


def check_finite(named, what: str) -> None:
    """ValueError naming the first tensor with a NaN or inf: the kernels would otherwise
    return normal-looking garbage (token V-1, finite states). One host sync for all."""
    items = [(n, t) for n, t in named if isinstance(t, torch.Tensor) and t.numel()]
    if not items:
        return
    # aminmax propagates NaN and keeps +-inf: one pass, ~10x cheaper than isfinite(t).all()
    flags = torch.isfinite(torch.stack([torch.stack(torch.aminmax(t)) for _, t in items])).all(1)
    if not bool(flags.all()):
        name = items[int((~flags).nonzero()[0])][0]
        raise ValueError(f"{what} {name} holds NaN or inf values")
