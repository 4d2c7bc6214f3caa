"""Interaction pipeline: parsing both formats, ordering, filtering, split, windows, ranking,
baselines, RecsysTask contract and bad input."""
import json
import math
import random
from collections import Counter

import pytest
import torch
from helpers import small_generator

from seqgan_fast.config import ConfigError, TrainConfig
from seqgan_fast.data.interactions import (
    BOS,
    PAD,
    UNRANKED,
    LeaveOneOut,
    rank_targets,
    read_interactions,
    training_windows,
)
from seqgan_fast.data.text import DataError
from seqgan_fast.metrics import hit_rate, mrr, ndcg
from seqgan_fast.tasks.recsys import RecsysTask

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "u1\tapple\t5\t30\n"
    "u1\tpear\t3\t10\n"
    "u2\tkiwi\t4\t5\n"
    "u1\tfig\t1\t20\n"
    "u1\tplum\t2\t40\n"
    "u2\tapple\t1\t7\n"
    "u3\tapple\t2\t1\n"
    "u2\tpear\t1\t6.5\n"
)

CSV = (
    ",order_id,user_id,order_number,order_dow,product_id,add_to_cart_order\n"
    "0,11,7,2,1,p3,2.0\n"
    "1,11,7,2,1,p1,1.0\n"
    "2,10,7,1,1,p2,1.0\n"
    "3,12,8,1,3,p1,1.0\n"
    "4,12,8,1,3,p4,3.0\n"
    "5,12,8,1,3,p2,2.0\n"
    "6,13,7,10,2,p4,1.0\n"
)


def _write(tmp_path, name, text, binary=False):
    p = tmp_path / name
    p.write_bytes(text) if binary else p.write_text(text, encoding="utf-8")
    return p


def test_read_inter_orders_by_timestamp_and_skips_short_users(tmp_path):
    data = read_interactions(_write(tmp_path, "x.inter", INTER))
    seqs = dict(zip(data.users, data.sequences, strict=True))
    assert seqs == {"u1": ["pear", "fig", "apple", "plum"], "u2": ["kiwi", "pear", "apple"]}
    assert data.stats.users_skipped == 1 and data.stats.rows == 8
    assert data.stats.columns == {"user": "user_id", "item": "item_id", "order": ["timestamp"]}


def test_read_csv_instacart_layout(tmp_path):
    data = read_interactions(_write(tmp_path, "orders.csv", CSV))
    seqs = dict(zip(data.users, data.sequences, strict=True))
    # user 7: order 1 (p2), order 2 (p1 then p3 by add_to_cart_order), order 10 (p4):
    # order_number compares as a number (10 > 2), not as text
    assert seqs["7"] == ["p2", "p1", "p3", "p4"]
    assert seqs["8"] == ["p1", "p2", "p4"]
    assert data.stats.columns["order"] == ["order_number", "add_to_cart_order"]


def test_columns_by_config_and_file_order(tmp_path):
    text = "who,what,when\nA,x,3\nA,y,1\nA,z,2\nB,x,1\nB,y,1\nB,z,0\n"
    p = _write(tmp_path, "log.csv", text)
    data = read_interactions(p, columns="who,what,when")
    seqs = dict(zip(data.users, data.sequences, strict=True))
    assert seqs == {"A": ["y", "z", "x"], "B": ["z", "x", "y"]}
    data = read_interactions(p, columns="who,what")  # no order column: file order
    assert data.sequences[0] == ["x", "y", "z"]
    with pytest.raises(DataError, match="no user column"):
        read_interactions(p)


def test_min_count_drops_items_then_users(tmp_path):
    extra = "u4\tpear\t1\t1\nu4\tapple\t1\t2\nu4\tpear\t1\t3\n"
    data = read_interactions(_write(tmp_path, "x.inter", INTER + extra), min_count=2)
    # apple (4) and pear (4) survive; fig, plum, kiwi (1 each) go; then u1, u2 (2 items left)
    # and u3 (1) are too short
    assert data.stats.items_dropped == 3 and data.stats.interactions_dropped == 3
    assert data.users == ["u4"] and data.sequences == [["pear", "apple", "pear"]]
    assert data.stats.users_skipped == 3 and data.stats.items == 2
    with pytest.raises(DataError, match="no user has 3"):
        read_interactions(_write(tmp_path, "y.inter", INTER), min_count=2)


def test_bad_input_messages(tmp_path):
    with pytest.raises(DataError, match="empty"):
        read_interactions(_write(tmp_path, "e.csv", ""))
    with pytest.raises(DataError, match="only a header"):
        read_interactions(_write(tmp_path, "h.csv", "user_id,item_id,timestamp\n"))
    bad_ts = "user_id,item_id,timestamp\nu,a,1\nu,b,2\nu,c,yesterday\n"
    with pytest.raises(DataError, match=r"t.csv:4: column 'timestamp' must be a number, "
                                        r"got 'yesterday'"):
        read_interactions(_write(tmp_path, "t.csv", bad_ts))
    bad_order = CSV.replace("4,12,8,1,3,p4,3.0", "4,12,8,,3,p4,3.0")
    with pytest.raises(DataError, match=r"o.csv:6: column 'order_number'"):
        read_interactions(_write(tmp_path, "o.csv", bad_order))
    with pytest.raises(DataError, match="no column 'rating'"):
        read_interactions(_write(tmp_path, "c.csv", CSV), columns="user_id,product_id,rating")
    with pytest.raises(DataError, match=r"f.csv:3: 2 fields, the header has 3"):
        read_interactions(_write(tmp_path, "f.csv", "user_id,item_id,ts\nu,a,1\nu,b\n"))
    with pytest.raises(DataError, match=r"b.inter:2: not valid UTF-8"):
        read_interactions(_write(tmp_path, "b.inter",
                                 b"user_id:token\titem_id:token\n\xff\xfe\tx\n", binary=True))


def test_split_and_windows():
    split = LeaveOneOut.from_sequences([[5, 6, 7, 8, 9], [3, 4, 5]])
    assert split.train == [[5, 6, 7], [3]] and split.valid == [8, 4] and split.test == [9, 5]
    assert split.history(0, "valid") == [5, 6, 7] and split.history(0, "test") == [5, 6, 7, 8]
    w = training_windows([[10, 11, 12], list(range(20, 31))], max_len=4)
    # long prefix (11 items), stride 2: windows end at its last item, earliest starts at 0
    assert w[0].tolist() == [10, 11, 12, PAD]
    assert w[1].tolist() == [27, 28, 29, 30]
    assert w[1:].tolist() == [[27, 28, 29, 30], [25, 26, 27, 28], [23, 24, 25, 26],
                              [21, 22, 23, 24], [20, 21, 22, 23]]
    w5 = training_windows([list(range(7))], max_len=5, stride=5)
    assert w5.tolist() == [[2, 3, 4, 5, 6], [0, 1, 2, 3, 4]]
    assert training_windows([[1, 2, 3, 4, 5]], max_len=5).tolist() == [[1, 2, 3, 4, 5]]


def test_rank_targets_ties_and_masks():
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.1, 0.5],
                           [float("-inf"), 0.2, 0.3, 0.3, 0.7]])
    order = torch.tensor([4, 3, 2, 1, 0])  # item 4 first among ties, then 3, 2, ...
    ranks = rank_targets(scores, torch.tensor([2, 2]), order)
    # row 0: item 1 is higher; ties 0 and 4: only item 4 precedes item 2 in the tie order
    # row 1: items 4 higher; tie with item 3, which precedes item 2
    assert ranks.tolist() == [2, 2]
    assert rank_targets(scores, torch.tensor([1, 4]), order).tolist() == [0, 0]


def _task_cfg(tmp_path, **kw):
    lines = ["user_id,item_id,timestamp"]
    # 5 users; item popularity a > b > c > d; every user ends with its own pattern
    seqs = {"u1": "a b c d a", "u2": "a b c a b", "u3": "b c a d c", "u4": "a a b c d",
            "u5": "c b a b a d"}
    for u, s in seqs.items():
        for t, it in enumerate(s.split()):
            lines.append(f"{u},{it},{t}")
    p = _write(tmp_path, "toy.csv", "\n".join(lines) + "\n")
    base = dict(task="recsys", data=str(p), max_len=4, seq_len=4, topk=(1, 3), seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_recsys_task_popularity_baseline_by_hand(tmp_path):
    task = RecsysTask(_task_cfg(tmp_path, mask_history=False))
    assert task.vocab.itos[:2] == ["<pad>", "<bos>"] and task.start_token == BOS
    assert task.vocab_size == 2 + 4 and task.seq_len == 4
    # training prefixes: u1 a b c, u2 a b c, u3 b c a, u4 a a b, u5 c b a b
    # counts: a 6, b 6, c 4, d 0 -> ties a/b broken by the task's fixed tie order
    pop = task.popularity_counts
    assert pop[task.vocab.stoi["a"]] == 6 and pop[task.vocab.stoi["c"]] == 4
    # test targets: a, b, c, d, d; c and d are ranked 3rd and 4th
    ranks = task.ranks(lambda ph, rows: pop.float()[None].expand(len(rows), -1), "test")
    ab_first = int(task.tie_order[task.vocab.stoi["a"]] < task.tie_order[task.vocab.stoi["b"]])
    assert ranks.tolist() == [1 - ab_first, ab_first, 2, 3, 3]
    base = task.baselines["popularity"]
    assert base["hr@1"] == pytest.approx(1 / 5) and base["hr@3"] == pytest.approx(3 / 5)
    assert base["ndcg@3"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(4)) / 5)


def test_repeat_baseline_ranks_the_users_own_items_first(tmp_path):
    task = RecsysTask(_task_cfg(tmp_path, mask_history=False))
    st = task.vocab.stoi
    s = task._repeat_scores("test", torch.arange(5))
    # u2's test history a b c a: a (2) > b = c (1) > d (0, popularity only)
    assert s[1, st["a"]] > s[1, st["b"]] > s[1, st["d"]]
    assert s[1, st["b"]] > s[1, st["c"]]  # equal history counts: popularity breaks the tie
    # u1 (history a b c d, test a): a 1 + pop -> the repeat baseline hits a at rank 0 or 1
    base = task.baselines["repeat"]
    assert set(base) == set(task.baselines["popularity"])
    assert 0.0 <= base["hr@1"] <= base["hr@3"] <= 1.0


def test_recsys_mask_history_excludes_known_items(tmp_path):
    task = RecsysTask(_task_cfg(tmp_path, mask_history=True))
    pop = task.popularity_counts
    ranks = task.ranks(lambda ph, rows: pop.float()[None].expand(len(rows), -1), "test")
    # u4's test item d is new and every other item is history: rank 0.
    # u1's test item a is a repeat: masked, so it falls behind every unmasked item (a miss).
    assert ranks[3] == 0
    assert ranks[0] >= 1


def test_recsys_per_user_values_average_to_the_validation_metrics(tmp_path):
    """select_min_z's per-user terms: their mean is the recorded val_ metric, for the last
    evaluation (no second pass) and for a generator passed explicitly (after a resume)."""
    task = RecsysTask(_task_cfg(tmp_path, mask_history=False))
    g1 = small_generator(vocab=task.vocab_size, seq_len=4, seed=1, scale=3.0)
    g2 = small_generator(vocab=task.vocab_size, seq_len=4, seed=2, scale=3.0)
    for g in (g1, g2):
        g.start_token = task.start_token
    m1 = task.evaluate(g1, phase="adv", epoch=0)
    last = {k: task.per_user_values(f"val_{k}@3") for k in ("hr", "ndcg", "mrr")}
    m2 = task.evaluate(g2, phase="adv", epoch=1)
    for k, v in last.items():
        assert v.shape == (5,) and v.mean() == pytest.approx(m1[f"val_{k}@3"])
        assert task.per_user_values(f"val_{k}@3", g1) == pytest.approx(v)
        assert task.per_user_values(f"val_{k}@3").mean() == pytest.approx(m2[f"val_{k}@3"])
    assert task.per_user_values("hr@3") is None and task.per_user_values("val_auc@3") is None


def test_recsys_generator_scores_and_mle_baseline(tmp_path):
    cfg = _task_cfg(tmp_path, mask_history=False)
    task = RecsysTask(cfg)
    g = small_generator(vocab=task.vocab_size, seq_len=4, seed=1, scale=3.0)
    g.start_token = task.start_token
    # scores at the position after the user's last max_len - 1 history items
    x, pos, _ = task._contexts["test"]
    assert x[1].tolist()[:3] == task.vocab.encode("b c a".split()) and pos[1] == 3
    rows = torch.arange(5)
    s = task.generator_scores(g, "test", rows)
    expect = torch.log_softmax(g(x)[torch.arange(5), pos], -1)
    torch.testing.assert_close(s, expect)
    run = tmp_path / "run"
    run.mkdir()
    task.save(run)
    m1 = task.evaluate(g, phase="mle", epoch=1)
    assert "mle" not in task.baselines
    m = task.evaluate(g, phase="mle", epoch=2, final=True)
    ranked = {f"{p}{m}@{k}" for p in ("", "val_") for m in ("hr", "ndcg", "mrr") for k in (1, 3)}
    assert m == m1 and set(m) == ranked | {"coverage@1", "coverage@3", "pop@1", "pop@3"}
    ranks, top = task.ranks(lambda ph, r: task.generator_scores(g, ph, r), "test", top_k=3)
    assert m["hr@3"] == pytest.approx(float((ranks < 3).float().mean()))
    assert m["mrr@3"] == pytest.approx(float(torch.where(ranks < 3, 1.0 / (ranks + 1.0),
                                                         0.0).mean()))
    # the top lists agree with the ranks: the held-out item is at its rank in the list
    _, _, targets = task._contexts["test"]
    for u in range(5):
        if ranks[u] < 3:
            assert top[u, ranks[u]] == targets[u]
        else:
            assert targets[u] not in top[u]
    assert m["coverage@3"] == pytest.approx(len(set(top.flatten().tolist())) / 4)
    extras = task.summary_extras()
    assert extras["baselines"]["mle"] == m
    assert set(extras["baselines"]["popularity"]) == set(m)
    assert set(extras["baselines"]["repeat"]) == set(m)
    assert extras["protocol"]["history_mask"] is False and extras["protocol"]["K"] == [1, 3]
    # a resumed run (new task object, same run folder) still reports the MLE baseline
    saved = json.loads((run / "baselines.json").read_text())
    assert saved["mle"] == m
    again = RecsysTask(cfg)
    again.save(run)
    assert again.summary_extras()["baselines"]["mle"] == m


def test_recsys_save_load_decode(tmp_path):
    task = RecsysTask(_task_cfg(tmp_path))
    run = tmp_path / "run"
    run.mkdir()
    task.save(run)
    (tmp_path / "toy.csv").unlink()
    loaded = RecsysTask.load(run, task.cfg)
    x = task.train_sequences()[:3]
    assert loaded.decode(x) == task.decode(x)
    assert task.decode(torch.tensor([[task.vocab.stoi["b"], PAD, 2, 3]])) == ["b"]
    assert loaded.vocab_size == task.vocab_size


def test_recsys_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="--data"):
        RecsysTask(TrainConfig(task="recsys"))
    with pytest.raises(ConfigError, match="max_len"):
        RecsysTask(_task_cfg(tmp_path, max_len=1))


def test_instacart_preset(shared_data):
    if not (shared_data / "recsys" / "instacart_sample.csv").is_file():
        pytest.skip("instacart sample not found")
    data = read_interactions(shared_data / "recsys" / "instacart_sample.csv")
    assert data.stats.rows == 150_000 and data.stats.users == 593
    assert data.stats.items == 14_190 and data.stats.users_skipped == 0
    task = RecsysTask(TrainConfig.preset("instacart"))
    counts = Counter(it for s in data.sequences for it in s)
    assert task.vocab_size == 2 + sum(1 for c in counts.values() if c >= 5)
    assert task.train_sequences().shape[1] == 20
    pop = task.baselines["popularity"]
    assert 0 < pop["hr@10"] < 0.2 and pop["ndcg@10"] <= pop["hr@10"]


def test_one_user_per_line_file_keeps_order_and_ids_as_strings(tmp_path):
    """The S3-Rec authors' format: 'user item1 item2 ...', chronological, white space
    separated; ids are opaque strings (leading zeros kept), the line order is no chronology
    across users."""
    f = _write(tmp_path, "seqs.txt", "u10 007 3 3 x\n\n7  b\ta 007\nz 1 2\n")
    data = read_interactions(f, min_interactions=1)
    assert data.users == ["u10", "7", "z"]
    assert data.sequences == [["007", "3", "3", "x"], ["b", "a", "007"], ["1", "2"]]
    assert data.stats.rows == 9 and data.stats.items == 7
    short = read_interactions(f)  # a user needs 3 items (train, validation, test)
    assert short.users == ["u10", "7"] and short.stats.users_skipped == 1
    rare = read_interactions(f, min_count=2, min_interactions=1)
    assert rare.sequences == [["007", "3", "3"], ["007"]]


@pytest.mark.parametrize("text,match", [
    ("a 1 2 3\nb\n", r"seqs\.txt:2: user 'b' has no items"),
    ("a 1 2 3\nb 4 5 6\na 7 8 9\n", r"seqs\.txt:3: user 'a' again \(first at line 1\)"),
    ("\n\n", r"seqs\.txt: the file is empty"),
])
def test_one_user_per_line_bad_lines_name_the_line(tmp_path, text, match):
    with pytest.raises(DataError, match=match):
        read_interactions(_write(tmp_path, "seqs.txt", text))


def test_one_user_per_line_refuses_columns(tmp_path):
    f = _write(tmp_path, "seqs.txt", "a 1 2 3\n")
    with pytest.raises(DataError, match="columns='user,item' does not apply"):
        read_interactions(f, columns="user,item")


def test_a_txt_file_is_recsys_under_a_recsys_preset_and_text_otherwise():
    from seqgan_fast.cli.commands import _infer_task

    assert _infer_task("toys.txt", "recsys") == "recsys"
    assert _infer_task("poems.txt", "text") == "text"
    assert _infer_task("corpus.txt", "oracle") == "text"
    assert _infer_task("x.inter", "oracle") == "recsys"


def test_toys_file_gives_the_published_counts(shared_data):
    """Amazon Toys & Games as the S3-Rec authors preprocessed it: their paper's 19,412 users,
    11,924 items and 167,597 interactions; the seqrec preset reads it with no other option."""
    path = shared_data / "recsys" / "toys_and_games.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    data = read_interactions(path)
    assert (data.stats.users, data.stats.items, data.stats.interactions) == \
        (19_412, 11_924, 167_597)
    cfg = TrainConfig.preset("seqrec")
    assert cfg.task == "recsys" and cfg.mask_history and cfg.min_count == 1
    assert (shared_data / cfg.data) == path


def test_history_conditioned_training(tmp_path, monkeypatch):
    """history_len=P: D's negatives continue real histories (first P positions real), the PG
    step samples continuations of real histories and rewards only the generated positions."""
    from seqgan_fast import SeqGANTrainer, ops

    cfg = _task_cfg(tmp_path, mask_history=False, g_emb_dim=8, g_hidden_dim=8, d_emb_dim=8,
                    d_filter_sizes=(2, 3), d_num_filters=(4, 4), batch_size=4, mle_epochs=1,
                    d_pretrain_rounds=1, d_num_negatives=6, d_epochs=1, adv_batches=1,
                    adv_d_rounds=1, num_rollouts=2, eval_every=1, history_len=2,
                    backend="reference")
    t = SeqGANTrainer(cfg, tmp_path / "run", progress=False)
    assert t.cond_x.shape[0] > 0 and bool((t.cond_x[:, 2] != PAD).all())
    seen = {}
    real_sample, real_rewards = ops.sample, ops.rollout_rewards

    def spy_sample(*a, **kw):
        out = real_sample(*a, **kw)
        if kw.get("prefix") is not None:
            seen.setdefault("prefixes", []).append((kw["prefix"], out))
        return out

    def spy_rewards(*a, **kw):
        out = real_rewards(*a, **kw)
        seen["rewards"] = (kw.get("history_len"), out)
        return out

    monkeypatch.setattr(ops, "sample", spy_sample)
    monkeypatch.setattr(ops, "rollout_rewards", spy_rewards)
    t.fit()
    assert seen["prefixes"]
    for prefix, out in seen["prefixes"]:
        assert prefix.shape[1] == 2 and torch.equal(out[:, :2], prefix)
        # each prefix is a real history: a row of the conditional training windows
        assert all(any(torch.equal(p, r[:2]) for r in t.cond_x) for p in prefix)
    given, rewards = seen["rewards"]
    assert given == 2 and torch.equal(rewards[:, :2], torch.zeros(4, 2))
    assert bool((rewards[:, 2:] > 0).all())
    with pytest.raises(ConfigError, match="history_len"):
        SeqGANTrainer(_task_cfg(tmp_path, history_len=4), tmp_path / "bad", progress=False)


# -- issue 33, part 2: reliability ----------------------------------------------------------
def _csv_of(tmp_path, name, seqs):
    lines = ["user_id,item_id,timestamp"]
    for u, s in seqs.items():
        lines += [f"{u},{it},{t}" for t, it in enumerate(s.split())]
    return _write(tmp_path, name, "\n".join(lines) + "\n")


def test_rank_targets_masked_or_nan_target_is_unranked():
    scores = torch.tensor([[float("-inf"), float("-inf"), 0.3],
                           [float("nan"), 0.1, 0.2],
                           [float("-inf"), 0.5, 0.4]])
    ranks = rank_targets(scores, torch.tensor([0, 0, 2]), torch.tensor([0, 1, 2]))
    # a -inf target once ranked 0 (first in tie order among the -inf), a NaN one 0 too
    assert ranks.tolist() == [UNRANKED, UNRANKED, 1]
    assert hit_rate(ranks, 2**40) == pytest.approx(1 / 3)
    assert ndcg(ranks, 10**9) == pytest.approx(1 / 3 / math.log2(3))
    assert mrr(ranks, 10**9) == pytest.approx(1 / 6)


def _all_rank_metrics_zero(metrics, prefix=""):
    keys = [k for k in metrics if k.split("@")[0] in (f"{prefix}hr", f"{prefix}ndcg",
                                                      f"{prefix}mrr")]
    assert keys
    return {k: metrics[k] for k in keys if metrics[k] != 0.0}


def test_masked_repeat_targets_are_never_hits(tmp_path):
    """8 items, every test item a repeat, mask_history: no candidate list can hold the test
    item, so hr/ndcg/mrr are 0 at every K (K = 20 > the catalogue too), for the generator and
    for both baselines (hr@20 was 1.0: the masked target ranked by tie order among the masked)."""
    rng = random.Random(0)
    seqs = {}
    for u in range(30):
        s = [f"i{rng.randrange(8)}" for _ in range(6)]
        seqs[f"u{u}"] = " ".join([*s, s[0]])
    p = _csv_of(tmp_path, "rep.csv", seqs)
    cfg = TrainConfig(task="recsys", data=str(p), max_len=5, seq_len=5, topk=(1, 5, 20),
                      mask_history=True, seed=0)
    task = RecsysTask(cfg)
    assert task.vocab_size - 2 == 8 and task.repeat_test_items == 30
    for name in ("popularity", "repeat"):
        assert _all_rank_metrics_zero(task.baselines[name]) == {}, name
    g = small_generator(vocab=task.vocab_size, seq_len=5, seed=2, scale=3.0)
    m = task.evaluate(g, phase="mle", epoch=1)
    assert _all_rank_metrics_zero(m) == {}
    # validation items that are new to the user are still found
    new_val = sum(task.split.valid[i] not in task.split.train[i] for i in range(30))
    assert m["val_hr@20"] == pytest.approx(new_val / 30)


def test_one_item_catalogue_masked_is_no_hit(tmp_path):
    """One item, mask_history: nothing is recommended (coverage 0) and nothing is hit (hr@5
    was 1.0 beside coverage@5 0.0)."""
    p = _csv_of(tmp_path, "one.csv", {f"u{u}": "x x x x" for u in range(6)})
    task = RecsysTask(TrainConfig(task="recsys", data=str(p), max_len=3, seq_len=3, topk=(5,),
                                  mask_history=True, seed=0))
    g = small_generator(vocab=task.vocab_size, seq_len=3, seed=1)
    m = task.evaluate(g, phase="mle", epoch=1)
    assert m["coverage@5"] == 0.0
    assert m["hr@5"] == m["ndcg@5"] == m["mrr@5"] == m["val_hr@5"] == 0.0
    assert task.baselines["popularity"]["hr@5"] == task.baselines["repeat"]["hr@5"] == 0.0
    # unmasked, the only item is a hit at rank 0
    task2 = RecsysTask(task.cfg.replace(mask_history=False))
    assert task2.baselines["popularity"]["hr@5"] == 1.0


def test_columns_naming_one_column_twice_is_refused(tmp_path):
    p = _write(tmp_path, "c.csv", CSV)
    with pytest.raises(DataError, match=r"columns='user_id,user_id'.*named twice"):
        read_interactions(p, columns="user_id,user_id")
    with pytest.raises(DataError, match=r"columns=.*\['product_id'\] named twice"):
        read_interactions(p, columns="user_id,product_id,product_id")


@pytest.mark.parametrize("name", ["big.csv", "big.inter"])
def test_field_over_the_csv_limit_is_one_line(tmp_path, name):
    sep = "\t" if name.endswith(".inter") else ","
    head = (["user_id:token", "item_id:token", "timestamp:float"] if sep == "\t"
            else ["user_id", "item_id", "timestamp"])
    rows = [sep.join(head)] + [sep.join(["u1", f"i{t}", str(t)]) for t in range(4)]
    rows.append(sep.join(["u2", "x" * 140_000, "1"]))
    p = _write(tmp_path, name, "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=rf"{name}:6: .*longer than 131,072 characters") as e:
        read_interactions(p)
    assert "xxxx" not in str(e.value)


@pytest.mark.parametrize("header,match", [
    ("user_id:float\titem_id:token\ttimestamp:float", r"'user_id:float' is the user column"),
    ("user_id:token\titem_id:token_seq\ttimestamp:float",
     r"'item_id:token_seq' is the item column, which must be of type :token"),
    ("user_id:token\titem_id:token\ttimestamp:token",
     r"'timestamp:token' is the order \(timestamp\) column, which must be of type :float"),
])
def test_inter_type_suffixes_are_checked(tmp_path, header, match):
    body = "\n".join("\t".join(line.split("\t")[:2] + line.split("\t")[-1:])
                     for line in INTER.splitlines()[1:])
    p = _write(tmp_path, "t.inter", header + "\n" + body + "\n")
    with pytest.raises(DataError, match=r"t.inter:1: header field " + match):
        read_interactions(p)
    # the same file with RecBole's types reads (and a field without a suffix is taken as is)
    good = "user_id:token\titem_id:token\ttimestamp"
    assert read_interactions(_write(tmp_path, "g.inter", good + "\n" + body + "\n")).users


def test_data_path_that_is_a_directory(tmp_path):
    with pytest.raises(DataError, match=r"interaction file .* is a directory"):
        RecsysTask(TrainConfig(task="recsys", data=str(tmp_path), max_len=4, seq_len=4))


def test_resume_refuses_an_edited_interaction_file(tmp_path):
    """items.json is the run's token -> item map: a resume whose data now give another one
    (same size) is refused instead of silently renaming trained ids."""
    cfg = _task_cfg(tmp_path)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    RecsysTask(cfg).save(run)
    (run / "checkpoints" / "000001").mkdir()
    (run / "checkpoints" / "LATEST").write_text("000001\n")
    RecsysTask(cfg).save(run)  # unchanged data: resumes
    data = tmp_path / "toy.csv"
    data.write_text(data.read_text().replace(",d,", ",zz,"), encoding="utf-8")
    task = RecsysTask(cfg)
    assert task.vocab_size == 6 and "zz" in task.vocab.stoi
    saved = (run / "items.json").read_text()
    with pytest.raises(ConfigError, match=r"cannot resume: .*toy.csv no longer gives the "
                                          r"vocabulary saved in .*items.json \(token id 5 "
                                          r"was 'd', is now 'zz'\)"):
        task.save(run)
    assert (run / "items.json").read_text() == saved
    # a new run in the folder (no checkpoint: --overwrite cleared them) writes its own
    (run / "checkpoints" / "LATEST").unlink()
    task.save(run)
    assert "zz" in (run / "items.json").read_text()
