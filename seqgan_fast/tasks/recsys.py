"""Sequential (next-item) recommendation from an interaction file, leave-one-out evaluated.

Data (data/interactions.py): per-user chronological item sequences; the last item of each user
is the test item, the second-last the validation item, the rest the training prefix, from which
windows of ``max_len`` items are cut as the "real" sequences (start token <bos> before each).

Scoring: a user's next-item scores are the generator's log-probabilities at the position after
the last ``max_len - 1`` items of the history, teacher-forced from <bos> (the history is the
training prefix for validation, prefix + validation item for test). Special tokens are never
candidates; with ``mask_history`` every item the user already has (the whole history, not only
the window) is excluded too, so a held-out item that is a repeat can then not be hit. The held-
out item's rank is over the full item set, ties broken by a fixed random item order. Metrics,
for K in ``cfg.topk``: ``hr@K``, ``ndcg@K``, ``mrr@K`` (test) and their ``val_`` variants, and
for the test lists ``coverage@K`` (distinct recommended items / catalogue) and ``pop@K`` (mean
popularity percentile of the recommended items, 1 = the most popular: a mode-collapse signal).
The protocol is written into ``summary.json`` (``summary_extras``).

Baselines on the same split and masking: ``popularity`` (items ranked by their count in the
training prefixes), ``repeat`` (the user's own most frequent history items, then by popularity:
strong where re-orders dominate, as on Instacart; void with ``mask_history``) and ``mle`` (the
generator's metrics at the final MLE evaluation, recorded when ``evaluate(phase="mle",
final=True)`` runs), reported by ``summary_extras``.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError, TrainConfig
from ..data.interactions import (
    BOS,
    PAD,
    InteractionStats,
    ItemVocab,
    LeaveOneOut,
    rank_targets,
    read_interactions,
    training_windows,
)
from ..data.text import resolve_data_path
from ..metrics import (
    RANK_METRICS,
    coverage,
    hit_rate,
    mrr,
    ndcg,
    per_user_gain,
    popularity_percentile,
)
from .base import Task, check_same_vocabulary
from .text import task_seed

log = logging.getLogger(__name__)

ITEMS_FILE = "items.json"
BASELINES_FILE = "baselines.json"
_CHUNK = 1024  # users scored per forward pass: bounds the (users, items) score matrix


class RecsysTask(Task):
    """Interactions from ``cfg.data``; see the module docstring."""

    name = "recsys"
    pad_token = PAD

    def __init__(self, cfg: TrainConfig) -> None:
        if cfg.data in ("", "oracle"):
            raise ConfigError("task recsys needs --data PATH (an .inter or .csv file)")
        if cfg.max_len < 2:
            raise ConfigError(f"bad value {cfg.max_len} for max_len: recsys needs >= 2")
        self._last_val_ranks: torch.Tensor | None = None
        if not cfg.topk or min(cfg.topk) < 1:
            raise ConfigError(f"bad value {cfg.topk!r} for topk: expected positive ints")
        self.cfg = cfg
        self._setup_shape(cfg)
        path = resolve_data_path(cfg.data, "interaction")
        self.data_path = path
        data = read_interactions(path, getattr(cfg, "columns", None), cfg.min_count)
        self.stats: InteractionStats | None = data.stats
        self.vocab = ItemVocab.from_sequences(data.sequences)
        self.vocab_size = len(self.vocab)
        self.split = LeaveOneOut.from_sequences([self.vocab.encode(s) for s in data.sequences])
        del data
        self._train = training_windows(self.split.train, cfg.max_len)
        counts = torch.zeros(self.vocab_size, dtype=torch.float64)
        for p in self.split.train:
            counts.index_add_(0, torch.tensor(p, dtype=torch.int64),
                              torch.ones(len(p), dtype=torch.float64))
        self.popularity_counts = counts
        gen = torch.Generator().manual_seed(task_seed(cfg.seed, "recsys-ties") % 2**62)
        self.tie_order = torch.randperm(self.vocab_size, generator=gen)
        self._contexts = {ph: self._build_contexts(ph) for ph in ("valid", "test")}
        self._masks = {ph: self._build_mask(ph) for ph in ("valid", "test")}
        self.baselines: dict[str, dict[str, float]] = {
            "popularity": self._metrics_from_scores(
                lambda ph, rows: counts.float()[None, :].expand(len(rows), -1)),
            "repeat": self._metrics_from_scores(self._repeat_scores)}
        self._run_dir: Path | None = None
        repeats = sum(self.split.test[i] in set(self.split.history(i, "test"))
                      for i in range(len(self.split.test)))
        self.repeat_test_items = repeats
        st = self.stats
        log.info("recsys: %s: %d users (%d skipped, < 3 interactions), %d items (%d rarer than "
                 "min_count=%d dropped), %d training windows of %d; %d of %d test items are "
                 "repeats of the user's history%s", path, st.users, st.users_skipped, st.items,
                 st.items_dropped, cfg.min_count, self._train.shape[0], cfg.max_len, repeats,
                 st.users, " (cannot be hit with mask_history)" if cfg.mask_history else "")
        log.info("recsys: popularity baseline %s", self.baselines["popularity"])
        log.info("recsys: repeat baseline %s", self.baselines["repeat"])

    def _setup_shape(self, cfg: TrainConfig) -> None:
        self.seq_len = cfg.max_len
        self.start_token = BOS
        if cfg.seq_len != cfg.max_len:
            log.info("recsys: sequence length is max_len=%d (seq_len=%d ignored)",
                     cfg.max_len, cfg.seq_len)

    # -- evaluation plumbing ------------------------------------------------------------------
    def _build_contexts(self, phase: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x (U, max_len) teacher-forcing input, pos (U,) index whose logits score the next
        item, targets (U,)) for ``phase`` (valid | test)."""
        T = self.cfg.max_len
        U = len(self.split.test)
        x = torch.full((U, T), PAD, dtype=torch.int64)
        pos = torch.empty(U, dtype=torch.int64)
        for i in range(U):
            ctx = self.split.history(i, phase)[-(T - 1):]
            x[i, : len(ctx)] = torch.tensor(ctx, dtype=torch.int64)
            pos[i] = len(ctx)
        targets = torch.tensor([self.split.target(i, phase) for i in range(U)])
        return x, pos, targets

    def _build_mask(self, phase: str) -> list[torch.Tensor]:
        """Per user, the token ids excluded from ranking (specials; history if mask_history)."""
        specials = torch.arange(self.vocab.num_specials)
        out = []
        for i in range(len(self.split.test)):
            if self.cfg.mask_history:
                hist = torch.tensor(sorted(set(self.split.history(i, phase))), dtype=torch.int64)
                out.append(torch.cat([specials, hist]))
            else:
                out.append(specials)
        return out

    def _repeat_scores(self, phase: str, rows: torch.Tensor) -> torch.Tensor:
        """The repeat baseline: an item's count in the user's history, popularity (scaled
        below 1) breaking ties and filling the list past the user's own items."""
        pop = self.popularity_counts.float()
        base = pop / (float(pop.max()) + 1.0)
        out = base[None, :].repeat(len(rows), 1)
        for j, i in enumerate(rows.tolist()):
            hist = torch.tensor(self.split.history(i, phase), dtype=torch.int64)
            out[j].index_add_(0, hist, torch.ones(len(hist)))
        return out

    def _metrics_from_scores(self, score_fn) -> dict[str, float]:
        """HR/NDCG/MRR@K (test, and val_ variants), coverage@K and pop@K of the test lists;
        score_fn(phase, rows) -> (len(rows), V)."""
        out: dict[str, float] = {}
        kmax = max(self.cfg.topk)
        n_sp = self.vocab.num_specials
        items = self.vocab_size - n_sp
        for phase, prefix in (("test", ""), ("valid", "val_")):
            ranks, top = self.ranks(score_fn, phase, top_k=kmax)
            if phase == "valid":
                self._last_val_ranks = ranks  # per_user_values of the last evaluation
            for k in self.cfg.topk:
                out[f"{prefix}hr@{k}"] = hit_rate(ranks, k)
                out[f"{prefix}ndcg@{k}"] = ndcg(ranks, k)
                out[f"{prefix}mrr@{k}"] = mrr(ranks, k)
            if phase == "test" and items > 0:
                for k in self.cfg.topk:
                    lists = torch.where(top[:, :k] >= n_sp, top[:, :k] - n_sp, -1)
                    out[f"coverage@{k}"] = coverage(lists, items)
                    out[f"pop@{k}"] = popularity_percentile(
                        lists, self.popularity_counts[n_sp:])
        return out

    def ranks(self, score_fn, phase: str = "test", top_k: int = 0):
        """0-based rank of every user's held-out item: (U,) int64; with ``top_k`` > 0 also the
        top-k token lists (U, top_k) after masking (-1 where fewer candidates remain)."""
        x, pos, targets = self._contexts[phase]
        masks = self._masks[phase]
        out, tops = [], []
        for lo in range(0, x.shape[0], _CHUNK):
            rows = torch.arange(lo, min(lo + _CHUNK, x.shape[0]))
            scores = score_fn(phase, rows).detach().float().cpu().clone()
            r_idx = torch.cat([torch.full((len(masks[i]),), j) for j, i in enumerate(rows)])
            c_idx = torch.cat([masks[i] for i in rows])
            scores[r_idx, c_idx] = float("-inf")
            out.append(rank_targets(scores, targets[rows], self.tie_order))
            if top_k:
                # ties broken by the fixed item order, as the ranks are
                vals, idx = _topk_with_ties(scores, self.tie_order, min(top_k, scores.shape[1]))
                tops.append(torch.where(torch.isinf(vals) & (vals < 0), -1, idx))
        ranks = torch.cat(out)
        return (ranks, torch.cat(tops)) if top_k else ranks

    @torch.no_grad()
    def generator_scores(self, generator, phase: str, rows: torch.Tensor) -> torch.Tensor:
        """Next-item log-probabilities of users ``rows``: (len(rows), V) float."""
        x, pos, _ = self._contexts[phase]
        xb = x[rows].to(generator.device)
        logits = generator(xb)[torch.arange(len(rows), device=xb.device), pos[rows].to(xb.device)]
        return torch.log_softmax(logits.float(), dim=-1)

    # -- contract --------------------------------------------------------------------------
    def train_sequences(self) -> torch.Tensor:
        """Training windows: (N, max_len) int64."""
        return self._train

    def evaluate(self, generator, *, phase: str, epoch: int, final: bool = False) -> dict[str, Any]:
        """hr@K, ndcg@K (test) and val_hr@K, val_ndcg@K of the generator's next-item scores."""
        was_training = generator.training
        generator.eval()
        try:
            metrics = self._metrics_from_scores(
                lambda ph, rows: self.generator_scores(generator, ph, rows))
        finally:
            generator.train(was_training)
        if phase == "mle" and final:
            self.baselines["mle"] = dict(metrics)
            self._write_baselines()
        return metrics

    def per_user_values(self, metric: str, generator=None):
        """val_{hr,ndcg,mrr}@K per validation user (see Task.per_user_values)."""
        name, _, k = metric.removeprefix("val_").partition("@")
        if not metric.startswith("val_") or name not in RANK_METRICS or not k.isdigit():
            return None
        if generator is None:
            if self._last_val_ranks is None:
                raise RuntimeError("per_user_values(metric) needs an evaluation first")
            ranks = self._last_val_ranks
        else:
            was_training = generator.training
            generator.eval()
            try:
                ranks = self.ranks(lambda ph, rows: self.generator_scores(generator, ph, rows),
                                   "valid")
            finally:
                generator.train(was_training)
        return per_user_gain(name, ranks, int(k))

    def summary_extras(self) -> dict[str, Any]:
        if self.stats is None:
            return {}
        self._read_baselines()
        if "mle" not in self.baselines:
            log.warning("recsys: no final MLE evaluation was recorded; summary has no mle "
                        "baseline")
        return {"baselines": {k: dict(v) for k, v in self.baselines.items()},
                "protocol": self.protocol(),
                "data": {**self.stats.to_dict(), "max_len": self.cfg.max_len,
                         "vocab_size": self.vocab_size,
                         "training_windows": int(self._train.shape[0]),
                         "mask_history": self.cfg.mask_history,
                         "repeat_test_items": self.repeat_test_items}}

    def protocol(self) -> dict[str, Any]:
        """How the metrics were computed, for summary.json."""
        return {
            "split": "leave-one-out per user: last item test, second-last validation, the "
                     "rest training",
            "ranking": "full: every item is a candidate (special tokens never)",
            "history_mask": self.cfg.mask_history,
            "context": f"the last {self.cfg.max_len - 1} history items, teacher-forced from "
                       "<bos>",
            "ties": "a fixed random item order",
            "metrics": "hr, ndcg, mrr @K (test; val_ = validation); coverage@K, pop@K (mean "
                       "popularity percentile) of the test top-K lists",
            "K": list(self.cfg.topk),
            "baselines": "popularity, repeat (user's most frequent items), mle",
        }

    def save(self, run_dir: Path) -> None:
        """Write ``items.json`` (token -> item id, for decoding samples); remember the run folder
        so the MLE baseline survives a resume (``baselines.json``)."""
        run_dir = Path(run_dir)
        self.check_saved(run_dir)
        _write_json(run_dir / ITEMS_FILE, {"itos": self.vocab.itos})
        self._run_dir = run_dir
        self._read_baselines()
        self._write_baselines()

    def check_saved(self, run_dir: Path) -> None:
        """On a resume, the interaction file must still give the saved ``items.json``."""
        path = Path(run_dir) / ITEMS_FILE
        if not path.is_file():
            return
        try:
            itos = json.loads(path.read_text(encoding="utf-8"))["itos"]
        except (ValueError, KeyError, TypeError, OSError):
            itos = None
        check_same_vocabulary(Path(run_dir), path, itos, self.vocab.itos,
                              getattr(self, "data_path", self.cfg.data))

    def _read_baselines(self) -> None:
        if self._run_dir is None or "mle" in self.baselines:
            return
        path = self._run_dir / BASELINES_FILE
        if path.is_file():
            try:
                saved = json.loads(path.read_text())
            except ValueError:
                log.warning("%s: unreadable; ignoring", path)
                return
            if isinstance(saved.get("mle"), dict):
                self.baselines["mle"] = saved["mle"]

    def _write_baselines(self) -> None:
        if self._run_dir is not None:
            _write_json(self._run_dir / BASELINES_FILE, self.baselines)

    def decode(self, tokens: torch.Tensor) -> list[str]:
        """Item ids of (N, T) tokens, space-separated, cut at the first <pad>."""
        out = []
        for row in tokens.detach().cpu().tolist():
            items = []
            for t in row:
                if t == PAD:
                    break
                items.append(self.vocab.itos[t] if 0 <= t < len(self.vocab) else "?")
            out.append(" ".join(items))
        return out

    @classmethod
    def load(cls, run_dir: Path, cfg: TrainConfig) -> RecsysTask:
        """Decoding-only task from a run folder's items.json (no interaction file needed)."""
        path = Path(run_dir) / ITEMS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: the run folder has no item vocabulary")
        try:
            itos = json.loads(path.read_text(encoding="utf-8"))["itos"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a readable item vocabulary ({exc})") from None
        task = cls.__new__(cls)
        task.cfg = cfg
        task._setup_shape(cfg)
        task.vocab = ItemVocab(itos)
        task.vocab_size = len(task.vocab)
        task.stats = None
        task.baselines = {}
        task._run_dir = Path(run_dir)
        return task


def _topk_with_ties(scores: torch.Tensor, tie_order: torch.Tensor, k: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.topk with equal scores ordered by ``tie_order`` (lower first), as rank_targets
    breaks them: sort by (score desc, tie_order asc)."""
    order = torch.argsort(tie_order)  # items in tie order
    s = scores[:, order]
    vals, pos = torch.sort(s, dim=1, descending=True, stable=True)
    return vals[:, :k], order[pos[:, :k]]


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
