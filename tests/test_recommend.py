"""Recommendations out of a trained recsys run: ``Recommender`` and ``seqgan-fast recommend``
(ids round-trip to the input file's, the scores are the evaluation's, bounded chunks give the
same answer), ``sample --history``, and one clear line for every bad input."""
from __future__ import annotations

import csv
import random

import pytest
import torch
from helpers import TINY_TRAIN

from seqgan_fast.cli.commands import main
from seqgan_fast.config import ConfigError, TrainConfig
from seqgan_fast.data.interactions import read_interactions
from seqgan_fast.errors import DataError
from seqgan_fast.recommend import Recommender, load_run_generator, read_user_list
from seqgan_fast.tasks.recsys import RecsysTask

RECSYS_TRAIN = [s for s in TINY_TRAIN if not s.startswith(("vocab_size", "seq_len",
                                                           "num_train", "num_eval"))]
RECSYS_TRAIN += ["max_len=6", "seq_len=6", "topk=1,3", "mle_epochs=3"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.one_thread


def _write_data(path):
    """40 users over 15 items with ids that are not token numbers (item ids 'sku-NN')."""
    rng = random.Random(4)
    lines = ["user_id,product_id,order_number"]
    for u in range(40):
        n = rng.randint(3, 11)
        for t in range(n):
            lines.append(f"cust{u:03d},sku-{rng.randint(0, 14) * 7 + 3},{t}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def recsys_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    data = _write_data(root / "orders.csv")
    out = root / "run"
    torch.set_num_threads(1)
    rc = main(["train", "--data", str(data), "--out", str(out), "--backend", "reference", "-q",
               "--set", *RECSYS_TRAIN, "mask_history=false"])
    assert rc == 0
    return out, data


def _read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_recommendations_are_the_evaluations_scores(recsys_run):
    run, data = recsys_run
    rec = Recommender.from_run(run)  # auto: the validation-selected generator (best/)
    loaded = load_run_generator(run, checkpoint="best")
    task = RecsysTask(loaded.cfg)  # the training view of the same file
    inter = read_interactions(data, min_count=1)
    # a user's test-phase context (train prefix + validation item) = its history without
    # the last item: the Recommender must give exactly the evaluation's scores
    hist = [s[:-1] for s in inter.sequences]
    toks, unknown = rec.encode(hist)
    assert unknown == 0
    got = rec.scores(toks, exclude_seen=False)
    want = task.generator_scores(loaded.generator, "test", torch.arange(len(hist)))
    want[:, :2] = float("-inf")
    torch.testing.assert_close(got, want)
    out = rec.recommend(hist, k=4, exclude_seen=False)
    assert out.index == list(range(len(hist))) and out.empty == []
    items = {it for s in inter.sequences for it in s}
    for row, sc, logp in zip(out.items, out.scores, got, strict=True):
        assert len(row) == 4 and set(row) <= items
        assert sc == sorted(sc, reverse=True)
        assert sc[0] == pytest.approx(float(logp.max()))
        assert row[0] == rec.vocab.itos[int(logp.argmax())]


def test_exclude_seen_unknown_ids_and_empty_histories(recsys_run):
    run, _ = recsys_run
    rec = Recommender.from_run(run, batch_size=2)
    known = rec.vocab.itos[2:]
    hist = [[known[0], "no-such-item", known[1]], ["nope"], [], [known[2]] * 3]
    out = rec.recommend(hist, k=5, exclude_seen=True)
    assert out.index == [0, 3] and out.empty == [1, 2] and out.unknown_items == 2
    assert not {known[0], known[1]} & set(out.items[0])
    assert known[2] not in out.items[1]
    # bounded chunks give the same answer as one big batch (scores to GEMM rounding)
    big = Recommender.from_run(run, batch_size=1024).recommend(hist, k=5, exclude_seen=True)
    assert big.items == out.items and big.index == out.index
    assert max(abs(a - b) for u, v in zip(big.scores, out.scores, strict=True)
               for a, b in zip(u, v, strict=True)) <= 1e-5
    with pytest.raises(ValueError, match="k must be a positive int"):
        rec.recommend(hist, k=0)
    with pytest.raises(ValueError, match="larger than the"):
        rec.recommend(hist, k=rec.num_items + 1)
    with pytest.raises(TypeError, match="list of item ids"):
        rec.recommend(["sku-3 sku-10"], k=2)


def test_recommender_refuses_other_runs(tmp_path):
    out = tmp_path / "oracle_run"
    assert main(["train", "--out", str(out), "--backend", "reference", "-q", "--set",
                 *TINY_TRAIN, "adv_batches=0", "d_pretrain_rounds=0"]) == 0
    with pytest.raises(ConfigError, match="not a recommendation"):
        Recommender.from_run(out)
    with pytest.raises(ConfigError, match="run folder not found"):
        Recommender.from_run(tmp_path / "missing")


def test_cli_recommend_every_user_ids_round_trip(recsys_run, tmp_path, capsys):
    run, data = recsys_run
    out = tmp_path / "recs.csv"
    assert main(["recommend", "--run", str(run), "-k", "3", "--out", str(out),
                 "--batch-size", "7"]) == 0
    rows = _read_csv(out)
    inter = read_interactions(data, min_count=1, min_interactions=1)
    assert len(rows) == 3 * len(inter.users)
    assert [r["user"] for r in rows[::3]] == inter.users  # the input file's user ids, in order
    items = {it for s in inter.sequences for it in s}
    assert {r["item"] for r in rows} <= items
    assert [r["rank"] for r in rows[:3]] == ["1", "2", "3"]
    # the CSV is what the Python API gives for the users' whole histories
    rec = Recommender.from_run(run).recommend(inter.sequences[:2], k=3)
    assert [r["item"] for r in rows[:6]] == rec.items[0] + rec.items[1]
    assert "users scored" in capsys.readouterr().err


def test_cli_recommend_sigterm_is_one_line_and_writes_nothing(recsys_run, tmp_path, capsys,
                                                              monkeypatch):
    """SIGTERM half-way through the CSV: one line, exit 143, no partial file at --out and no
    temporary file left (the default handler killed the process with both behind)."""
    import os
    import signal

    run, _ = recsys_run
    out = tmp_path / "recs.csv"
    real = Recommender.iter_recommend

    def stopped_midway(self, *args, **kwargs):
        for i, part in enumerate(real(self, *args, **kwargs)):
            if i == 1:
                os.kill(os.getpid(), signal.SIGTERM)
            yield part

    monkeypatch.setattr(Recommender, "iter_recommend", stopped_midway)
    rc = main(["recommend", "--run", str(run), "-k", "3", "--out", str(out),
               "--batch-size", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 143 and err == [f"seqgan-fast: terminated (SIGTERM); {out} not written"], err
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is restored


def test_cli_recommend_user_file_and_exclude_seen(recsys_run, tmp_path, capsys):
    run, data = recsys_run
    users = tmp_path / "users.txt"
    users.write_text("# a comment\ncust001\nghost\ncust007\n", encoding="utf-8")
    out = tmp_path / "recs.csv"
    assert main(["recommend", "--run", str(run), "--users", str(users), "-k", "2",
                 "--exclude-seen", "--out", str(out)]) == 0
    rows = _read_csv(out)
    assert [r["user"] for r in rows] == ["cust001"] * 2 + ["cust007"] * 2
    inter = dict(zip(*(lambda d: (d.users, d.sequences))(
        read_interactions(data, min_count=1, min_interactions=1)), strict=True))
    assert not {r["item"] for r in rows if r["user"] == "cust001"} & set(inter["cust001"])
    assert "ghost" in capsys.readouterr().err  # the unknown user is reported


@pytest.mark.parametrize("extra,match", [
    (["-k", "0"], "-k must be in"),
    (["-k", "100000"], "-k must be in"),
    (["--users", "MISSING"], "--users file not found"),
    (["--batch-size", "0"], "--batch-size"),
])
def test_cli_recommend_bad_input_one_line(recsys_run, tmp_path, capsys, extra, match):
    run, _ = recsys_run
    out = tmp_path / "recs.csv"
    assert main(["recommend", "--run", str(run), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]
    assert not out.exists()


def test_cli_recommend_refuses_unknown_users_only_and_bad_out(recsys_run, tmp_path, capsys):
    run, _ = recsys_run
    users = tmp_path / "u.txt"
    users.write_text("ghost1\nghost2\n", encoding="utf-8")
    assert main(["recommend", "--run", str(run), "--users", str(users), "--out",
                 str(tmp_path / "r.csv")]) == 2
    assert "none of its 2 user ids" in capsys.readouterr().err
    assert main(["recommend", "--run", str(run), "--out", str(tmp_path / "no" / "r.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    keep = tmp_path / "keep.csv"
    keep.write_text("old\n")
    assert main(["recommend", "--run", str(run), "-k", "0", "--out", str(keep)]) == 2
    assert keep.read_text() == "old\n"  # nothing already saved is lost


def test_cli_sample_continues_a_history(recsys_run, capsys):
    run, _ = recsys_run
    known = Recommender.from_run(run).vocab.itos[2:]
    hist = " ".join(known[:3])
    assert main(["sample", "--run", str(run), "-n", "4", "--history", hist,
                 "--backend", "reference"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    for line in lines:
        assert set(line.split()) <= set(known)
        assert len(line.split()) <= 6 - 3  # the continuation of a 3-item context
    # the same seed gives the same continuation
    assert main(["sample", "--run", str(run), "-n", "4", "--history", hist,
                 "--backend", "reference"]) == 0
    assert capsys.readouterr().out.splitlines() == lines
    assert main(["sample", "--run", str(run), "--history", "ghost"]) == 2
    assert "none of its 1 item ids" in capsys.readouterr().err
    assert main(["sample", "--run", str(run), "--history", " "]) == 2
    assert "--history is empty" in capsys.readouterr().err


def test_sample_history_needs_a_recsys_run(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["train", "--out", str(out), "--backend", "reference", "-q", "--set",
                 *TINY_TRAIN, "adv_batches=0", "d_pretrain_rounds=0"]) == 0
    assert main(["sample", "--run", str(out), "--history", "1 2"]) == 2
    assert "needs a recsys run" in capsys.readouterr().err


def test_best_and_latest_checkpoints(recsys_run):
    run, _ = recsys_run
    best = load_run_generator(run, checkpoint="best")
    latest = load_run_generator(run, checkpoint="latest")
    assert best.checkpoint.parent.parent.name == "best"
    assert best.state["best"]["metric"] == "val_ndcg@3"  # auto for recsys: val_ndcg@max K
    # the best generator's validation metric is the one recorded for it
    task = RecsysTask(best.cfg)
    m = task.evaluate(best.generator, phase="adv", epoch=0)
    assert m["val_ndcg@3"] == pytest.approx(best.state["best"]["value"], abs=1e-9)
    assert latest.checkpoint.parent.name == "checkpoints"
    with pytest.raises(ConfigError, match="checkpoint must be one of"):
        load_run_generator(run, checkpoint="newest")


def test_config_of_a_recsys_run_is_recorded(recsys_run):
    run, _ = recsys_run
    cfg = load_run_generator(run).cfg
    assert isinstance(cfg, TrainConfig) and cfg.task == "recsys" and cfg.max_len == 6


# -- issue 33, part 2: reliability ----------------------------------------------------------
def test_read_user_list_binary_or_odd_files_name_the_file(tmp_path):
    b = tmp_path / "users.bin"
    b.write_bytes(b"cust001\n\x94\xff\x00abc\n")
    with pytest.raises(DataError, match=r"users.bin:2: not valid UTF-8 \(byte 0x94"):
        read_user_list(b)
    n = tmp_path / "nul.txt"
    n.write_bytes(b"cust001\nab\x00cd\n")
    with pytest.raises(DataError, match=r"nul.txt:2: a NUL byte"):
        read_user_list(n)
    with pytest.raises(DataError, match=r"--users .* is a directory"):
        read_user_list(tmp_path)
    ok = tmp_path / "ok.csv"
    ok.write_text("# users\ncust001,x\n\n  cust002 \n", encoding="utf-8")
    assert read_user_list(ok) == ["cust001", "cust002"]


def test_cli_recommend_binary_users_file_is_one_line(recsys_run, tmp_path, capsys):
    run, _ = recsys_run
    b = tmp_path / "users.bin"
    b.write_bytes(b"\x94\xff\x00abc\n")
    assert main(["recommend", "--run", str(run), "--users", str(b), "-k", "3", "--out",
                 str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{b}:1: not valid UTF-8" in err[0]
