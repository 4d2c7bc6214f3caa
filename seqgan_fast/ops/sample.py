"""``sample``: whole-sequence generation from the start token (or given prefixes)."""
from __future__ import annotations

import torch

from .. import _ext
from .backends import resolve
from .checks import check_seed, check_state, check_temperature, check_tokens, check_weights
from .philox import STREAM_SAMPLE
from .sample_ref import canonical_sample
from .weights import (
    LSTMWeights,
    as_weights,
    has_separate_encoder,
    initial_state,
    lstm_step,
    project,
)


@torch.no_grad()
def sample_ref(w: LSTMWeights, prefix: torch.Tensor, seq_len: int, seed: int,
               temperature: float = 1.0, row_offset: int = 0, h0: torch.Tensor | None = None,
               c0: torch.Tensor | None = None) -> torch.Tensor:
    """Reference: prefix (B, P) int64 -> (B, seq_len); positions P.. drawn at row row_offset+b,
    from the initial state (h0, c0) (B, H) (default zeros)."""
    B, P = prefix.shape
    out = torch.empty(B, seq_len, dtype=torch.int64, device=prefix.device)
    out[:, :P] = prefix
    rows = torch.arange(B, device=prefix.device) + row_offset
    h, c = initial_state(w, B, h0, c0)
    tok = torch.full((B,), w.start_token, dtype=torch.int64, device=prefix.device)
    for s in range(seq_len):
        h, c = lstm_step(w, w.emb[tok], h, c)
        if s < P:
            tok = prefix[:, s]
            continue
        tok = canonical_sample(project(w, h), seed, s, rows, STREAM_SAMPLE, temperature)
        out[:, s] = tok
    return out


def _sample_kernel(w: LSTMWeights, prefix, seq_len, seed, temperature, row_offset, h0, c0):
    return torch.ops.seqgan_fast.sample(prefix.contiguous(), *w.tensors(), seq_len,
                                        w.start_token, _ext.signed_seed(seed), row_offset,
                                        temperature, w.cell_id, h0, c0)


def _sample_triton(w: LSTMWeights, prefix, seq_len, seed, temperature, row_offset, h0, c0):
    from .triton_sample import sample_triton  # local: triton is optional (and heavy to import)

    return sample_triton(w, prefix, seq_len, seed, temperature, row_offset, h0, c0)


_IMPLS = {"reference": sample_ref, "cpp": _sample_kernel, "cuda": _sample_kernel,
          "triton": _sample_triton}


def sample(
    generator,
    num_samples: int,
    seed: int = 0,
    temperature: float = 1.0,
    backend: str = "auto",
    prefix: torch.Tensor | None = None,
    seq_len: int | None = None,
    row_offset: int = 0,
    h0: torch.Tensor | None = None,
    c0: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw ``num_samples`` sequences: (num_samples, seq_len) int64.

    generator: Generator/Oracle or LSTMWeights (then pass ``seq_len``). ``prefix`` (B, P)
    fixes the first P tokens. Row b uses Philox row ``row_offset + b`` (so a batch split in
    parts reproduces the whole when offsets are given). ``h0``, ``c0`` (B, H) float32: the
    state before the start token is fed (default zeros; ``c0`` only for an LSTM), e.g. a
    separate encoder's output (``Generator.encode``). A generator with a separate encoder and
    no h0 samples history and continuation (its ``sample_with_encoder``,
    seqgan_fast/models/encoded.py).
    """
    w = as_weights(generator)
    check_weights(w)
    seq_len = seq_len if seq_len is not None else getattr(generator, "seq_len", None)
    if not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive int, got {seq_len!r}")
    if not isinstance(num_samples, int) or num_samples < 0:
        raise ValueError(f"num_samples must be an int >= 0, got {num_samples!r}")
    if not isinstance(row_offset, int) or row_offset < 0 or row_offset + num_samples > 2**32:
        raise ValueError(f"row_offset must be an int in [0, 2**32 - num_samples], got {row_offset}")
    seed, temperature = check_seed(seed), check_temperature(temperature)
    if prefix is None:
        prefix = torch.zeros(num_samples, 0, dtype=torch.int64, device=w.device)
    check_tokens(prefix, w, "prefix")
    if prefix.shape[0] != num_samples or prefix.shape[1] > seq_len:
        raise ValueError(f"prefix must have shape ({num_samples}, <= {seq_len}), "
                         f"got {tuple(prefix.shape)}")
    if h0 is None and c0 is None and has_separate_encoder(generator):
        return generator.sample_with_encoder(num_samples, seed, temperature, backend, prefix,
                                             row_offset)
    h0, c0 = check_state(w, num_samples, h0, c0)
    impl = _IMPLS[resolve(backend, w.device)]
    return impl(w, prefix, seq_len, seed, temperature, row_offset, h0, c0)
