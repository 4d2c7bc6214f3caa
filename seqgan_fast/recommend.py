"""Recommendations out of a trained recommendation run (``seqgan-fast recommend``).

``Recommender.from_run(dir)`` loads the run's generator and item vocabulary; ``recommend(
histories, k)`` takes item histories in the input file's item ids and returns, per history, the
k items the generator finds most likely next, with their log-probabilities. A history is read
as the training and the evaluation read it (tasks/recsys.py): its last ``max_len - 1`` known
items, teacher-forced from ``<bos>``; the scores are the generator's next-item
log-probabilities over the full item set, special tokens never candidates, and with
``exclude_seen`` every item of the history (the whole history, not only the window) excluded.

Item ids the run's vocabulary does not know (new items, or items that ``min_count`` dropped)
are skipped and counted; a history with no known item gets no recommendation and is reported.
Users are scored ``batch_size`` at a time and only the position that predicts the next item
goes through the output layer, so memory is O(batch_size x V) whatever the number of users.
"""
from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from .config import TrainConfig
from .config.device import check_device
from .data.interactions import ItemVocab
from .data.text import iter_lines
from .errors import ConfigError, DataError
from .models import Generator
from .run.checkpoint import latest_checkpoint, load_checkpoint
from .run.folder import check_run_state
from .run.state import BEST_DIR
from .tasks.recsys import RecsysTask

DEFAULT_BATCH = 1024


@dataclasses.dataclass
class LoadedRun:
    """A run folder's generator (eval mode, on ``device``), config, state and checkpoint."""

    generator: Any
    cfg: TrainConfig
    state: dict[str, Any]
    checkpoint: Path


CHECKPOINTS = ("auto", "best", "latest")


def load_run_generator(run_dir: str | os.PathLike, device: str = "cpu",
                       checkpoint: str = "latest") -> LoadedRun:
    """The generator of a run folder: ``latest`` (the last checkpoint), ``best`` (the one
    selected by validation, ``best/``, see config ``select_metric``) or ``auto`` (best where
    the run has one). Errors (ConfigError / CheckpointError) name the folder or file."""
    if checkpoint not in CHECKPOINTS:
        raise ConfigError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got "
                          f"{checkpoint!r}")
    run = Path(run_dir)
    if not run.is_dir():
        raise ConfigError(f"run folder not found: {run}")
    path = None
    if checkpoint in ("auto", "best"):
        path = latest_checkpoint(run / BEST_DIR)
        if path is None and checkpoint == "best":
            raise ConfigError(f"{run} has no best checkpoint (select_metric=none, or no "
                              "candidate evaluation yet)")
    if path is None:
        path = latest_checkpoint(run)
    if path is None:
        raise ConfigError(f"no checkpoint in {run} (train it first)")
    tensors, state = load_checkpoint(path, groups=("generator",))
    check_run_state(state, path / "state.json", groups=("generator",))
    dev = check_device(device)
    m = Generator.complete_arch(state["model"])  # old checkpoints: LSTM, tied encoder
    generator = Generator(m["vocab_size"], m["g_emb_dim"], m["g_hidden_dim"], m["seq_len"],
                          m["start_token"], cell=m["g_cell"], encoder=m["g_encoder"],
                          encoder_len=m["g_history"] or None)
    generator.load_state_dict(tensors["generator"])
    cfg = TrainConfig.from_dict(state["config"]).replace(device=str(dev))
    return LoadedRun(generator.to(dev).eval(), cfg, state, path)


@dataclasses.dataclass
class Recommendations:
    """``items[j]``/``scores[j]``: the top-k item ids (best first) and their log-probabilities
    for input history ``index[j]``; ``empty``: indices of histories with no known item (no
    row); ``unknown_items``: item ids dropped because the run's vocabulary lacks them."""

    items: list[list[str]]
    scores: list[list[float]]
    index: list[int]
    empty: list[int]
    unknown_items: int


class Recommender:
    """Top-k next items of item histories under a trained generator (module docstring)."""

    def __init__(self, generator, vocab: ItemVocab, max_len: int, exclude_seen: bool = False,
                 batch_size: int = DEFAULT_BATCH, cfg: TrainConfig | None = None) -> None:
        if generator.vocab_size != len(vocab):
            raise ValueError(f"the generator has {generator.vocab_size} tokens but the item "
                             f"vocabulary {len(vocab)}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.generator = generator.eval()
        self.vocab, self.max_len = vocab, max_len
        self.exclude_seen, self.batch_size = bool(exclude_seen), batch_size
        self.cfg = cfg  # the run's config (from_run), e.g. its interaction file and columns

    @property
    def num_items(self) -> int:
        """Candidate items (the vocabulary without its special tokens)."""
        return len(self.vocab) - self.vocab.num_specials

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, device: str = "cpu",
                 exclude_seen: bool | None = None, batch_size: int = DEFAULT_BATCH,
                 checkpoint: str = "auto") -> Recommender:
        """From a recsys run folder; ``exclude_seen`` defaults to the run's ``mask_history``;
        ``checkpoint``: auto (the validation-selected generator where there is one) | best |
        latest."""
        loaded = load_run_generator(run_dir, device, checkpoint)
        if loaded.state.get("task") != "recsys":
            raise ConfigError(f"{run_dir} is a {loaded.state.get('task')!r} run, not a "
                              "recommendation (recsys) run")
        task = RecsysTask.load(Path(run_dir), loaded.cfg)
        seen = loaded.cfg.mask_history if exclude_seen is None else exclude_seen
        return cls(loaded.generator, task.vocab, loaded.cfg.max_len, seen, batch_size,
                   loaded.cfg)

    # -- encoding -------------------------------------------------------------------------
    def encode(self, histories: Sequence[Sequence[str]]) -> tuple[list[list[int]], int]:
        """Token histories (unknown item ids dropped) and the count of dropped ids."""
        if isinstance(histories, (str, bytes)):
            raise TypeError("histories must be a list of item-id lists, not one string")
        stoi, specials = self.vocab.stoi, self.vocab.num_specials
        out, unknown = [], 0
        for h in histories:
            if isinstance(h, (str, bytes)):
                raise TypeError("each history must be a list of item ids, not one string "
                                "(split it first)")
            toks = [stoi.get(str(it), -1) for it in h]
            keep = [t for t in toks if t >= specials]
            unknown += len(toks) - len(keep)
            out.append(keep)
        return out, unknown

    # -- scoring --------------------------------------------------------------------------
    @torch.no_grad()
    def scores(self, token_histories: Sequence[Sequence[int]],
               exclude_seen: bool | None = None) -> torch.Tensor:
        """Next-item log-probabilities (n, V) float32 of non-empty token histories; excluded
        candidates (specials; the history's items with ``exclude_seen``) are -inf."""
        seen = self.exclude_seen if exclude_seen is None else exclude_seen
        g, T = self.generator, self.max_len
        n = len(token_histories)
        x = torch.zeros(n, T, dtype=torch.int64)  # <pad> = 0 after the context
        pos = torch.empty(n, dtype=torch.int64)
        for i, h in enumerate(token_histories):
            if not h:
                raise ValueError(f"history {i} is empty")
            ctx = list(h[-(T - 1):])
            x[i, : len(ctx)] = torch.tensor(ctx, dtype=torch.int64)
            pos[i] = len(ctx)
        x, pos = x.to(g.device), pos.to(g.device)
        feats = g.features(x)[torch.arange(n, device=g.device), pos]  # (n, H)
        logp = torch.log_softmax(g.output(feats).float(), dim=-1)
        logp[:, : self.vocab.num_specials] = float("-inf")
        if seen:
            rows = torch.cat([torch.full((len(h),), i, dtype=torch.int64)
                              for i, h in enumerate(token_histories)])
            cols = torch.cat([torch.tensor(list(h), dtype=torch.int64) for h in token_histories])
            logp[rows.to(g.device), cols.to(g.device)] = float("-inf")
        return logp

    def _check_k(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if k > self.num_items:
            raise ValueError(f"k={k} is larger than the {self.num_items} items the run knows")

    def iter_recommend(self, histories: Sequence[Sequence[str]], k: int = 10,
                       exclude_seen: bool | None = None) -> Iterator[Recommendations]:
        """``recommend`` in chunks of ``batch_size`` histories (indices stay global)."""
        seen = self.exclude_seen if exclude_seen is None else exclude_seen
        self._check_k(k)
        for lo in range(0, len(histories), self.batch_size):
            toks, unknown = self.encode(histories[lo : lo + self.batch_size])
            keep = [i for i, t in enumerate(toks) if t]
            empty = [lo + i for i, t in enumerate(toks) if not t]
            items: list[list[str]] = []
            scores: list[list[float]] = []
            if keep:
                logp = self.scores([toks[i] for i in keep], seen)
                # a history that excludes nearly every item can leave fewer than k candidates
                top = torch.topk(logp, k, dim=1)
                itos = self.vocab.itos
                for vals, ids in zip(top.values.cpu().tolist(), top.indices.cpu().tolist(),
                                     strict=True):
                    pairs = [(itos[t], v) for t, v in zip(ids, vals, strict=True)
                             if v != float("-inf")]
                    items.append([p[0] for p in pairs])
                    scores.append([p[1] for p in pairs])
            yield Recommendations(items, scores, [lo + i for i in keep], empty, unknown)

    def recommend(self, histories: Sequence[Sequence[str]], k: int = 10,
                  exclude_seen: bool | None = None) -> Recommendations:
        """Top-k item ids and log-probabilities for each history (item ids as in the input
        file); see :class:`Recommendations`."""
        out = Recommendations([], [], [], [], 0)
        for part in self.iter_recommend(histories, k, exclude_seen):
            out.items += part.items
            out.scores += part.scores
            out.index += part.index
            out.empty += part.empty
            out.unknown_items += part.unknown_items
        return out


def read_user_list(path: str | os.PathLike) -> list[str]:
    """User ids, one per line (blank lines and ``#`` comments skipped; a CSV's first column)."""
    p = Path(path)
    if p.is_dir():
        raise DataError(f"--users {p} is a directory; give a file of user ids")
    if not p.is_file():
        raise FileNotFoundError(f"--users file not found: {p}")
    users = []
    for lineno, text in iter_lines(p):  # not UTF-8: DataError naming the file and line
        if "\x00" in text:
            raise DataError(f"{p}:{lineno}: a NUL byte; a binary file, not a list of user ids")
        try:
            row = next(csv.reader([text]), [])
        except csv.Error as exc:
            raise DataError(f"{p}:{lineno}: unreadable as CSV ({exc})") from None
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        users.append(row[0].strip())
    if not users:
        raise DataError(f"{p}: no user ids")
    return users
