"""BLEU / self-BLEU against nltk and a naive implementation; HR@K / NDCG@K by hand."""
import math
import random

import numpy as np
import pytest
import torch
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu

from seqgan_fast.metrics import (
    BleuReferences,
    bleu,
    corpus_bleu,
    coverage,
    hit_rate,
    mrr,
    ndcg,
    popularity_percentile,
    self_bleu,
    self_bleu_scores,
)

SMOOTH = SmoothingFunction().method1


def _weights(n):
    return tuple([1.0 / n] * n)


def _nltk_mean(hyps, refs, n):
    return sum(sentence_bleu(refs, h, _weights(n), smoothing_function=SMOOTH)
               for h in hyps) / len(hyps)


def _random_sentences(rng, count, alphabet, max_len):
    return [[rng.choice(alphabet) for _ in range(rng.randint(0, max_len))] for _ in range(count)]


@pytest.mark.parametrize("seed,alphabet", [(0, "abcdef"), (1, "abcdefghijklmnopq"), (2, "ab")])
def test_bleu_matches_nltk_random(seed, alphabet):
    rng = random.Random(seed)
    refs = _random_sentences(rng, 37, alphabet, 13)
    hyps = _random_sentences(rng, 23, alphabet, 15) + [[], [alphabet[0]], list(alphabet[:2])]
    for n in (1, 2, 3, 4, 5):
        assert bleu(hyps, refs, n) == pytest.approx(_nltk_mean(hyps, refs, n), abs=1e-9)
        expect = nltk_corpus_bleu([refs] * len(hyps), hyps, _weights(n), smoothing_function=SMOOTH)
        assert corpus_bleu(hyps, refs, n) == pytest.approx(expect, abs=1e-9)


def test_bleu_table_gives_each_sentence_score():
    rng = random.Random(5)
    refs = _random_sentences(rng, 50, "abcdefgh", 12)
    table = BleuReferences(refs, max_n=5)
    scores = []
    for hyp in _random_sentences(rng, 30, "abcdefgh", 12):
        expect = sentence_bleu(refs, hyp, _weights(4), smoothing_function=SMOOTH)
        scores.append(expect)
        assert table.score(hyp, 4) == pytest.approx(expect, abs=1e-9)
    assert len(set(round(s, 6) for s in scores)) > 5  # the cases are not all alike
    multi = table.scores([list("abc"), list("hgfe")], (2, 3, 4, 5))
    for n in (2, 3, 4, 5):
        assert multi[n] == pytest.approx(_nltk_mean([list("abc"), list("hgfe")], refs, n),
                                         abs=1e-9)


def test_bleu_closest_reference_length_ties_to_shorter():
    refs = [list("abcd"), list("abcdefgh")]  # hypothesis length 6: both 2 away -> r = 4 (no BP)
    hyp = list("abcdxy")
    expect = sentence_bleu(refs, hyp, _weights(2), smoothing_function=SMOOTH)
    assert bleu([hyp], refs, 2) == pytest.approx(expect, abs=1e-12)
    short = list("ab")  # r = 4 > 2: brevity penalty exp(1 - 4/2)
    assert bleu([short], refs, 2) == pytest.approx(math.exp(-1.0), abs=1e-12)


def test_bleu_matches_nltk_on_coco(shared_data):
    from seqgan_fast.data.text import iter_tokenized

    path_test = shared_data / "text" / "coco_test.txt"
    path_train = shared_data / "text" / "coco_train.txt"
    if not path_test.is_file():
        pytest.skip(f"{path_test} not found")
    refs = [t for i, (_, t) in enumerate(iter_tokenized(path_test, "word")) if i < 400]
    hyps = [t for i, (_, t) in enumerate(iter_tokenized(path_train, "word")) if i % 97 == 3][:25]
    hyps.append(hyps[0][:3])  # short hypothesis: brevity penalty
    for n in (2, 3, 4, 5):
        assert bleu(hyps, refs, n) == pytest.approx(_nltk_mean(hyps, refs, n), abs=1e-9)
    assert corpus_bleu(hyps, refs, 4) == pytest.approx(
        nltk_corpus_bleu([refs] * len(hyps), hyps, _weights(4), smoothing_function=SMOOTH),
        abs=1e-9)


def _naive_self_bleu(samples, n):
    total = sum(sentence_bleu(samples[:i] + samples[i + 1:], s, _weights(n),
                              smoothing_function=SMOOTH) for i, s in enumerate(samples))
    return total / len(samples)


@pytest.mark.parametrize("seed", [0, 3])
def test_self_bleu_matches_naive(seed):
    rng = random.Random(seed)
    samples = _random_sentences(rng, 41, "abcdefg", 11)
    samples += [samples[4][:], samples[4][:], []]  # duplicates hold the top count together
    for n in (2, 3, 4, 5):
        assert self_bleu(samples, n) == pytest.approx(_naive_self_bleu(samples, n), abs=1e-9)
    multi = self_bleu_scores(samples, (2, 5))
    assert multi[5] == pytest.approx(self_bleu(samples, 5), abs=1e-12)


def test_self_bleu_excludes_the_sample_itself():
    # "x y z" is held only by sample 0; against the others it matches nothing of order 3.
    samples = [["x", "y", "z", "x", "y", "z"], ["x", "y"], ["q", "r"], ["x"]]
    assert self_bleu(samples, 3) == pytest.approx(_naive_self_bleu(samples, 3), abs=1e-12)
    # and the only holder of its length is itself: closest other length must be used
    assert self_bleu([["a", "b"], ["a"]], 1) == pytest.approx(
        _naive_self_bleu([["a", "b"], ["a"]], 1), abs=1e-12)


def test_bleu_input_errors():
    with pytest.raises(ValueError, match="reference"):
        bleu([["a"]], [], 2)
    with pytest.raises(ValueError, match="hypothesis"):
        bleu([], [["a"]], 2)
    with pytest.raises(ValueError, match="two samples"):
        self_bleu([["a"]], 2)
    with pytest.raises(ValueError, match="orders"):
        BleuReferences([["a"]], max_n=3).scores([["a"]], (4,))


def test_hit_rate_and_ndcg_by_hand():
    ranks = [0, 1, 4, 9, 10, 37, 2]
    assert hit_rate(ranks, 10) == pytest.approx(5 / 7)
    assert hit_rate(ranks, 1) == pytest.approx(1 / 7)
    expect = (1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(6) + 1 / math.log2(11)
              + 1 / math.log2(4)) / 7
    assert ndcg(ranks, 10) == pytest.approx(expect, abs=1e-12)
    assert ndcg(ranks, 5) == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6)
                                            + 1 / math.log2(4)) / 7, abs=1e-12)
    t = torch.tensor(ranks)
    assert ndcg(t, 10) == pytest.approx(ndcg(np.array(ranks), 10))
    assert hit_rate(t, 3) == pytest.approx(3 / 7)
    with pytest.raises(ValueError, match="ranks"):
        hit_rate([-1, 0], 5)


def test_mrr_coverage_popularity_by_hand():
    ranks = torch.tensor([0, 1, 4, 9])
    assert mrr(ranks, 5) == pytest.approx((1 + 1 / 2 + 1 / 5 + 0) / 4)
    assert mrr(ranks, 1) == pytest.approx(1 / 4)
    top = torch.tensor([[0, 1], [1, 2], [1, -1]])
    assert coverage(top, 10) == pytest.approx(3 / 10)
    counts = torch.tensor([5.0, 1.0, 3.0, 3.0, 0.0])
    # percentiles: item4 0, item1 .25, items 2,3 share (.5+.75)/2, item0 1
    assert popularity_percentile(torch.tensor([[0], [4]]), counts) == pytest.approx(0.5)
    assert popularity_percentile(torch.tensor([[2, 3, -1]]), counts) == pytest.approx(0.625)
    head = popularity_percentile(torch.tensor([[0, 2]] * 3), counts)
    tail = popularity_percentile(torch.tensor([[4, 1]] * 3), counts)
    assert head > tail
    with pytest.raises(ValueError, match="num_items"):
        coverage(top, 0)


def test_per_user_gains_average_to_the_metrics_and_the_paired_z_by_hand():
    from seqgan_fast.metrics import paired_gain_z, per_user_gain

    ranks = np.array([0, 3, 9, 10, 2, 50])
    for name, fn in (("hr", hit_rate), ("ndcg", ndcg), ("mrr", mrr)):
        assert per_user_gain(name, ranks, 10).mean() == pytest.approx(fn(ranks, 10))
    assert per_user_gain("ndcg", ranks, 10)[1] == pytest.approx(1 / math.log2(5))
    with pytest.raises(ValueError, match="unknown rank metric 'auc'"):
        per_user_gain("auc", ranks, 10)
    # differences 1, 0, 1, 0: mean 0.5, sample sd sqrt(1/3), se sqrt(1/3)/2 -> z = sqrt(3)
    gain, z = paired_gain_z(np.array([1.0, 0.0, 1.0, 0.5]), np.array([0.0, 0.0, 0.0, 0.5]))
    assert gain == pytest.approx(0.5) and z == pytest.approx(math.sqrt(3))
    assert paired_gain_z(np.ones(3), np.ones(3)) == (0.0, 0.0)
    assert paired_gain_z(np.ones(3), np.zeros(3)) == (1.0, float("inf"))
    with pytest.raises(ValueError, match="same users"):
        paired_gain_z(np.ones(3), np.ones(4))
