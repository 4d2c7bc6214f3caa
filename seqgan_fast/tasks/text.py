"""Real text: one sentence per line (COCO captions, Chinese poems, or your own file).

Sequences follow data/text.py's scheme: ``<pad>`` (0) ends and pads a sentence to ``max_len``,
``<unk>`` (1) stands for rare/unknown tokens, ``<bos>`` (2) is the start token. The sequence
length is ``cfg.max_len`` (``cfg.seq_len`` is ignored for text; the presets set both).

Metrics: ``nll_test`` = the generator's mean per-token NLL (nats) of the encoded test file (all
``max_len`` positions, end/padding tokens included, as the text-GAN benchmarks' NLL-test);
``bleu2``..``bleu5`` = mean sentence BLEU (smoothing method 1) of ``num_eval`` generated
sentences against the whole test file as references (the untruncated test token lists; the
training file when no test file is given); ``self_bleu2``..``self_bleu5`` of the first
``SELF_BLEU_SAMPLES`` of those sentences against each other. The same sampling seed is used at
every evaluation so that curves compare models, not sample noise.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError, TrainConfig
from ..data.text import (
    BOS,
    PAD,
    TOKENIZERS,
    DataError,
    EncodeStats,
    Vocab,
    count_tokens,
    detokenize,
    encode_file,
    resolve_data_path,
)
from ..metrics import BleuReferences, self_bleu_scores
from ..parallel.distributed import active
from ..train.draws import sample_in_chunks
from .base import Task, check_same_vocabulary

log = logging.getLogger(__name__)

BLEU_ORDERS = (2, 3, 4, 5)
SELF_BLEU_SAMPLES = 500   # self-BLEU is O(total length) here, but its value grows with the
                          # sample count; a fixed cap keeps it comparable across num_eval
VOCAB_FILE = "vocab.json"


def task_seed(seed: int, stream: str) -> int:
    """A 63-bit seed derived from (seed, stream name): independent of Python's hash salt."""
    digest = hashlib.blake2b(f"{seed}/{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class TextTask(Task):
    """Sentences from ``cfg.data`` (and ``cfg.test_data``); see the module docstring."""

    name = "text"
    pad_token = PAD

    def __init__(self, cfg: TrainConfig) -> None:
        if cfg.tokenize not in TOKENIZERS:
            raise ConfigError(f"bad value {cfg.tokenize!r} for tokenize: choose from "
                              f"{', '.join(TOKENIZERS)}")
        if cfg.max_len < 1 or cfg.min_count < 1:
            raise ConfigError("max_len and min_count must be >= 1")
        if cfg.data in ("", "oracle"):
            raise ConfigError("task text needs --data PATH (a text file, one sentence per line)")
        self.cfg = cfg
        self._setup_shape(cfg)
        path = resolve_data_path(cfg.data, "training")
        self.data_path = path
        counts = count_tokens(path, cfg.tokenize)
        if counts and max(counts.values()) < cfg.min_count:
            raise ConfigError(f"bad value {cfg.min_count} for min_count: above every token's "
                              f"count in {path} (the most frequent occurs "
                              f"{max(counts.values())} times), so every token would be <unk>")
        self.vocab = Vocab.from_counts(counts, cfg.min_count, cfg.tokenize)
        self.vocab_size = len(self.vocab)
        rare = sum(1 for c in counts.values() if c < cfg.min_count)
        self._train, self.train_stats, train_tokens = encode_file(
            path, self.vocab, cfg.max_len, cfg.tokenize, keep_tokens=cfg.test_data is None)
        self._test: torch.Tensor | None = None
        self.test_stats: EncodeStats | None = None
        if cfg.test_data:
            test_path = resolve_data_path(cfg.test_data, "test")
            self._test, self.test_stats, refs = encode_file(
                test_path, self.vocab, cfg.max_len, cfg.tokenize, keep_tokens=True)
            self.bleu_references = "test"
        else:
            refs = train_tokens
            self.bleu_references = "train"
            log.warning("text: no test_data given; BLEU uses the training sentences as "
                        "references and nll_test is not computed")
        self._refs = BleuReferences(refs, max(BLEU_ORDERS))
        del refs, train_tokens
        log.info("text: %s: %d sentences, vocabulary %d (%d specials; %d token types rarer than "
                 "min_count=%d -> <unk>), length mean %.1f max %d, %d truncated to max_len=%d",
                 path, self.train_stats.sequences, self.vocab_size, 3, rare, cfg.min_count,
                 self.train_stats.mean_length, self.train_stats.max_length,
                 self.train_stats.truncated, cfg.max_len)

    def _setup_shape(self, cfg: TrainConfig) -> None:
        self.seq_len = cfg.max_len
        self.start_token = BOS
        if cfg.seq_len != cfg.max_len:
            log.info("text: sequence length is max_len=%d (seq_len=%d ignored)",
                     cfg.max_len, cfg.seq_len)

    # -- contract --------------------------------------------------------------------------
    def train_sequences(self) -> torch.Tensor:
        """Encoded training sentences: (N, max_len) int64."""
        return self._train

    def test_sequences(self) -> torch.Tensor | None:
        """Encoded test sentences (N_test, max_len) int64, or None without a test file."""
        return self._test

    def decode_tokens(self, tokens: torch.Tensor) -> list[list[str]]:
        """Token lists of (N, T) ids, each cut at its first <pad>."""
        return [self.vocab.decode_ids(row) for row in tokens.detach().cpu().tolist()]

    def decode(self, tokens: torch.Tensor) -> list[str]:
        """Text of (N, T) ids: cut at the first <pad>, joined as the tokeniser splits."""
        return [detokenize(t, self.vocab.tokenize) for t in self.decode_tokens(tokens)]

    def evaluate(self, generator, *, phase: str, epoch: int, final: bool = False) -> dict[str, Any]:
        """nll_test, bleu2..5 and self_bleu2..5 of ``num_eval`` samples (see module doc)."""
        cfg = self.cfg
        if self._refs is None:
            raise RuntimeError("this text task was loaded from a run folder for decoding only; "
                               "build it with TextTask(cfg) to evaluate")
        world = active()  # data-parallel: NLL and BLEU over each rank's share, then summed
        metrics: dict[str, Any] = {}
        if self._test is not None:
            if world is None:
                metrics["nll_test"] = generator.nll(self._test)
            else:
                a, b = world.shard(self._test.shape[0])
                part = self._test[a:b]
                metrics["nll_test"] = world.mean(generator.nll(part) if b > a else 0.0,
                                                 part.numel())
        x = sample_in_chunks(generator, cfg.num_eval, task_seed(cfg.seed, "text-eval"),
                             cfg.backend, temperature=cfg.temperature)
        hyps = self.decode_tokens(x)
        if world is None:
            bleu = self._refs.scores(hyps, BLEU_ORDERS)
        else:
            lo, hi = world.shard(len(hyps))
            mine = self._refs.scores(hyps[lo:hi], BLEU_ORDERS) if hi > lo else {}
            bleu = {n: world.mean(mine.get(n, 0.0), hi - lo) for n in BLEU_ORDERS}
        for n, v in bleu.items():
            metrics[f"bleu{n}"] = v
        subset = hyps[:SELF_BLEU_SAMPLES]
        if len(subset) >= 2:
            for n, v in self_bleu_scores(subset, BLEU_ORDERS).items():
                metrics[f"self_bleu{n}"] = v
        metrics["mean_length"] = sum(map(len, hyps)) / max(len(hyps), 1)
        return metrics

    def summary_extras(self) -> dict[str, Any]:
        if self.train_stats is None:
            return {}
        data: dict[str, Any] = {
            "vocab_size": self.vocab_size, "tokenize": self.cfg.tokenize,
            "min_count": self.cfg.min_count, "max_len": self.cfg.max_len,
            "bleu_references": self.bleu_references,
            "self_bleu_samples": min(self.cfg.num_eval, SELF_BLEU_SAMPLES),
            "train": self.train_stats.to_dict(),
        }
        if self.test_stats is not None:
            data["test"] = self.test_stats.to_dict()
        return {"data": data}

    def save(self, run_dir: Path) -> None:
        """Write ``vocab.json`` (what ``load`` needs to decode samples); on a resume, refuse
        (``check_saved``) if the data no longer give the saved vocabulary."""
        self.check_saved(run_dir)
        self.vocab.save(Path(run_dir) / VOCAB_FILE)

    def check_saved(self, run_dir: Path) -> None:
        path = Path(run_dir) / VOCAB_FILE
        if not path.is_file():
            return
        try:
            saved = Vocab.load(path)
            itos = saved.itos if saved.tokenize == self.vocab.tokenize else None
        except DataError:
            itos = None
        check_same_vocabulary(Path(run_dir), path, itos, self.vocab.itos,
                              getattr(self, "data_path", self.cfg.data))

    @classmethod
    def load(cls, run_dir: Path, cfg: TrainConfig) -> TextTask:
        """Decoding-only task from a run folder's vocab.json (no training data needed);
        ``train_sequences``/``evaluate`` are unavailable on it."""
        path = Path(run_dir) / VOCAB_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: the run folder has no vocabulary")
        task = cls.__new__(cls)
        task.cfg = cfg
        task._setup_shape(cfg)
        task.vocab = Vocab.load(path)
        task.vocab_size = len(task.vocab)
        task._train = task._test = None
        task.train_stats = task.test_stats = None
        task.bleu_references = "none"
        task._refs = None
        return task
