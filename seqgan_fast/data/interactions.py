"""Interaction files -> per-user chronological item sequences -> leave-one-out split.

Formats:

* RecBole atomic ``.inter``: tab-separated, header fields ``name:type``
  (``user_id:token	item_id:token	rating:float	timestamp:float``); the ``:type`` suffix is
  dropped from the column names after checking the chosen columns' types: user and item
  ``:token``, order (timestamp) ``:float`` (a field without a suffix is taken as it is).
* CSV (``.csv``; ``.tsv`` or a tab in the header line means tab-separated) with a header of
  named columns, e.g. Instacart's ``user_id, order_number, add_to_cart_order, product_id``.
* One user per line (``.txt``), ``user item1 item2 ...`` separated by white space, the items
  in chronological order: the format of the S3-Rec authors' preprocessed Amazon files (Zhou et
  al., CIKM 2020). No header; a user on two lines, or a line with a user and no item, is an
  error naming the line; ``columns`` does not apply.

Columns: ``columns="USER,ITEM[,ORDER...]"`` names them; otherwise they are auto-detected: user
from ``user_id, user, userid, customer_id, visitor_id``, item from ``item_id, product_id,
item, itemid, movie_id, song_id, book_id``, order from ``timestamp`` (or ``time``, ``ts``),
else ``order_number`` then ``add_to_cart_order`` when present; the named columns must be
different. A field the csv module cannot read (e.g. over its 131,072-character limit) raises
DataError with file and line. Order columns must be numbers
(a bad one raises DataError with file and line); rows with equal keys keep their file order;
with no order column the file order is the chronology. User and item ids are opaque strings.

Filtering and split (documented choices): items seen fewer than ``min_count`` times in the whole
file are dropped from every sequence (one pass, as RecBole's item filter); then users with fewer
than 3 interactions are skipped and counted (a user needs a training prefix, a validation item
and a test item). Leave-one-out: the last item is the test item, the second-last the validation
item, the rest the training prefix.
"""
from __future__ import annotations

import csv
import logging
import math
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .text import DataError, iter_lines

log = logging.getLogger(__name__)

PAD, BOS = 0, 1
ITEM_SPECIALS = ("<pad>", "<bos>")
MIN_INTERACTIONS = 3

USER_NAMES = ("user_id", "user", "userid", "customer_id", "visitor_id", "visitorid")
ITEM_NAMES = ("item_id", "product_id", "item", "itemid", "movie_id", "song_id", "book_id")
TIME_NAMES = ("timestamp", "time", "ts")


@dataclass
class InteractionStats:
    path: str
    rows: int = 0
    users: int = 0
    items: int = 0                 # distinct items kept (min_count)
    items_dropped: int = 0         # distinct items rarer than min_count
    interactions_dropped: int = 0  # rows of those items
    users_skipped: int = 0         # users with < 3 interactions after the item filter
    interactions: int = 0          # kept, in kept users
    columns: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Interactions:
    """Per-user item sequences in chronological order: ``users[i]`` has ``sequences[i]``."""
    users: list[str]
    sequences: list[list[str]]
    stats: InteractionStats


def _choose_columns(header: list[str], spec: str | None, path: Path) -> tuple[int, int, list[int]]:
    index = {name: i for i, name in enumerate(header)}

    def need(name: str) -> int:
        if name not in index:
            raise DataError(f"{path}: no column {name!r}; the header has {header}")
        return index[name]

    if spec:
        names = [s.strip() for s in spec.split(",") if s.strip()]
        if len(names) < 2:
            raise DataError(f"columns={spec!r}: expected 'USER,ITEM[,ORDER...]'")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise DataError(f"columns={spec!r}: column(s) {dupes} named twice; the user, item "
                            "and order columns must be different columns")
        return need(names[0]), need(names[1]), [need(n) for n in names[2:]]

    def find(cands: Sequence[str], what: str) -> int:
        for c in cands:
            if c in index:
                return index[c]
        raise DataError(f"{path}: no {what} column (looked for {', '.join(cands)}); the header "
                        f"has {header}; name the columns with --set columns=USER,ITEM[,ORDER]")

    user, item = find(USER_NAMES, "user"), find(ITEM_NAMES, "item")
    order = [index[c] for c in TIME_NAMES if c in index][:1]
    if not order and "order_number" in index:
        order = [index["order_number"]]
        if "add_to_cart_order" in index:
            order.append(index["add_to_cart_order"])
    return user, item, order


# RecBole's atomic-file types the chosen columns must have (a field without a ``:type`` suffix
# is taken as it is): ids are tokens, the order keys numbers.
_ID_TYPE, _ORDER_TYPE = "token", "float"


def _check_inter_types(path: Path, header: list[str], types: Sequence[str | None], u_col: int,
                       i_col: int, o_cols: Sequence[int]) -> None:
    """A RecBole ``.inter`` header's ``name:type`` suffixes of the chosen columns: the user
    and item ``:token``, order (timestamp) columns ``:float``; DataError names the field."""
    wanted = [(u_col, _ID_TYPE, "user"), (i_col, _ID_TYPE, "item")]
    wanted += [(c, _ORDER_TYPE, "order (timestamp)") for c in o_cols]
    for col, want, role in wanted:
        have = types[col]
        if have is not None and have != want:
            raise DataError(f"{path}:1: header field '{header[col]}:{have}' is the {role} "
                            f"column, which must be of type :{want} (RecBole atomic files: "
                            f"'{header[col]}:{want}')")


def _csv_error(path: Path, lineno: int, exc: csv.Error) -> DataError:
    msg = str(exc)
    if "field larger than field limit" in msg:
        msg = (f"a field longer than {csv.field_size_limit():,} characters (a missing "
               "closing quote, or not an interaction file?)")
    return DataError(f"{path}:{lineno}: unreadable as CSV: {msg}")


def _csv_rows(reader, path: Path):
    """The rows of a csv reader (over the lines after the header); a csv.Error (e.g. a field
    over the csv module's limit) becomes one DataError naming the file and line."""
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _csv_error(path, reader.line_num + 1, exc) from None
        yield fields


def read_interactions(path: str | os.PathLike, columns: str | None = None,
                      min_count: int = 1, min_interactions: int = MIN_INTERACTIONS
                      ) -> Interactions:
    """Parse, order, filter (see module docstring). Streams the file once.
    ``min_interactions``: users with fewer kept interactions are skipped (training needs 3;
    serving recommendations, ``seqgan-fast recommend``, takes every user with one)."""
    path = Path(path)
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    if min_interactions < 1:
        raise ValueError(f"min_interactions must be >= 1, got {min_interactions}")
    if path.suffix.lower() == ".txt":
        per_user, counts, rows, names = _read_user_lines(path, columns)
    else:
        per_user, counts, rows, names = _read_table(path, columns)
    return _sequences(path, per_user, counts, rows, names, min_count, min_interactions)


def _read_user_lines(path: Path, columns: str | None):
    """``user item1 item2 ...`` lines (see the module docstring): per user its (row, item)
    events in file order, the item counts, the number of interactions, the column names."""
    if columns:
        raise DataError(f"{path}: columns={columns!r} does not apply to a 'user item1 item2 "
                        "...' file (one user per line)")
    per_user: dict[str, list[tuple]] = {}
    first_line: dict[str, int] = {}
    counts: Counter = Counter()
    rows = 0
    for lineno, text in iter_lines(path):
        fields = text.split()
        if not fields:
            continue
        user, items = fields[0], fields[1:]
        if not items:
            raise DataError(f"{path}:{lineno}: user {user!r:.40} has no items; expected "
                            "'user item1 item2 ...' (one user per line)")
        if user in per_user:
            raise DataError(f"{path}:{lineno}: user {user!r:.40} again (first at line "
                            f"{first_line[user]}); one line per user")
        first_line[user] = lineno
        per_user[user] = [(rows + k, item) for k, item in enumerate(items)]
        counts.update(items)
        rows += len(items)
    if rows == 0:
        raise DataError(f"{path}: the file is empty")
    return per_user, counts, rows, {"user": "user", "item": "item", "order": ["line order"]}


def _read_table(path: Path, columns: str | None):
    """A ``.inter`` / CSV table (see the module docstring): per user its (order keys..., row,
    item) events, the item counts, the number of rows, the column names."""
    lines = (text for _, text in iter_lines(path))
    try:
        first = next(lines)
    except StopIteration:
        raise DataError(f"{path}: the file is empty") from None
    is_tab = path.suffix in (".inter", ".tsv") or ("\t" in first and path.suffix != ".csv")
    delim = "\t" if is_tab else ","
    try:
        fields = next(csv.reader([first], delimiter=delim))
    except csv.Error as exc:
        raise _csv_error(path, 1, exc) from None
    types: list[str | None] = [None] * len(fields)
    if path.suffix == ".inter":
        split = [h.split(":", 1) for h in fields]
        fields = [h[0] for h in split]
        types = [h[1].strip() if len(h) > 1 else None for h in split]
    header = [h.strip() for h in fields]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{path}:1: duplicate column name(s) {dupes} in the header")
    u_col, i_col, o_cols = _choose_columns(header, columns, path)
    _check_inter_types(path, header, types, u_col, i_col, o_cols)
    names = {"user": header[u_col], "item": header[i_col], "order": [header[c] for c in o_cols]}
    if not o_cols:
        log.info("%s: no timestamp/order column; using the file order as the chronology", path)

    per_user: dict[str, list[tuple]] = defaultdict(list)
    counts: Counter = Counter()
    reader = csv.reader(lines, delimiter=delim)
    rows = 0
    for fields in _csv_rows(reader, path):
        lineno = reader.line_num + 1  # +1: the header line was consumed before
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        if len(fields) != len(header):
            raise DataError(f"{path}:{lineno}: {len(fields)} fields, the header has "
                            f"{len(header)}")
        user, item = fields[u_col].strip(), fields[i_col].strip()
        if not user or not item:
            raise DataError(f"{path}:{lineno}: empty {'user' if not user else 'item'} id")
        keys = []
        for c in o_cols:
            raw = fields[c].strip()
            try:
                v = float(raw)
            except ValueError:
                v = math.nan
            if not math.isfinite(v):
                raise DataError(f"{path}:{lineno}: column {header[c]!r} must be a number, "
                                f"got {raw!r}")
            keys.append(v)
        per_user[user].append((*keys, rows, item))
        counts[item] += 1
        rows += 1
    if rows == 0:
        raise DataError(f"{path}: no interactions (only a header)")
    return per_user, counts, rows, names


def _sequences(path: Path, per_user: dict[str, list[tuple]], counts: Counter, rows: int,
               names: dict, min_count: int, min_interactions: int) -> Interactions:
    """Order each user's events, drop rare items, skip short users (module docstring)."""
    stats = InteractionStats(path=str(path), rows=rows, columns=names)
    rare = {it for it, c in counts.items() if c < min_count}
    if len(rare) == len(counts):
        raise DataError(f"{path}: min_count={min_count} is above every item's count (the most "
                        f"frequent item occurs {max(counts.values())} times): no item is kept")
    stats.items_dropped = len(rare)
    stats.interactions_dropped = sum(counts[it] for it in rare)
    users, seqs = [], []
    kept_items: set[str] = set()
    for user, events in per_user.items():
        events.sort(key=lambda e: e[:-1])
        seq = [e[-1] for e in events if e[-1] not in rare]
        if len(seq) < min_interactions:
            stats.users_skipped += 1
            continue
        users.append(user)
        seqs.append(seq)
        kept_items.update(seq)
    if not users:
        raise DataError(f"{path}: no user has {min_interactions} or more interactions "
                        f"(after dropping items rarer than min_count={min_count})")
    stats.users = len(users)
    stats.items = len(kept_items)
    stats.interactions = sum(map(len, seqs))
    if stats.users_skipped:
        log.info("%s: skipped %d users with fewer than %d interactions", path,
                 stats.users_skipped, min_interactions)
    return Interactions(users, seqs, stats)


class ItemVocab:
    """Item id (string) <-> token: ``<pad>`` = 0 (end/padding), ``<bos>`` = 1 (start token),
    then items by falling frequency (ties by id)."""

    def __init__(self, itos: Sequence[str]) -> None:
        if tuple(itos[: len(ITEM_SPECIALS)]) != ITEM_SPECIALS:
            raise ValueError(f"an item vocabulary must start with {ITEM_SPECIALS}")
        self.itos = list(itos)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def from_sequences(cls, seqs: Sequence[Sequence[str]]) -> ItemVocab:
        counts = Counter(it for s in seqs for it in s)
        return cls(list(ITEM_SPECIALS) + sorted(counts, key=lambda t: (-counts[t], t)))

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def num_specials(self) -> int:
        return len(ITEM_SPECIALS)

    def encode(self, items: Sequence[str]) -> list[int]:
        return [self.stoi[it] for it in items]


@dataclass
class LeaveOneOut:
    """Encoded split: per user, the training prefix, the validation item and the test item."""
    train: list[list[int]]
    valid: list[int]
    test: list[int]

    @classmethod
    def from_sequences(cls, seqs: Sequence[Sequence[int]]) -> LeaveOneOut:
        if any(len(s) < MIN_INTERACTIONS for s in seqs):
            raise ValueError(f"every sequence needs >= {MIN_INTERACTIONS} items")
        return cls([list(s[:-2]) for s in seqs], [s[-2] for s in seqs], [s[-1] for s in seqs])

    def history(self, i: int, phase: str) -> list[int]:
        """Items before the held-out one: train prefix (valid) or prefix + valid item (test)."""
        return self.train[i] if phase == "valid" else self.train[i] + [self.valid[i]]

    def target(self, i: int, phase: str) -> int:
        return self.valid[i] if phase == "valid" else self.test[i]


def training_windows(prefixes: Sequence[Sequence[int]], max_len: int,
                     stride: int | None = None) -> torch.Tensor:
    """Windows of ``max_len`` items from each training prefix: (N, max_len) int64.

    A prefix of at most ``max_len`` items gives one row, right-padded with <pad> (the end
    marker). A longer one gives windows ending at its last item and stepping back by ``stride``
    (default max_len // 2, i.e. half overlap), the earliest clamped to start at item 0, so every
    item is covered and the most recent context is always a full window.
    """
    if max_len < 2:
        raise ValueError(f"max_len must be >= 2 for recommendation, got {max_len}")
    stride = stride or max(1, max_len // 2)
    rows: list[list[int]] = []
    for p in prefixes:
        n = len(p)
        if n == 0:
            continue
        if n <= max_len:
            rows.append(list(p) + [PAD] * (max_len - n))
            continue
        starts = list(range(n - max_len, -1, -stride))
        if starts[-1] != 0:
            starts.append(0)
        rows.extend(list(p[s : s + max_len]) for s in starts)
    if not rows:
        raise DataError("no training windows (every training prefix is empty)")
    return torch.tensor(rows, dtype=torch.int64)


# The rank of a held-out item that is not a candidate (masked, or scored -inf or NaN): no
# cut-off K reaches it, so it is never a hit in HR, NDCG or MRR, whatever the catalogue size.
UNRANKED = torch.iinfo(torch.int64).max


def rank_targets(scores: torch.Tensor, targets: torch.Tensor, tie_order: torch.Tensor
                 ) -> torch.Tensor:
    """0-based rank of each target among all items: (U,) int64.

    scores: (U, V) float, excluded items already set to -inf; targets: (U,) int64;
    tie_order: (V,) a fixed random permutation that breaks ties (equal scores, e.g. items with
    the same popularity) as a random order would, without favouring the target. A target
    scored -inf (masked: a repeat under ``mask_history``, a special) or NaN is not ranked among
    the other excluded items by tie order: its rank is ``UNRANKED``, a miss at every K.
    """
    s_t = scores.gather(1, targets[:, None])
    greater = (scores > s_t).sum(1)
    ties = ((scores == s_t) & (tie_order[None, :] < tie_order[targets][:, None])).sum(1)
    excluded = ~(s_t[:, 0] > float("-inf"))  # -inf or NaN
    return torch.where(excluded, UNRANKED, greater + ties)


__all__ = ["PAD", "BOS", "ITEM_SPECIALS", "MIN_INTERACTIONS", "InteractionStats",
           "Interactions", "ItemVocab", "LeaveOneOut", "read_interactions",
           "training_windows", "rank_targets", "UNRANKED"]
