"""Pretrained generator embeddings (seqgan_fast/data/embeddings.py, config g_embeddings): text and
.npy files, dimension mismatch (PCA down, orthogonal up), missing tokens, freezing, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import TINY_TRAIN

from seqgan_fast.cli.commands import main
from seqgan_fast.data.embeddings import load_embeddings
from seqgan_fast.data.text import DataError

TOKENS = ["<pad>", "<bos>", "apple", "pear", "fig", "plum"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.one_thread


def _glove(path, rows, header=False):
    lines = [f"{len(rows)} {len(next(iter(rows.values())))}"] if header else []
    lines += [" ".join([tok, *map(str, vec)]) for tok, vec in rows.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_text_file_same_dimension_and_missing_tokens(tmp_path):
    rows = {"apple": [1.0, 2.0, 3.0], "zebra": [9.0, 9.0, 9.0], "fig": [-1.0, 0.5, 0.0]}
    for header in (False, True):  # GloVe (no header) and word2vec text (header "N D")
        emb = load_embeddings(_glove(tmp_path / f"v{header}.txt", rows, header), TOKENS, 3)
        assert emb.found == 2 and emb.vocab_size == 6 and emb.projection == "none"
        assert torch.equal(emb.weight[2], torch.tensor([1.0, 2.0, 3.0]))
        assert torch.equal(emb.weight[4], torch.tensor([-1.0, 0.5, 0.0]))
        assert emb.weight.shape == (6, 3) and torch.isfinite(emb.weight).all()
        assert not torch.equal(emb.weight[3], torch.zeros(3))  # missing: a random draw


def test_npy_aligned_and_projected(tmp_path):
    gen = np.random.default_rng(0)
    base = gen.normal(size=(6, 2)).astype(np.float32)
    arr = np.concatenate([base, base @ gen.normal(size=(2, 6)).astype(np.float32)], 1)  # rank 2
    path = tmp_path / "v.npy"
    np.save(path, arr)
    same = load_embeddings(path, TOKENS, 8)
    assert same.found == 6 and same.projection == "none"
    assert torch.allclose(same.weight, torch.from_numpy(arr))
    down = load_embeddings(path, TOKENS, 2)  # PCA: a rank-2 set keeps its distances
    assert down.projection == "pca" and down.weight.shape == (6, 2)
    d_in = torch.cdist(torch.from_numpy(arr), torch.from_numpy(arr))
    torch.testing.assert_close(torch.cdist(down.weight, down.weight), d_in, atol=1e-4,
                               rtol=1e-4)
    up = load_embeddings(path, TOKENS, 16)  # semi-orthogonal: distances kept exactly
    assert up.projection == "random-orthogonal" and up.weight.shape == (6, 16)
    torch.testing.assert_close(torch.cdist(up.weight, up.weight), d_in, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("text,match", [
    ("apple 1 2\npear 1\n", r"v.txt:2: 1 values, expected 2"),
    ("apple 1 x\n", r"v.txt:1: values of 'apple' are not numbers"),
    ("apple 1 nan\n", r"v.txt:1: non-finite"),
    ("zebra 1 2\n", "none of the 6 vocabulary entries"),
])
def test_bad_text_files(tmp_path, text, match):
    p = tmp_path / "v.txt"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        load_embeddings(p, TOKENS, 2)


def test_bad_npy_and_missing_file(tmp_path):
    p = tmp_path / "v.npy"
    np.save(p, np.zeros((5, 3), dtype=np.float32))
    with pytest.raises(DataError, match=r"shape \(5, 3\), expected \(6, D\)"):
        load_embeddings(p, TOKENS, 3)
    with pytest.raises(FileNotFoundError, match="embeddings file not found"):
        load_embeddings(tmp_path / "nope.txt", TOKENS, 3)


def test_training_with_pretrained_frozen_embedding(tmp_path, capsys):
    """The oracle's tokens are "0".."V-1": a vector file keyed that way initialises the run;
    frozen, the embedding is still the file's after training; the count is in summary.json."""
    V, E = 61, 8
    gen = np.random.default_rng(1)
    vecs = {str(i): gen.normal(size=E).round(4).tolist() for i in range(0, V, 2)}
    path = _glove(tmp_path / "oracle_vecs.txt", vecs)
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--backend", "reference", "-q", "--set",
                 *TINY_TRAIN, f"g_embeddings={path}", "g_embeddings_freeze=true"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["g_embeddings"]["found"] == 31 and summary["g_embeddings"]["vocab_size"] == V
    from seqgan_fast.recommend import load_run_generator

    g = load_run_generator(out).generator
    assert torch.allclose(g.embedding.weight[4], torch.tensor(vecs["4"]), atol=1e-6)
    # unfrozen, training moves it
    out2 = tmp_path / "run2"
    assert main(["train", "--out", str(out2), "--backend", "reference", "-q", "--set",
                 *TINY_TRAIN, f"g_embeddings={path}"]) == 0
    g2 = load_run_generator(out2).generator
    assert not torch.allclose(g2.embedding.weight[4], torch.tensor(vecs["4"]), atol=1e-6)


def test_bad_embeddings_file_is_one_line(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "--backend", "reference", "-q",
                 "--set", *TINY_TRAIN, f"g_embeddings={tmp_path / 'missing.txt'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "embeddings file not found" in err[0]
    assert not (tmp_path / "r" / "checkpoints").exists()


# -- issue 33, part 2: reliability ----------------------------------------------------------
@pytest.mark.parametrize("array,match", [
    (np.zeros((6, 0), np.float32), r"shape \(6, 0\), expected \(6, D\) with D >= 1"),
    ((np.ones((6, 3)) + 1j).astype(np.complex64), r"dtype complex64, expected real numbers"),
    (np.ones((6, 3), bool), r"dtype bool, expected real numbers"),
    (np.full((6, 3), 1e30, np.float32), r"row 0 has a value of magnitude >= 2\^64"),
    (np.vstack([np.zeros((5, 3)), [[0, -2.0**64, 0]]]), r"row 5 has a value of magnitude"),
])
def test_npy_without_usable_vectors_is_refused(tmp_path, array, match):
    p = tmp_path / "v.npy"
    np.save(p, array)
    with pytest.raises(DataError, match=rf"v.npy: {match}"):
        load_embeddings(p, TOKENS, 3)


def test_npy_just_below_the_limit_loads(tmp_path):
    p = tmp_path / "v.npy"
    np.save(p, np.full((6, 3), 1e18, np.float32))
    assert load_embeddings(p, TOKENS, 3).weight.abs().max() < 2.0**64


def test_text_vectors_too_large_or_not_utf8(tmp_path):
    p = tmp_path / "v.txt"
    p.write_text("apple 1 2\npear 1e30 2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"v.txt:2: a value of 'pear' has magnitude >= 2\^64"):
        load_embeddings(p, TOKENS, 2)
    p.write_bytes(b"apple 1 2\n\x94\x95 3 4\n")
    with pytest.raises(DataError, match=r"v.txt:2: not valid UTF-8 \(byte 0x94"):
        load_embeddings(p, TOKENS, 2)
    with pytest.raises(DataError, match=r"embeddings file .* is a directory"):
        load_embeddings(tmp_path, TOKENS, 2)


def test_huge_embeddings_refused_before_training(tmp_path, capsys):
    """Scaled to 1e30 they trained until the finite-value guard blamed g_lr."""
    p = tmp_path / "big.npy"
    np.save(p, np.full((61, 8), 1e30, np.float32))
    assert main(["train", "--out", str(tmp_path / "r"), "--backend", "reference", "-q",
                 "--set", *TINY_TRAIN, f"g_embeddings={p}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "big.npy" in err[0] and "2^64" in err[0] and "g_lr" not in err[0]
    assert not (tmp_path / "r" / "checkpoints").exists()
