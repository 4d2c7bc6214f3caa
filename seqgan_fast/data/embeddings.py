"""Pretrained embeddings for the generator (config ``g_embeddings=PATH``).

Formats:

* word2vec / GloVe text: one ``token v1 ... vD`` per line (a word2vec header line ``N D`` is
  skipped); tokens are matched to the task's vocabulary as strings (words for text, item ids
  for recsys, ``"0" .. "V-1"`` for the oracle). The file is streamed; only rows of vocabulary
  tokens are kept.
* ``.npy``: a (V, D) float array aligned to the vocabulary (row i = token i).

When D differs from ``g_emb_dim`` the vectors are mapped by one linear projection computed at
load time, so the generator and every kernel keep their (V, g_emb_dim) embedding: D > E takes
the top-E principal components of the vectors found (centred; the least lossy linear map to
E dimensions), D < E a seeded random semi-orthogonal map (distances kept). Vocabulary entries
the file lacks keep a N(0, s) draw with s the standard deviation of the loaded vectors, so
both have the same scale. ``g_embeddings_freeze=true`` keeps the embedding fixed in training.
The count of entries found is logged and recorded in ``summary.json``.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..ops.finite import OVERFLOW
from .text import DataError, iter_lines, resolve_data_path

log = logging.getLogger(__name__)

# Vectors from 2^64 on would square to inf in Adam's second moment; the training guard would
# stop at the first step and blame the learning rate.
_TOO_LARGE = "the training guard's limit; rescale the vectors"


@dataclass
class LoadedEmbeddings:
    weight: torch.Tensor  # (V, dim) float32
    found: int            # vocabulary entries present in the file
    vocab_size: int
    file_dim: int
    projection: str       # none | pca | random-orthogonal
    path: str

    def info(self) -> dict:
        return {"path": self.path, "found": self.found, "vocab_size": self.vocab_size,
                "file_dim": self.file_dim, "projection": self.projection}


def _read_text(path: Path, index: dict[str, int]) -> tuple[dict[int, np.ndarray], int]:
    rows: dict[int, np.ndarray] = {}
    dim = -1
    # iter_lines: UTF-8 checked line by line (DataError naming the file and line)
    for lineno, line in iter_lines(path):
        parts = line.rstrip(" ").split(" ")
        if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
            dim = int(parts[1])  # word2vec header "N D"
            continue
        if not line.strip():
            continue
        if len(parts) < 2:
            raise DataError(f"{path}:{lineno}: expected 'token v1 ... vD'")
        if dim < 0:
            dim = len(parts) - 1
        if len(parts) - 1 != dim:
            raise DataError(f"{path}:{lineno}: {len(parts) - 1} values, expected {dim}")
        tok = parts[0]
        if tok not in index:
            continue
        try:
            vec = np.asarray(parts[1:], dtype=np.float32)
        except ValueError:
            raise DataError(f"{path}:{lineno}: values of {tok!r} are not numbers") from None
        if not np.isfinite(vec).all():
            raise DataError(f"{path}:{lineno}: non-finite value for {tok!r}")
        if np.abs(vec).max() >= OVERFLOW:
            raise DataError(f"{path}:{lineno}: a value of {tok!r} has magnitude >= 2^64 "
                            f"({_TOO_LARGE})")
        rows.setdefault(index[tok], vec)  # the first occurrence wins
    if dim < 0:
        raise DataError(f"{path}: no vectors")
    return rows, dim


def _read_npy(path: Path, vocab_size: int) -> tuple[dict[int, np.ndarray], int]:
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None
    if arr.dtype.kind not in "fiu":  # complex, bool, strings, records: no real vectors
        raise DataError(f"{path}: dtype {arr.dtype}, expected real numbers (float or int)")
    if arr.ndim != 2 or arr.shape[0] != vocab_size or arr.shape[1] < 1:
        raise DataError(f"{path}: shape {arr.shape}, expected ({vocab_size}, D) with D >= 1, "
                        "aligned to the vocabulary")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise DataError(f"{path}: non-finite values")
    if np.abs(arr).max() >= OVERFLOW:
        row = int(np.nonzero(np.abs(arr).max(1) >= OVERFLOW)[0][0])
        raise DataError(f"{path}: row {row} has a value of magnitude >= 2^64 ({_TOO_LARGE})")
    return {i: arr[i] for i in range(vocab_size)}, arr.shape[1]


def _project(x: torch.Tensor, dim: int, seed: int) -> tuple[torch.Tensor, str]:
    """(n, D) -> (n, dim) by one linear map (module docstring)."""
    n, D = x.shape
    if D == dim:
        return x, "none"
    if D > dim:
        centred = x - x.mean(0, keepdim=True)
        _, _, vh = torch.linalg.svd(centred.double(), full_matrices=False)
        comps = vh[:dim].t().float()  # (D, <= dim)
        if comps.shape[1] < dim:  # fewer vectors than dimensions: pad the map with zeros
            comps = torch.cat([comps, comps.new_zeros(D, dim - comps.shape[1])], 1)
        return centred @ comps, "pca"
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, D, generator=gen, dtype=torch.float64))
    return x @ q.t().float(), "random-orthogonal"  # (D, dim) with orthonormal rows


def load_embeddings(path: str | os.PathLike, tokens: Sequence[str], dim: int,
                    seed: int = 0) -> LoadedEmbeddings:
    """Initial (len(tokens), dim) embedding from a vector file (module docstring). DataError
    or FileNotFoundError name the file (and line)."""
    p = resolve_data_path(path, "embeddings")
    V = len(tokens)
    index = {str(t): i for i, t in enumerate(tokens)}
    rows, file_dim = _read_npy(p, V) if p.suffix == ".npy" else _read_text(p, index)
    if not rows:
        raise DataError(f"{p}: none of the {V} vocabulary entries has a vector there "
                        f"(e.g. {tokens[min(2, V - 1)]!r})")
    ids = sorted(rows)
    found = torch.from_numpy(np.stack([rows[i] for i in ids]))
    proj, how = _project(found, dim, seed)
    std = float(proj.std()) if proj.numel() > 1 else 0.1
    std = std if math.isfinite(std) and std > 0 else 0.1
    gen = torch.Generator().manual_seed(seed + 1)
    weight = torch.randn(V, dim, generator=gen) * std
    weight[torch.tensor(ids)] = proj
    if not bool(weight.abs().max() < OVERFLOW):  # a projection can enlarge near-limit values
        raise DataError(f"{p}: the vectors mapped to dimension {dim} reach magnitude 2^64 "
                        f"({_TOO_LARGE})")
    log.info("g_embeddings: %d of %d vocabulary entries found in %s (dimension %d%s)",
             len(ids), V, p, file_dim, "" if how == "none" else f", {how} to {dim}")
    return LoadedEmbeddings(weight.contiguous(), len(ids), V, file_dim, how, str(p))


def vocabulary_strings(task) -> list[str]:
    """The task's tokens as strings, in token order (vocab.itos, else "0".."V-1")."""
    vocab = getattr(task, "vocab", None)
    if vocab is not None and hasattr(vocab, "itos"):
        return list(vocab.itos)
    return [str(i) for i in range(task.vocab_size)]
