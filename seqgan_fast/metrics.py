"""Evaluation metrics: BLEU and self-BLEU for text, HR@K and NDCG@K for next-item ranking.

BLEU follows nltk's ``sentence_bleu`` exactly (uniform weights over orders 1..max_n, brevity
penalty against the closest reference length, ties to the shorter one, smoothing method 1 with
epsilon 0.1, zero when no unigram matches) and ``bleu`` averages it over hypotheses, as the
text-GAN benchmarks do. Instead of re-counting every reference for every hypothesis (nltk:
O(#refs) per hypothesis), the reference set is reduced once to a table of each n-gram's maximum
count over the references, so a hypothesis costs O(len * max_n). Self-BLEU scores each sample
against all the *others*: the table keeps each n-gram's two largest counts and which sample holds
the largest, so the maximum over "all but i" is one lookup.
"""
from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import torch

Sentence = Sequence[Hashable]
EPSILON = 0.1  # nltk SmoothingFunction().method1 default


def _ngram_counts(tokens: Sentence, n: int) -> Counter:
    t = tuple(tokens)
    return Counter(t[i : i + n] for i in range(len(t) - n + 1))


def _closest(sorted_lens: Sequence[int], hyp_len: int) -> int:
    """The reference length closest to hyp_len, ties to the shorter (nltk's rule)."""
    i = bisect.bisect_left(sorted_lens, hyp_len)
    best = None
    for j in (i - 1, i):
        if 0 <= j < len(sorted_lens):
            r = sorted_lens[j]
            if best is None or (abs(r - hyp_len), r) < (abs(best - hyp_len), best):
                best = r
    assert best is not None
    return best


def _sentence_score(matches: Sequence[int], totals: Sequence[int], hyp_len: int,
                    ref_len: int, max_n: int) -> float:
    """nltk's corpus_bleu arithmetic for one hypothesis with orders 1..max_n."""
    if matches[0] == 0:
        return 0.0
    if hyp_len > ref_len:
        bp = 1.0
    elif hyp_len == 0:
        bp = 0.0
    else:
        bp = math.exp(1 - ref_len / hyp_len)
    w = 1 / max_n
    logs = []
    for k in range(max_n):
        den = max(1, totals[k])
        p = (EPSILON / den) if matches[k] == 0 else matches[k] / den
        logs.append(w * math.log(p))
    return bp * math.exp(math.fsum(logs))


class BleuReferences:
    """A reference set reduced to per-n-gram maximum counts, for fast sentence BLEU.

    ``refs``: list of token lists (any hashable tokens). Build once, then ``score`` many
    hypotheses; ``scores(hyps, orders)`` returns the mean sentence BLEU for several max orders
    from one pass (BLEU-2..5 share their n-gram counts).
    """

    def __init__(self, refs: Iterable[Sentence], max_n: int = 5) -> None:
        if max_n < 1:
            raise ValueError(f"max_n must be >= 1, got {max_n}")
        self.max_n = max_n
        self.max_counts: list[dict[tuple, int]] = [{} for _ in range(max_n)]
        lens: set[int] = set()
        count = 0
        for ref in refs:
            count += 1
            lens.add(len(ref))
            for n in range(1, max_n + 1):
                table = self.max_counts[n - 1]
                for g, c in _ngram_counts(ref, n).items():
                    if c > table.get(g, 0):
                        table[g] = c
        if count == 0:
            raise ValueError("BLEU needs at least one reference")
        self.num_refs = count
        self.ref_lens = sorted(lens)

    def _stats(self, hyp: Sentence, max_n: int) -> tuple[list[int], list[int]]:
        matches, totals = [], []
        for n in range(1, max_n + 1):
            counts = _ngram_counts(hyp, n)
            table = self.max_counts[n - 1]
            matches.append(sum(min(c, table.get(g, 0)) for g, c in counts.items()))
            totals.append(sum(counts.values()))
        return matches, totals

    def score(self, hyp: Sentence, max_n: int = 4) -> float:
        """Sentence BLEU of one hypothesis against all references."""
        return self.scores([hyp], (max_n,))[max_n]

    def scores(self, hyps: Sequence[Sentence], orders: Sequence[int] = (4,)) -> dict[int, float]:
        """Mean sentence BLEU over ``hyps`` for each max order in ``orders``: {n: score}."""
        top = max(orders)
        if top > self.max_n or min(orders) < 1:
            raise ValueError(f"orders must lie in 1..{self.max_n}, got {tuple(orders)}")
        if len(hyps) == 0:
            raise ValueError("BLEU needs at least one hypothesis")
        sums = dict.fromkeys(orders, 0.0)
        for hyp in hyps:
            matches, totals = self._stats(hyp, top)
            r = _closest(self.ref_lens, len(hyp))
            for n in orders:
                sums[n] += _sentence_score(matches, totals, len(hyp), r, n)
        return {n: s / len(hyps) for n, s in sums.items()}


def bleu(hyps: Sequence[Sentence], refs: Sequence[Sentence], max_n: int = 4) -> float:
    """Mean over ``hyps`` of sentence BLEU (orders 1..max_n, uniform weights, smoothing method 1)
    of each hypothesis against all of ``refs``; both are lists of token lists."""
    return BleuReferences(refs, max_n).scores(hyps, (max_n,))[max_n]


def corpus_bleu(hyps: Sequence[Sentence], refs: Sequence[Sentence], max_n: int = 4) -> float:
    """nltk's ``corpus_bleu`` with every hypothesis scored against the same reference set:
    n-gram matches, totals (each at least 1, as nltk) and lengths are summed over hypotheses
    before the ratio."""
    table = BleuReferences(refs, max_n)
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp in hyps:
        m, t = table._stats(hyp, max_n)
        matches = [a + b for a, b in zip(matches, m, strict=True)]
        totals = [a + max(1, b) for a, b in zip(totals, t, strict=True)]  # nltk: max(1, .)
        hyp_len += len(hyp)
        ref_len += _closest(table.ref_lens, len(hyp))
    return _sentence_score(matches, totals, hyp_len, ref_len, max_n)


def self_bleu_scores(samples: Sequence[Sentence], orders: Sequence[int] = (4,)) -> dict[int, float]:
    """Mean over samples of sentence BLEU of sample i against all samples j != i (by index, so a
    duplicate of i still counts as a reference), for each max order in ``orders``."""
    m = len(samples)
    if m < 2:
        raise ValueError("self-BLEU needs at least two samples")
    top = max(orders)
    # per order: n-gram -> [largest count, index holding it, second largest count]
    tables: list[dict[tuple, list[int]]] = [{} for _ in range(top)]
    per_sample: list[list[Counter]] = []
    for i, s in enumerate(samples):
        counts = [_ngram_counts(s, n) for n in range(1, top + 1)]
        per_sample.append(counts)
        for n in range(top):
            table = tables[n]
            for g, c in counts[n].items():
                e = table.get(g)
                if e is None:
                    table[g] = [c, i, 0]
                elif c > e[0]:
                    e[2], e[0], e[1] = e[0], c, i
                elif c > e[2]:
                    e[2] = c
    lens = Counter(len(s) for s in samples)
    sums = dict.fromkeys(orders, 0.0)
    for i, s in enumerate(samples):
        matches, totals = [], []
        for n in range(top):
            table = tables[n]
            hit = 0
            for g, c in per_sample[i][n].items():
                e = table[g]
                other = e[2] if e[1] == i else e[0]
                hit += min(c, other)
            matches.append(hit)
            totals.append(sum(per_sample[i][n].values()))
        own = len(s)
        others = sorted(k for k, v in lens.items() if v - (k == own) > 0)
        r = _closest(others, own)
        for n in orders:
            sums[n] += _sentence_score(matches, totals, own, r, n)
    return {n: v / m for n, v in sums.items()}


def self_bleu(samples: Sequence[Sentence], max_n: int = 4) -> float:
    """Self-BLEU: mean sentence BLEU of each sample against all the others (diversity; lower is
    more diverse)."""
    return self_bleu_scores(samples, (max_n,))[max_n]


def _as_ranks(ranks) -> np.ndarray:
    if isinstance(ranks, torch.Tensor):
        ranks = ranks.detach().cpu().numpy()
    r = np.asarray(ranks)
    if r.size and (r.min() < 0):
        raise ValueError("ranks must be >= 0 (0 = ranked first)")
    return r


RANK_METRICS = ("hr", "ndcg", "mrr")


def per_user_gain(name: str, ranks, k: int) -> np.ndarray:
    """Each user's HR, NDCG or MRR @K term (``name``: hr | ndcg | mrr; one relevant item,
    0-based ranks (U,)): the metric is their mean. float64 (U,)."""
    r = _as_ranks(ranks).astype(np.float64)
    hit = r < k
    if name == "hr":
        return hit.astype(np.float64)
    if name == "ndcg":
        return np.where(hit, 1.0 / np.log2(r + 2.0), 0.0)
    if name == "mrr":
        return np.where(hit, 1.0 / (r + 1.0), 0.0)
    raise ValueError(f"unknown rank metric {name!r}; choose from {', '.join(RANK_METRICS)}")


def _mean_gain(name: str, ranks, k: int) -> float:
    g = per_user_gain(name, ranks, k)
    return float(g.mean()) if g.size else 0.0


def hit_rate(ranks, k: int) -> float:
    """HR@K for leave-one-out evaluation: fraction of users whose held-out item has 0-based
    ``rank`` < k. ranks: (U,) ints (list, numpy or tensor)."""
    return _mean_gain("hr", ranks, k)


def ndcg(ranks, k: int) -> float:
    """NDCG@K with one relevant item: mean of 1/log2(rank + 2) over users with rank < k
    (0 otherwise); the ideal DCG is 1. ranks: (U,) 0-based ints."""
    return _mean_gain("ndcg", ranks, k)


def mrr(ranks, k: int) -> float:
    """MRR@K with one relevant item: mean of 1/(rank + 1) over users with rank < k (0
    otherwise). ranks: (U,) 0-based ints."""
    return _mean_gain("mrr", ranks, k)


def paired_gain_z(candidate: np.ndarray, incumbent: np.ndarray) -> tuple[float, float]:
    """(mean gain, z) of per-user values ``candidate`` over ``incumbent`` (same users, same
    order): z = mean / standard error of the per-user differences (inf where they are all
    equal and positive, 0 where all equal to 0)."""
    a, b = np.asarray(candidate, np.float64), np.asarray(incumbent, np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"paired_gain_z needs two (U,) arrays of the same users, U >= 2; "
                         f"got shapes {a.shape} and {b.shape}")
    d = a - b
    mean = float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(d.size))
    if se == 0.0:
        return mean, (0.0 if mean == 0.0 else float(np.sign(mean)) * float("inf"))
    return mean, mean / se


def coverage(top, num_items: int) -> float:
    """Catalogue coverage of top-K lists: distinct recommended items / ``num_items``.
    top: (U, K) item ids (ids < 0 are empty slots and not counted)."""
    t = top.detach().cpu() if isinstance(top, torch.Tensor) else torch.as_tensor(top)
    if num_items < 1:
        raise ValueError(f"num_items must be >= 1, got {num_items}")
    return float(torch.unique(t[t >= 0]).numel()) / num_items


def popularity_percentile(top, counts) -> float:
    """Popularity bias of top-K lists: the mean popularity percentile of recommended items
    (1.0 = the most popular item, ~0 = the least; ties share their mean percentile) under
    ``counts`` (V,) (e.g. training interactions per item). A list that collapses onto the
    head of the catalogue scores near 1; a popularity recommender scores ~1 by construction.
    top: (U, K) item ids (ids < 0 ignored)."""
    t = top.detach().cpu() if isinstance(top, torch.Tensor) else torch.as_tensor(top)
    c = torch.as_tensor(counts, dtype=torch.float64).cpu()
    t = t[t >= 0]
    if not t.numel():
        return 0.0
    order = torch.argsort(c, stable=True)  # ascending counts
    pct = torch.empty_like(c)
    n = c.numel()
    pct[order] = torch.arange(n, dtype=torch.float64) / max(n - 1, 1)
    # equal counts share the mean of their percentiles
    uniq, inv = torch.unique(c, return_inverse=True)
    mean = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inv, pct)
    mean /= torch.bincount(inv, minlength=uniq.numel()).double()
    return float(mean[inv][t].mean())


__all__ = ["bleu", "corpus_bleu", "self_bleu", "self_bleu_scores", "BleuReferences",
           "hit_rate", "ndcg", "mrr", "coverage", "popularity_percentile"]
