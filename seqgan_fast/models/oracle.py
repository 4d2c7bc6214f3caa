"""The synthetic data's oracle ("target LSTM"): a generator with fixed weights."""
from __future__ import annotations

import os

import numpy as np
import torch

from .generator import Generator

_ORACLE_GATES = ("i", "f", "c", "o")  # torch's gate order (i, f, g, o) in the oracle's names


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
