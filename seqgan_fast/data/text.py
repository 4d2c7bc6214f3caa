"""Text data: tokenisation, vocabulary and fixed-length encoding of one-sequence-per-line files.

Token scheme (ids fixed for every text vocabulary):

* ``<pad>`` = 0 ends a sentence and pads it to ``max_len``: a sentence of L < max_len tokens is
  encoded as its L ids followed by max_len - L pads, so the generator learns to emit <pad> to
  stop (and <pad> after <pad>). The first <pad> ends a sequence when decoding. A sentence of
  exactly max_len tokens (or a truncated one) has no end marker.
* ``<unk>`` = 1 stands for tokens rarer than ``min_count`` in the training file and for tokens
  of other files that the training file does not have.
* ``<bos>`` = 2 is the generator's start token, fed before position 0; it never occurs inside
  an encoded sequence.

Tokenisers: ``word`` splits on whitespace and splits punctuation off words (``"wheel."`` ->
``wheel``, ``.``; apostrophes inside a word stay: ``it's``), which reproduces the text-GAN
benchmarks' image_coco setting (max 37 tokens); ``space`` splits on whitespace only; ``char``
makes every non-whitespace character a token and drops whitespace (for scripts without word
spaces, e.g. Chinese, and files that space-separate characters). Lines longer than ``max_len``
tokens are truncated to their first ``max_len`` tokens; how many is counted, logged and
reported. Blank lines are skipped (counted). The names ``<pad>`` and ``<bos>`` as tokens (only
``space`` can produce them) are refused with the file and line, since they would become control
ids inside a sentence; a literal ``<unk>`` is read as the unknown token. Files are read line by
line as UTF-8 (a leading BOM is ignored); invalid bytes raise ``DataError`` naming the file and
line.
"""
from __future__ import annotations

import json
import logging
import os
import re
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .paths import ENV_VAR, data_dir

log = logging.getLogger(__name__)

PAD, UNK, BOS = 0, 1, 2
SPECIALS = ("<pad>", "<unk>", "<bos>")
TOKENIZERS = ("word", "space", "char")
# Specials that are control ids (end/padding, start), never data: a line holding one of their
# names as a token (possible with tokenize=space) is refused. A literal <unk> is read as the
# unknown token, as in corpora that mark rare words so (e.g. Penn Treebank).
CONTROL_TOKENS = (SPECIALS[PAD], SPECIALS[BOS])
_WORD_RE = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")


def resolve_data_path(path: str | os.PathLike, what: str = "data") -> Path:
    """``path`` as given if it exists, else (when relative) under the shared data folder.

    Presets store names relative to ``data_dir()`` (e.g. ``text/coco_train.txt``).
    """
    p = Path(path).expanduser()
    if p.exists():
        return _not_a_directory(p.resolve(), what)
    if not p.is_absolute():
        q = data_dir() / p
        if q.exists():
            return _not_a_directory(q, what)
        raise FileNotFoundError(
            f"{what} file not found: {p} (also looked in {q}; set {ENV_VAR} to the shared "
            f"data folder)")
    raise FileNotFoundError(f"{what} file not found: {p}")


def _not_a_directory(p: Path, what: str) -> Path:
    if p.is_dir():
        raise DataError(f"{what} file {p} is a directory; give a file")
    return p


def tokenize(line: str, mode: str = "word") -> list[str]:
    """Tokens of one line (see the module docstring for the modes)."""
    if mode == "word":
        return _WORD_RE.findall(line)
    if mode == "space":
        return line.split()
    if mode == "char":
        return [ch for ch in line if not ch.isspace()]
    raise ValueError(f"unknown tokenize mode {mode!r}; choose from {', '.join(TOKENIZERS)}")


def detokenize(tokens: Sequence[str], mode: str = "word") -> str:
    return "".join(tokens) if mode == "char" else " ".join(tokens)


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) for every line of a UTF-8 file, streamed."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a text file")
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                    f"{exc.start + 1}); convert the file to UTF-8") from None
            if lineno == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield lineno, text.rstrip("\r\n")


def check_control_tokens(path: str | os.PathLike, lineno: int, toks: Sequence[str]) -> None:
    """DataError naming the file and line if ``toks`` holds the name of a control special
    (``<pad>``, ``<bos>``): encoded, it would become the end or start id inside a sentence."""
    for name in CONTROL_TOKENS:
        if name in toks:
            role = "end/padding" if name == SPECIALS[PAD] else "start"
            raise DataError(f"{path}:{lineno}: the token {name} is the name of a special token "
                            f"(the {role} id), so it cannot be text; rename it in the file")


def iter_tokenized(path: str | os.PathLike, mode: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, tokens) of the non-blank lines of ``path``; a control special's name as
    a token raises DataError (check_control_tokens)."""
    for lineno, text in iter_lines(path):
        toks = tokenize(text, mode)
        if toks:
            check_control_tokens(path, lineno, toks)
            yield lineno, toks


class Vocab:
    """Token <-> id map: the specials (ids 0, 1, 2), then tokens by falling count, then text."""

    def __init__(self, itos: Sequence[str], tokenize: str = "word") -> None:
        if tuple(itos[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}")
        self.itos = list(itos)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary has duplicate tokens")
        self.tokenize = tokenize

    @classmethod
    def from_counts(cls, counts: Counter, min_count: int = 1, tokenize: str = "word") -> Vocab:
        kept = sorted((t for t, c in counts.items() if c >= min_count and t not in SPECIALS),
                      key=lambda t: (-counts[t], t))
        return cls(list(SPECIALS) + kept, tokenize)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.stoi.get(t, UNK) for t in tokens]

    def decode_ids(self, ids: Sequence[int]) -> list[str]:
        """Tokens up to the first <pad> (the end marker); <bos> inside is shown as is."""
        out = []
        for i in ids:
            i = int(i)
            if i == PAD:
                break
            out.append(self.itos[i] if 0 <= i < len(self.itos) else "<unk>")
        return out

    def to_dict(self) -> dict:
        return {"tokenize": self.tokenize, "specials": list(SPECIALS), "itos": self.itos}

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON atomically (temp file + rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocab:
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(d["itos"], d.get("tokenize", "word"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not a readable vocabulary file ({exc})") from None


@dataclass
class EncodeStats:
    """What happened to a file while encoding it."""
    path: str
    sequences: int = 0
    blank_lines: int = 0
    truncated: int = 0
    truncated_lines: list[int] = field(default_factory=list)  # first few line numbers
    tokens: int = 0            # before truncation
    unk_tokens: int = 0        # after truncation
    max_length: int = 0
    mean_length: float = 0.0
    length_quantiles: dict[str, int] = field(default_factory=dict)  # p50/p90/p99

    def to_dict(self) -> dict:
        return asdict(self)


def count_tokens(path: str | os.PathLike, mode: str) -> Counter:
    """Token counts of a file (one streaming pass); DataError if it has no tokens."""
    counts: Counter = Counter()
    for _, toks in iter_tokenized(path, mode):
        counts.update(toks)
    if not counts:
        raise DataError(f"{path}: no sequences (the file is empty or blank)")
    return counts


def encode_file(path: str | os.PathLike, vocab: Vocab, max_len: int, mode: str,
                keep_tokens: bool = False) -> tuple[torch.Tensor, EncodeStats, list[list[str]]]:
    """Encode every non-blank line: ((N, max_len) int64, stats, token lists if keep_tokens).

    Streams the file; only the encoded ids (and, with keep_tokens, the untruncated token lists,
    e.g. BLEU references) are kept.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    stats = EncodeStats(path=str(path))
    flat = array("l")  # max_len ids per sequence, appended as we go
    lengths = array("l")
    kept: list[list[str]] = []
    last = 0
    for lineno, text in iter_lines(path):
        last = lineno
        toks = tokenize(text, mode)
        if not toks:
            stats.blank_lines += 1
            continue
        check_control_tokens(path, lineno, toks)
        if keep_tokens:
            kept.append(toks)
        lengths.append(len(toks))
        if len(toks) > max_len:
            stats.truncated += 1
            if len(stats.truncated_lines) < 5:
                stats.truncated_lines.append(lineno)
            toks = toks[:max_len]
        enc = vocab.encode(toks)
        flat.extend(enc)
        flat.extend([PAD] * (max_len - len(enc)))
        stats.unk_tokens += enc.count(UNK)
    if not lengths:
        raise DataError(f"{path}: no sequences ({last} lines, all blank)" if last
                        else f"{path}: the file is empty")
    lens = np.frombuffer(lengths, dtype=lengths.typecode)
    stats.sequences = len(lens)
    stats.tokens = int(lens.sum())
    stats.max_length = int(lens.max())
    stats.mean_length = round(float(lens.mean()), 3)
    stats.length_quantiles = {f"p{q}": int(np.percentile(lens, q)) for q in (50, 90, 99)}
    if stats.truncated:
        log.warning("%s: %d of %d sequences are longer than max_len=%d and were truncated "
                    "(first at lines %s)", path, stats.truncated, stats.sequences, max_len,
                    stats.truncated_lines)
    x = torch.from_numpy(np.frombuffer(flat, dtype=flat.typecode).astype(np.int64))
    x = x.view(-1, max_len)
    return x, stats, kept


__all__ = ["PAD", "UNK", "BOS", "SPECIALS", "TOKENIZERS", "DataError", "Vocab", "EncodeStats",
           "tokenize", "detokenize", "iter_lines", "iter_tokenized", "check_control_tokens",
           "count_tokens", "encode_file", "resolve_data_path"]
