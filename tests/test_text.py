"""Text pipeline: tokenisation, vocabulary, encode/decode, truncation, bad input, TextTask."""
import json

import pytest
import torch
from helpers import small_generator

from seqgan_fast.config import ConfigError, TrainConfig
from seqgan_fast.data.text import (
    BOS,
    PAD,
    UNK,
    DataError,
    Vocab,
    count_tokens,
    encode_file,
    resolve_data_path,
    tokenize,
)
from seqgan_fast.metrics import bleu
from seqgan_fast.tasks.text import TextTask


def _write(tmp_path, name, text, mode="w"):
    p = tmp_path / name
    if mode == "wb":
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def test_tokenize_modes():
    assert tokenize("a man's bike, near the wheel.", "word") == [
        "a", "man's", "bike", ",", "near", "the", "wheel", "."]
    assert tokenize("a man's bike, near", "space") == ["a", "man's", "bike,", "near"]
    assert tokenize("秦 川 雄，帝", "char") == ["秦", "川", "雄", "，", "帝"]
    assert tokenize("  \t ", "word") == []
    with pytest.raises(ValueError, match="tokenize"):
        tokenize("x", "bpe")


def test_vocab_specials_min_count_and_order():
    counts = count_tokens_from_lines(["b a b c", "b a d"])
    v = Vocab.from_counts(counts, min_count=2)
    assert v.itos[:3] == ["<pad>", "<unk>", "<bos>"]
    assert (PAD, UNK, BOS) == (0, 1, 2)
    assert v.itos[3:] == ["b", "a"]                      # by count, c and d are rarer than 2
    assert v.encode(["a", "c", "zzz", "b"]) == [4, UNK, UNK, 3]
    assert v.decode_ids([3, 4, UNK, PAD, 3]) == ["b", "a", "<unk>"]  # stops at the end marker


def count_tokens_from_lines(lines):
    from collections import Counter
    c = Counter()
    for line in lines:
        c.update(tokenize(line, "word"))
    return c


def test_encode_pads_truncates_and_counts(tmp_path, caplog):
    lines = ["one two three", "", "one two three four five six seven", "two", "  ",
             "one one one one one one one one"]
    p = _write(tmp_path, "t.txt", "\n".join(lines) + "\n")
    v = Vocab.from_counts(count_tokens(p, "word"))
    with caplog.at_level("WARNING"):
        x, st, toks = encode_file(p, v, max_len=5, mode="word", keep_tokens=True)
    assert x.shape == (4, 5) and x.dtype == torch.int64
    assert st.sequences == 4 and st.blank_lines == 2
    assert st.truncated == 2 and st.truncated_lines == [3, 6]
    assert st.max_length == 8 and st.tokens == 3 + 7 + 1 + 8
    assert "truncated" in caplog.text and "max_len=5" in caplog.text
    assert x[0, 3:].tolist() == [PAD, PAD] and x[2, 1:].tolist() == [PAD] * 4
    assert v.decode_ids(x[1].tolist()) == ["one", "two", "three", "four", "five"]
    assert len(toks[1]) == 7  # references keep the whole sentence
    assert int((x == BOS).sum()) == 0


def test_odd_max_len_and_crlf_bom(tmp_path):
    p = _write(tmp_path, "w.txt", b"\xef\xbb\xbfa b\r\nc d e\r\n", mode="wb")
    v = Vocab.from_counts(count_tokens(p, "space"), tokenize="space")
    assert "a" in v.stoi and "\ufeffa" not in v.stoi
    x, st, _ = encode_file(p, v, max_len=7, mode="space")
    assert x.shape == (2, 7) and st.truncated == 0
    assert v.decode_ids(x[1].tolist()) == ["c", "d", "e"]


def test_bad_input_messages(tmp_path):
    empty = _write(tmp_path, "empty.txt", "")
    with pytest.raises(DataError, match="empty.txt.*no sequences"):
        count_tokens(empty, "word")
    v = Vocab.from_counts(count_tokens_from_lines(["a"]))
    with pytest.raises(DataError, match="empty"):
        encode_file(empty, v, 5, "word")
    blank = _write(tmp_path, "blank.txt", "\n  \n\n")
    with pytest.raises(DataError, match="blank"):
        encode_file(blank, v, 5, "word")
    bad = _write(tmp_path, "latin1.txt", "ok line\nsecond\ncaf\xe9 au lait\n".encode("latin-1"),
                 mode="wb")
    with pytest.raises(DataError, match=r"latin1.txt:3: not valid UTF-8 \(byte 0xe9"):
        count_tokens(bad, "word")


def _text_cfg(tmp_path, **kw):
    train = _write(tmp_path, "train.txt", "\n".join(
        ["the cat sat on the mat .", "a dog ran .", "the dog sat on a mat .",
         "a cat ran on the mat and the dog sat there quietly today ."] * 5) + "\n")
    test = _write(tmp_path, "test.txt", "the cat ran .\na mouse sat on the mat .\n")
    base = dict(task="text", data=str(train), test_data=str(test), max_len=9, seq_len=9,
                num_eval=17, tokenize="word")
    base.update(kw)
    return TrainConfig(**base)


def test_text_task_contract_and_metrics(tmp_path):
    cfg = _text_cfg(tmp_path)
    task = TextTask(cfg)
    x = task.train_sequences()
    assert x.shape == (20, 9) and task.seq_len == 9 and task.start_token == BOS
    assert task.vocab_size == len(task.vocab) == 3 + 13
    assert task.train_stats.truncated == 5
    assert task.test_stats.unk_tokens == 1                    # "mouse"
    assert task.decode(x[:2]) == ["the cat sat on the mat .", "a dog ran ."]
    g = small_generator(vocab=task.vocab_size, seq_len=9, seed=3)
    g.start_token = task.start_token
    m = task.evaluate(g, phase="mle", epoch=0)
    for key in ("nll_test", "bleu2", "bleu3", "bleu4", "bleu5", "self_bleu2", "self_bleu5"):
        assert key in m and 0 <= m[key] < 100
    assert m["nll_test"] == pytest.approx(g.nll(task.test_sequences()))
    # BLEU against the test references, recomputed from the samples the task drew
    from seqgan_fast.tasks.text import task_seed
    s = g.sample(17, seed=task_seed(cfg.seed, "text-eval"))
    refs = [tokenize(t, "word") for t in ["the cat ran .", "a mouse sat on the mat ."]]
    assert m["bleu3"] == pytest.approx(bleu(task.decode_tokens(s), refs, 3), abs=1e-12)
    extras = task.summary_extras()["data"]
    assert extras["train"]["truncated"] == 5 and extras["bleu_references"] == "test"


def test_text_task_save_load_decode(tmp_path):
    task = TextTask(_text_cfg(tmp_path))
    run = tmp_path / "run"
    run.mkdir()
    task.save(run)
    saved = json.loads((run / "vocab.json").read_text(encoding="utf-8"))
    assert saved["itos"][:3] == ["<pad>", "<unk>", "<bos>"]
    (tmp_path / "train.txt").unlink()  # decoding must not need the data
    loaded = TextTask.load(run, task.cfg)
    x = torch.tensor([[3, 4, 5, 0, 6, 0, 0, 0, 0], [6, 1, 2, 3, 3, 3, 3, 3, 3]])
    assert loaded.decode(x) == task.decode(x)
    assert loaded.decode(x)[0].count(" ") == 2
    assert loaded.vocab_size == task.vocab_size and loaded.start_token == BOS
    with pytest.raises(RuntimeError, match="decoding only"):
        loaded.evaluate(None, phase="mle", epoch=0)


def test_text_task_char_mode_and_no_test(tmp_path):
    train = _write(tmp_path, "poem.txt", "秦 川 雄 帝 宅 ，\n函 谷 壮 皇 居 。\n")
    cfg = TrainConfig(task="text", data=str(train), tokenize="char", max_len=7, num_eval=5)
    task = TextTask(cfg)
    assert task.decode(task.train_sequences()) == ["秦川雄帝宅，", "函谷壮皇居。"]
    assert task.bleu_references == "train"
    g = small_generator(vocab=task.vocab_size, seq_len=7)
    g.start_token = task.start_token
    m = task.evaluate(g, phase="adv", epoch=1)
    assert "nll_test" not in m and "bleu4" in m


def test_text_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="tokenize"):
        TextTask(_text_cfg(tmp_path, tokenize="bpe"))
    with pytest.raises(ConfigError, match="--data"):
        TextTask(TrainConfig(task="text"))
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        TextTask(_text_cfg(tmp_path, data=str(tmp_path / "nope.txt")))


def test_relative_paths_resolve_against_data_dir(tmp_path, monkeypatch):
    (tmp_path / "text").mkdir()
    _write(tmp_path / "text", "mine.txt", "x y\n")
    monkeypatch.setenv("SEQGAN_FAST_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path / "text")
    assert resolve_data_path("mine.txt") == tmp_path / "text" / "mine.txt"   # cwd first
    monkeypatch.chdir("/")
    assert resolve_data_path("text/mine.txt") == tmp_path / "text" / "mine.txt"
    with pytest.raises(FileNotFoundError, match="SEQGAN_FAST_DATA"):
        resolve_data_path("text/other.txt")


def test_coco_preset_loads(shared_data):
    if not (shared_data / "text" / "coco_train.txt").is_file():
        pytest.skip("coco files not found")
    cfg = TrainConfig.preset("coco")
    task = TextTask(cfg)
    x = task.train_sequences()
    assert x.shape == (10_000, 37) and task.seq_len == 37
    assert task.train_stats.truncated == 0 and task.train_stats.max_length == 37
    assert 4000 < task.vocab_size < 6000
    assert task.test_sequences().shape[1] == 37
    # every row is words then only padding
    ends = (x == PAD).int().argmax(1)
    for row, e in zip(x[:200], ends[:200], strict=True):
        if row[e] == PAD:
            assert (row[e:] == PAD).all() and (row[:e] != PAD).all()


# -- issue 33, part 2: reliability ----------------------------------------------------------
@pytest.mark.parametrize("name", ["<pad>", "<bos>"])
def test_control_special_names_in_the_text_are_refused(tmp_path, name):
    """With tokenize=space a literal <pad>/<bos> was encoded as the end/start id inside a
    sentence (and sample printed <bos>): refused, naming the file and line."""
    p = _write(tmp_path, "s.txt", f"the cat sat\na dog {name} ran\n")
    with pytest.raises(DataError, match=rf"s.txt:2: the token {name} is the name of a special"):
        TextTask(TrainConfig(task="text", data=str(p), tokenize="space", max_len=5,
                             num_eval=4))
    v = Vocab.from_counts(count_tokens_from_lines(["a dog ran"]), tokenize="space")
    with pytest.raises(DataError, match=rf"s.txt:2: the token {name}"):
        encode_file(p, v, 5, "space")  # a test file is checked too
    # the word tokenizer splits it into ordinary tokens; <unk> stays the unknown token
    task = TextTask(TrainConfig(task="text", data=str(p), tokenize="word", max_len=6,
                                num_eval=4))
    assert PAD not in task.train_sequences()[1, :5].tolist()
    assert BOS not in task.train_sequences().tolist()
    q = _write(tmp_path, "u.txt", "the <unk> sat\n")
    t2 = TextTask(TrainConfig(task="text", data=str(q), tokenize="space", max_len=3,
                              num_eval=4))
    assert t2.train_sequences()[0].tolist()[1] == UNK


def test_data_path_that_is_a_directory(tmp_path):
    with pytest.raises(DataError, match=r"training file .* is a directory"):
        TextTask(TrainConfig(task="text", data=str(tmp_path), max_len=5, num_eval=4))
    with pytest.raises(DataError, match="is a directory"):
        resolve_data_path(tmp_path, "test")


def _fake_checkpoint(run):
    (run / "checkpoints" / "000001").mkdir(parents=True)
    (run / "checkpoints" / "LATEST").write_text("000001\n")


def test_resume_refuses_an_edited_data_file(tmp_path):
    """Same vocabulary size, one word replaced: the id of 'cat' would silently mean another
    word."""
    cfg = _text_cfg(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    TextTask(cfg).save(run)
    _fake_checkpoint(run)
    TextTask(cfg).save(run)  # the same data: a resume goes on
    train = tmp_path / "train.txt"
    train.write_text(train.read_text().replace("cat", "zebra"), encoding="utf-8")
    task = TextTask(cfg)
    saved = json.loads((run / "vocab.json").read_text(encoding="utf-8"))["itos"]
    assert len(task.vocab) == len(saved) and "cat" in saved and "cat" not in task.vocab.itos
    i = saved.index("cat")
    with pytest.raises(ConfigError, match=rf"cannot resume: .*train.txt no longer gives the "
                                          rf"vocabulary saved in .*vocab.json \(token id {i} "
                                          rf"was 'cat', is now '"):
        task.save(run)
    assert json.loads((run / "vocab.json").read_text(encoding="utf-8"))["itos"] == saved


def test_cli_resume_after_the_data_file_changed(tmp_path, capsys):
    from helpers import TINY_TRAIN

    from seqgan_fast.cli.commands import main

    _text_cfg(tmp_path)  # writes train.txt
    train = tmp_path / "train.txt"
    out = tmp_path / "run"
    tiny = [s for s in TINY_TRAIN if not s.startswith(("vocab_size", "seq_len"))]
    assert main(["train", "--threads", "1", "--data", str(train), "--out", str(out), "-q",
                 "--backend", "reference", "--set", *tiny, "max_len=9", "seq_len=9",
                 "batch_size=8"]) == 0
    before = (out / "vocab.json").read_text(encoding="utf-8")
    train.write_text(train.read_text().replace("cat", "zebra"), encoding="utf-8")
    capsys.readouterr()
    assert main(["train", "--threads", "1", "--out", str(out), "--resume", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot resume" in err[0] and str(train) in err[0]
    assert str(out / "vocab.json") in err[0]
    assert (out / "vocab.json").read_text(encoding="utf-8") == before
