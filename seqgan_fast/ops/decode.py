"""``decode``: one fused generator step — embedding, RNN cell, projection, exact sample."""
from __future__ import annotations

import torch

from .. import _ext
from .backends import resolve
from .checks import check_finite, check_seed, check_temperature, check_weights
from .philox import STREAM_SAMPLE
from .sample_ref import canonical_sample
from .weights import LSTMWeights, as_weights, lstm_step, project


@torch.no_grad()
def decode_ref(w: LSTMWeights, tokens, h, c, seed, step, row_offset, stream, temperature):
    """Reference: feed tokens (B,), state (B, H) -> (next (B,) int64, h, c); c None (GRU)."""
    h, c = lstm_step(w, w.emb[tokens], h, c)
    rows = torch.arange(tokens.shape[0], device=tokens.device) + row_offset
    return canonical_sample(project(w, h), seed, step, rows, stream, temperature), h, c


def _decode_kernel(w: LSTMWeights, tokens, h, c, seed, step, row_offset, stream, temperature):
    h = h.contiguous()
    tok, h_out, c_out = torch.ops.seqgan_fast.decode(
        tokens.contiguous(), h, h if c is None else c.contiguous(), *w.tensors(),
        _ext.signed_seed(seed), step, row_offset, stream, temperature, w.cell_id)
    return tok, h_out, (c_out if w.has_cell_state else None)


def _decode_triton(w: LSTMWeights, tokens, h, c, seed, step, row_offset, stream, temperature):
    from .triton_decode import decode_triton  # local: triton is optional (and heavy to import)

    return decode_triton(w, tokens, h, c, seed, step, row_offset, stream, temperature)


_IMPLS = {"reference": decode_ref, "cpp": _decode_kernel, "cuda": _decode_kernel,
          "triton": _decode_triton}


def decode(
    generator,
    tokens: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor | None = None,
    seed: int = 0,
    step: int = 0,
    row_offset: int = 0,
    stream: int = STREAM_SAMPLE,
    temperature: float = 1.0,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One decode step for B rows: input tokens (B,) int64 and state h, c (B, H) float32
    (a GRU has no c: pass None).

    Returns (next_tokens (B,) int64, h (B, H), c (B, H) or None for a GRU); the token at row
    b is drawn with Philox counter (tile, step, row_offset + b, stream).
    """
    w = as_weights(generator)
    check_weights(w)
    if tokens.dim() != 1 or tokens.dtype != torch.int64:
        raise ValueError(f"tokens must be a (B,) int64 tensor, got {tuple(tokens.shape)} "
                         f"{tokens.dtype}")
    B, H = tokens.shape[0], w.hidden_dim
    if w.has_cell_state and c is None:
        raise ValueError("an LSTM generator needs the cell state c")
    if not w.has_cell_state and c is not None:
        raise ValueError("a GRU has no cell state: pass c=None")
    for name, t in (("h", h), ("c", c)):
        if t is None:
            continue
        if tuple(t.shape) != (B, H) or t.dtype != torch.float32:
            raise ValueError(f"{name} must be ({B}, {H}) float32, got {tuple(t.shape)} {t.dtype}")
        if t.device != w.device:
            raise ValueError(f"{name} is on {t.device} but the generator is on {w.device}")
    if tokens.device != w.device:
        raise ValueError(f"tokens are on {tokens.device} but the generator is on {w.device}")
    check_finite((("h", h), ("c", c)), "state")
    if B and (int(tokens.min()) < 0 or int(tokens.max()) >= w.vocab_size):
        raise ValueError(f"tokens has ids outside [0, {w.vocab_size})")
    if not (isinstance(step, int) and 0 <= step < 2**32):
        raise ValueError(f"step must be an int in [0, 2**32), got {step!r}")
    if not (isinstance(row_offset, int) and 0 <= row_offset and row_offset + B <= 2**32):
        raise ValueError(f"row_offset must be an int in [0, 2**32 - B], got {row_offset!r}")
    if stream not in (0, 1):
        raise ValueError(f"stream must be 0 (sample) or 1 (rollout), got {stream!r}")
    seed, temperature = check_seed(seed), check_temperature(temperature)
    impl = _IMPLS[resolve(backend, w.device)]
    return impl(w, tokens, h, c, seed, step, row_offset, stream, temperature)
