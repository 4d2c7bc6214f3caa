"""The paper's synthetic task: an oracle LSTM generates the "real" data and judges samples.

``data="oracle"`` with ``oracle_params=None`` draws a seeded N(0, 1) oracle
(``Oracle(vocab_size, g_emb_dim, g_hidden_dim, seq_len, seed=oracle_seed)``);
``oracle_params=PATH`` loads the reference code's weights (``Oracle.from_npz``).
Metrics: ``nll_oracle`` = the oracle's mean per-token NLL of ``num_eval`` generator samples
(paper's NLL_oracle) and, if ``num_test > 0``, ``nll_test`` = the generator's NLL of
``num_test`` held-out oracle samples.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError, TrainConfig
from ..models import Oracle
from ..parallel.distributed import active
from ..train.draws import draw_seed, sample_in_chunks, sample_rows
from .base import Task

log = logging.getLogger(__name__)

# Seed streams of the oracle task (fixed per oracle_seed: the data do not depend on cfg.seed).
_STREAM_TRAIN, _STREAM_TEST, _STREAM_EVAL = 101, 102, 103


class OracleTask(Task):
    """Synthetic data from an oracle LSTM; see the module docstring."""

    name = "oracle"

    def __init__(self, cfg: TrainConfig) -> None:
        if cfg.data != "oracle":
            raise ConfigError(f"task oracle needs data=oracle, got data={cfg.data!r}")
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        if cfg.oracle_params:
            path = Path(cfg.oracle_params)
            if not path.is_file():
                raise FileNotFoundError(f"oracle parameter file not found: {path}")
            self.oracle = Oracle.from_npz(path, seq_len=cfg.seq_len)
            if self.oracle.vocab_size != cfg.vocab_size:
                log.info("oracle %s has vocab_size %d (config said %d); using the file's",
                         path, self.oracle.vocab_size, cfg.vocab_size)
        else:
            self.oracle = Oracle(cfg.vocab_size, cfg.g_emb_dim, cfg.g_hidden_dim, cfg.seq_len,
                                 seed=cfg.oracle_seed)
        self.oracle.to(self.device)
        self.vocab_size = self.oracle.vocab_size
        self.seq_len = cfg.seq_len
        self.start_token = self.oracle.start_token
        self._train: torch.Tensor | None = None
        self._test: torch.Tensor | None = None

    def _seed(self, stream: int) -> int:
        return draw_seed(self.cfg.oracle_seed, stream, 0)

    def train_sequences(self) -> torch.Tensor:
        """``num_train`` oracle samples (fixed seed): (num_train, seq_len) int64."""
        if self._train is None:
            self._train = sample_in_chunks(self.oracle, self.cfg.num_train,
                                           self._seed(_STREAM_TRAIN), self.cfg.backend)
        return self._train

    def test_sequences(self) -> torch.Tensor:
        """``num_test`` held-out oracle samples: (num_test, seq_len) int64."""
        if self._test is None:
            self._test = sample_in_chunks(self.oracle, self.cfg.num_test,
                                          self._seed(_STREAM_TEST), self.cfg.backend)
        return self._test

    def evaluate(self, generator, *, phase: str, epoch: int, final: bool = False) -> dict[str, Any]:
        """NLL_oracle of ``num_eval`` generator samples (the same seed at every evaluation,
        so curves compare models, not sample noise); ``nll_test`` if ``num_test > 0``.
        Data-parallel: each rank draws and scores its share of the rows; the NLLs are summed."""
        world = active()
        if world is None:
            x = sample_in_chunks(generator, self.cfg.num_eval, self._seed(_STREAM_EVAL),
                                 self.cfg.backend)
            metrics: dict[str, Any] = {"nll_oracle": self.oracle.nll(x)}
            if self.cfg.num_test > 0:
                metrics["nll_test"] = generator.nll(self.test_sequences())
            return metrics
        lo, hi = world.shard(self.cfg.num_eval)
        x = sample_rows(generator, lo, hi, self._seed(_STREAM_EVAL), self.cfg.backend)
        metrics = {"nll_oracle": world.mean(self.oracle.nll(x) if hi > lo else 0.0, x.numel())}
        if self.cfg.num_test > 0:
            test = self.test_sequences()
            a, b = world.shard(test.shape[0])
            metrics["nll_test"] = world.mean(generator.nll(test[a:b]) if b > a else 0.0,
                                             test[a:b].numel())
        return metrics

    def summary_extras(self) -> dict[str, Any]:
        return {"oracle": self.cfg.oracle_params or f"seeded N(0,1), seed {self.cfg.oracle_seed}"}

    @classmethod
    def load(cls, run_dir: Path, cfg: TrainConfig) -> OracleTask:
        return cls(cfg)
