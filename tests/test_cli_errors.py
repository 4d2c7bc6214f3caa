"""Every bad input to the command line ends in one line ``seqgan-fast: error: ...`` naming the
argument, file, line or key, exit status 2, and leaves every file of an existing run as it
was (``test_one_line_errors`` is the table of cases); ``bench`` refuses a bad ``--json``
before running and exits 1 when every contender failed."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import (
    REPO,
    copy_run,
    edit_state,
    flip_bytes,
    latest_checkpoint_dir,
    nan_fill,
    rewrite_group,
    snapshot,
    wrong_optimizer_shape,
)
from helpers import TINY_TRAIN as TINY

from seqgan_fast.cli.commands import main

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.one_thread


# (id, setup(tmp, run) -> argv, text the one line must contain). ``run`` is a fresh copy of
# the pristine_run run, which setup may tamper with before the command.
def _cases() -> list[tuple[str, Callable[[Path, Path], list[str]], str]]:
    def train(*a: str) -> Callable[[Path, Path], list[str]]:
        return lambda tmp, run: ["train", "--out", str(tmp / "new"), "-q", "--set", *TINY, *a]

    def tamper(fn: Callable[[Path], None], cmd: str = "resume"
               ) -> Callable[[Path, Path], list[str]]:
        def setup(tmp: Path, run: Path) -> list[str]:
            fn(run)
            if cmd == "sample":
                return ["sample", "--run", str(run), "-n", "2"]
            return ["train", "--out", str(run), "--resume", "-q"]
        return setup

    def latest_text(text: str | bytes) -> Callable[[Path], None]:
        def fn(run: Path) -> None:
            f = run / "checkpoints" / "LATEST"
            f.write_bytes(text if isinstance(text, bytes) else text.encode())
        return fn

    def latest_dir(run: Path) -> None:
        (run / "checkpoints" / "LATEST").unlink()
        (run / "checkpoints" / "LATEST").mkdir()

    def outside(run: Path) -> None:  # a real checkpoint, outside the run folder
        shutil.copytree(latest_checkpoint_dir(run), run.parent / "elsewhere")
        (run / "checkpoints" / "LATEST").write_text(str(run.parent / "elsewhere") + "\n")

    def bad_metrics(run: Path) -> None:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        lines[1] = '{"phase": "mle", "epo'
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")

    def csv_dup(tmp: Path, run: Path) -> list[str]:
        f = tmp / "dup.csv"
        f.write_text("user_id,item_id,item_id\n" + "".join(f"u{i % 5},i{i},i{i}\n"
                                                          for i in range(40)))
        return ["train", "--out", str(tmp / "new"), "-q", "--data", str(f)]

    def text_rare(tmp: Path, run: Path) -> list[str]:
        f = tmp / "few.txt"
        f.write_text("a b c\nb c d\n")
        return ["train", "--out", str(tmp / "new"), "-q", "--data", str(f),
                "--set", "min_count=1000"]

    def recsys_rare(tmp: Path, run: Path) -> list[str]:
        f = tmp / "few.csv"
        f.write_text("user_id,item_id\n" + "".join(f"u{i % 3},i{i % 7}\n" for i in range(30)))
        return ["train", "--out", str(tmp / "new"), "-q", "--data", str(f),
                "--set", "min_count=1000"]

    def under_file(tmp: Path, run: Path) -> list[str]:
        (tmp / "afile").write_text("x")
        return ["train", "--out", str(tmp / "afile" / "run"), "-q"]

    def text_file(tmp: Path, lines: int) -> Path:
        f = tmp / "t.txt"
        f.write_text("".join(f"w{i % 5} w{i % 7} w{i % 3} w{i % 4}\n" for i in range(lines)))
        return f

    def text_train(lines: int, *a: str) -> Callable[[Path, Path], list[str]]:
        return lambda tmp, run: ["train", "--out", str(tmp / "new"), "-q", "--data",
                                 str(text_file(tmp, lines)), "--set", "min_count=1", *a]

    def state_file(text: str) -> Callable[[Path], None]:
        return lambda r: (latest_checkpoint_dir(r) / "state.json").write_text(text)

    def big_fill(tensors: dict) -> None:
        for t in tensors.values():
            t.fill_(1e30)

    def latest_link(run: Path) -> None:
        secret = run.parent / "passwd"
        secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
        (run / "checkpoints" / "LATEST").unlink()
        (run / "checkpoints" / "LATEST").symlink_to(secret)

    def deep_metrics(run: Path) -> None:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        lines[1] = "[" * 100_000 + "]" * 100_000
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")

    def bench(*a: str) -> Callable[[Path, Path], list[str]]:
        return lambda tmp, run: ["bench", "--quick", "-q", "--op", "sample",
                                 *[x.replace("TMP", str(tmp)) for x in a]]

    return [
        # 1. silent garbage -> refused at start, or the checkpoint refuses to load
        ("g_lr=inf", train("g_lr=inf"), "g_lr"),
        ("d_l2_reg=nan", train("d_l2_reg=nan"), "d_l2_reg"),
        ("temperature=1e-45", train("temperature=1e-45"), "temperature"),
        ("sample --temperature 1e-45",
         lambda tmp, run: ["sample", "--run", str(run), "--temperature", "1e-45"],
         "--temperature"),
        ("checkpoint NaN-filled", tamper(lambda r: rewrite_group(
            r, "generator", nan_fill, update_digest=False), "sample"), "corrupted"),
        ("checkpoint NaN-filled, digest forged", tamper(lambda r: rewrite_group(
            r, "generator", nan_fill, update_digest=True), "sample"), "NaN, inf"),
        ("checkpoint 64 bytes flipped", tamper(flip_bytes, "sample"), "corrupted"),
        ("checkpoint 64 bytes flipped (resume)", tamper(flip_bytes), "corrupted"),
        # 3. settings that crashed minutes later, and tracebacks
        ("num_rollouts=1e12", train("num_rollouts=1000000000000"), "num_rollouts"),
        ("batch_size=1e12", train("batch_size=1000000000000"), "batch_size"),
        ("d_filter_sizes=0", train("d_filter_sizes=0", "d_num_filters=8"), "d_filter_sizes"),
        ("d_num_filters=0", train("d_filter_sizes=2", "d_num_filters=0"), "d_num_filters"),
        ("d_filter_sizes wider than seq_len", train("d_filter_sizes=9", "d_num_filters=8"),
         "d_filter_sizes"),
        ("--out under a file", under_file, "is a file"),
        ("--out /proc/x", lambda tmp, run: ["train", "--out", "/proc/x/run", "-q"],
         "cannot be written"),
        ("--out /sys/x", lambda tmp, run: ["train", "--out", "/sys/x", "-q"],
         "cannot be written"),
        ("sample --seed 2**64",
         lambda tmp, run: ["sample", "--run", str(run), "--seed", str(2**64)], "--seed"),
        ("bench --json to a folder", bench("--json", "TMP"), "--json"),
        ("bench --json in a missing folder", bench("--json", "TMP/no/such.json"),
         "does not exist"),
        ("state.json wrong type", tamper(lambda r: edit_state(
            r, lambda s: s.__setitem__("mle_epoch", "3"))), "'mle_epoch'"),
        ("state.json wrong type (sample)", tamper(lambda r: edit_state(
            r, lambda s: s.__setitem__("model", [1, 2])), "sample"), "'model'"),
        ("state.json missing key", tamper(lambda r: edit_state(
            r, lambda s: s.pop("seed_calls"))), "'seed_calls'"),
        ("state.json missing digests", tamper(lambda r: edit_state(
            r, lambda s: s.pop("digests"))), "'digests'"),
        ("state.json groups lacks one", tamper(lambda r: edit_state(
            r, lambda s: s["groups"].remove("rollout"))), "'groups'"),
        ("state.json a list", tamper(lambda r: edit_state(r, lambda s: [s])), "JSON object"),
        ("state.json phase bogus", tamper(lambda r: edit_state(
            r, lambda s: s.__setitem__("phase", "bogus"))), "'phase'"),
        ("optimizer tensor of the wrong shape", tamper(lambda r: rewrite_group(
            r, "optimizers", wrong_optimizer_shape, update_digest=True)), "optimizer tensor"),
        ("LATEST is a folder", tamper(latest_dir), "is a folder"),
        ("LATEST is binary", tamper(latest_text(b"\xff\xfe\x00\x81")), "not text"),
        ("metrics.jsonl corrupt line on resume", tamper(bad_metrics), "metrics.jsonl:2"),
        ("config.json a list on resume", tamper(
            lambda r: (r / "config.json").write_text("[1]")), "config.json"),
        # 4. LATEST outside the run folder
        ("LATEST ../../x", tamper(latest_text("../../x\n"), "sample"), "not a checkpoint"),
        ("LATEST absolute path", tamper(outside, "sample"), "not a checkpoint"),
        ("LATEST absolute path (resume)", tamper(outside), "not a checkpoint"),
        # 5. minor
        ("--resume --overwrite",
         lambda tmp, run: ["train", "--out", str(run), "--resume", "--overwrite"],
         "exclude each other"),
        ("duplicate CSV header", csv_dup, "duplicate column"),
        ("min_count above every count (text)", text_rare, "min_count"),
        ("min_count above every count (recsys)", recsys_rare, "min_count"),
        ("bench --seq-len 1", bench("--seq-len", "1"), "--seq-len"),
        ("sample -n 1e11", lambda tmp, run: ["sample", "--run", str(run), "-n", str(10**11)],
         "-n must be"),
        ("train --seed 2**64", train(f"seed={2**64}"), "seed"),
        ("train --seed 2**64 (flag)",
         lambda tmp, run: ["train", "--out", str(tmp / "new"), "--seed", str(2**64)], "seed"),
        ("vocab_size overflow", train(f"vocab_size={2**40}"), "vocab_size"),
        # issue 33, part 2: state.json numbers, format and nesting
        ("state.json elapsed_s NaN", tamper(lambda r: edit_state(
            r, lambda s: s.__setitem__("elapsed_s", float("nan")))), "'elapsed_s'"),
        ("state.json elapsed_s 1e30", tamper(lambda r: edit_state(
            r, lambda s: s.__setitem__("elapsed_s", 1e30))), "'elapsed_s'"),
        ("state.json mle_epoch 10**30", tamper(lambda r: edit_state(
            r, lambda s: s.__setitem__("mle_epoch", 10**30))), "'mle_epoch'"),
        ("state.json phase_s.adv inf", tamper(lambda r: edit_state(
            r, lambda s: s["phase_s"].__setitem__("adv", float("inf")))), "'phase_s.adv'"),
        ("state.json NaN in its config (sample)", tamper(lambda r: edit_state(
            r, lambda s: s["config"].__setitem__("g_lr", float("nan"))), "sample"),
         "'config.g_lr'"),
        ("state.json format 2 (sample)", tamper(lambda r: edit_state(
            r, lambda s: s.__setitem__("format", 2)), "sample"), "'format'"),
        ("state.json format 2 (resume)", tamper(lambda r: edit_state(
            r, lambda s: s.__setitem__("format", 2))), "'format'"),
        ("state.json deeply nested (sample)", tamper(state_file(
            "[" * 100_000 + "]" * 100_000), "sample"), "state.json: unreadable"),
        ("config.json deeply nested on resume", tamper(
            lambda r: (r / "config.json").write_text("[" * 100_000 + "]" * 100_000)),
         "config.json: unreadable"),
        ("metrics.jsonl deeply nested line on resume", tamper(deep_metrics), "metrics.jsonl:2"),
        # sizes that failed after MLE (seq_len=1) or ran for minutes (batch_size)
        ("seq_len=1", train("seq_len=1", "d_filter_sizes=1", "d_num_filters=8"),
         "seq_len: expected at least 2"),
        ("text max_len=1", text_train(40, "max_len=1", "d_filter_sizes=1", "d_num_filters=8"),
         "max_len: expected at least 2"),
        ("batch_size above num_train", train("batch_size=100000"), "num_train=120"),
        ("batch_size above the text data", text_train(20, "batch_size=64", "max_len=5",
                                                      "d_filter_sizes=2", "d_num_filters=8",
                                                      "mle_epochs=1", "adv_batches=1"),
         "larger than the training data"),
        ("recommend --out /proc/x.csv", lambda tmp, run: [
            "recommend", "--run", str(run), "--out", "/proc/x.csv"], "--out /proc/x.csv"),
        # messages
        ("checkpoint 1e30, digest forged", tamper(lambda r: rewrite_group(
            r, "generator", big_fill, update_digest=True), "sample"), "magnitude >= 2**64"),
        ("LATEST a link to another file", tamper(latest_link, "sample"), "symbolic link"),
        ("--threads 0", lambda tmp, run: ["train", "--out", str(tmp / "n"), "--threads", "0"],
         "--threads"),
        ("--data a directory", lambda tmp, run: ["train", "--out", str(tmp / "new"), "-q",
                                                 "--data", str(tmp)], "is a directory"),
    ]


CASES = _cases()


@pytest.mark.parametrize("setup,expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_line_errors(setup, expect, pristine_run, tmp_path, capsys):
    run = copy_run(pristine_run, tmp_path / "run")
    argv = setup(tmp_path, run)
    before = snapshot(run)
    rc = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert rc == 2, (argv, captured.err)
    assert len(lines) == 1 and lines[0].startswith("seqgan-fast: error: "), lines
    assert expect in lines[0], lines[0]
    assert captured.out == "" and "Traceback" not in captured.err
    assert "root:x:0:0" not in captured.err  # never a file's contents (LATEST as a link)
    assert snapshot(run) == before  # nothing already saved is lost or changed
    assert not (tmp_path / "new").exists()  # nothing written for a refused new run


def test_one_line_in_a_real_process(pristine_run, tmp_path):
    """Outside pytest's log capture: no warning or log line may precede the error."""
    run = copy_run(pristine_run, tmp_path / "run")
    rewrite_group(run, "generator", nan_fill, update_digest=True)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH",
                                                                                "")}
    for argv in (["train", "--out", "/proc/x/run"], ["train", "--out", str(run), "--resume"],
                 ["sample", "--run", str(run)]):
        proc = subprocess.run([sys.executable, "-m", "seqgan_fast", *argv], env=env,
                              capture_output=True, text=True, timeout=300)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, (argv, proc.stderr)
        assert lines[0].startswith("seqgan-fast: error: ") and proc.stdout == ""


def test_bench_exits_non_zero_when_every_contender_failed(monkeypatch, capsys, tmp_path):
    from seqgan_fast.benchmarks import harness  # here: test_cli hides the module

    def broken(op, cfg, device, backends):
        raise RuntimeError("no contender can run here")

    monkeypatch.setattr(harness, "BUILDERS", {op: broken for op in harness.OPS})
    out = tmp_path / "b.json"
    assert harness.main(["--quick", "-q", "--op", "sample", "--json", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("seqgan-fast: error: bench: every contender failed")
    assert json.loads(out.read_text())["results"][0]["error"].startswith("RuntimeError")


def test_bench_json_target_is_checked_before_the_run(monkeypatch, tmp_path, capsys):
    from seqgan_fast.benchmarks import harness

    monkeypatch.setattr(harness, "run", lambda *a, **k: pytest.fail("benchmark ran"))
    assert harness.main(["--quick", "-q", "--json", str(tmp_path)]) == 2
    assert harness.main(["--quick", "-q", "--json", str(tmp_path / "x" / "y.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("seqgan-fast: error: bench: --json") for e in err)
    assert not (tmp_path / "x").exists()


def test_a_filesystem_root_or_the_home_folder_is_no_run_folder(tmp_path, monkeypatch, capsys):
    """--out / wrote config.json, checkpoints/, ... into the root (and --overwrite would clear
    them there): refused, as is the user's home folder, before anything is written."""
    from seqgan_fast.config import ConfigError
    from seqgan_fast.run.folder import check_output_folder

    for root in ("/", "/tmp/.."):
        with pytest.raises(ConfigError, match="is the file system root"):
            check_output_folder(root)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for out in (str(home), "~", str(home / "sub" / "..")):
        assert main(["train", "--out", out, "-q", "--set", *TINY]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "is your home folder" in lines[0], lines
    assert list(home.iterdir()) == []


def test_history_refuses_special_tokens_by_name():
    """sample --history "<pad> <bos> i1" dropped the specials without a word."""
    from types import SimpleNamespace

    import torch

    from seqgan_fast.cli.commands import _history_prefix
    from seqgan_fast.config import ConfigError

    vocab = SimpleNamespace(stoi={"<pad>": 0, "<bos>": 1, "i1": 2, "i2": 3}, num_specials=2)
    task, gen = SimpleNamespace(vocab=vocab), SimpleNamespace(seq_len=5, device="cpu")
    with pytest.raises(ConfigError, match="--history: <pad>, <bos> are special tokens"):
        _history_prefix(task, "recsys", "<pad> <bos> i1", gen)
    with pytest.raises(ConfigError, match="--history: <bos> is a special token"):
        _history_prefix(task, "recsys", "i1 <bos> <bos>", gen)
    assert torch.equal(_history_prefix(task, "recsys", "i1 i2", gen), torch.tensor([[2, 3]]))


def test_a_full_disk_during_training_is_one_line_and_keeps_the_checkpoint(
        tmp_path, monkeypatch, capsys):
    """safetensors raises its own SafetensorError on ENOSPC (it was a traceback): one line
    naming the folder, exit status 2, no temporary folder left, the earlier checkpoint
    readable and resumable."""
    from safetensors import SafetensorError

    from seqgan_fast.run import checkpoint as ckpt

    out = tmp_path / "run"
    real = ckpt.save_file

    def filling(tensors, filename, *a, **k):
        if (out / "checkpoints" / "LATEST").exists() and \
                str(filename).startswith(str(out / "checkpoints")):
            raise SafetensorError("Error while serializing: I/O error: No space left on "
                                  "device (os error 28)")
        return real(tensors, filename, *a, **k)

    monkeypatch.setattr(ckpt, "save_file", filling)
    assert main(["train", "--out", str(out), "-q", "--set", *TINY]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqgan-fast: error: cannot write a "
                                                   f"checkpoint in {out / 'checkpoints'}")
    assert "No space left on device" in lines[0] and "previous checkpoint is kept" in lines[0]
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
    kept = ckpt.latest_checkpoint(out)
    ckpt.load_checkpoint(kept)
    monkeypatch.setattr(ckpt, "save_file", real)
    assert main(["train", "--out", str(out), "--resume", "-q"]) == 0


_SIGTERM_DURING_CHECKPOINT = """
import os, signal, sys
from seqgan_fast.run import checkpoint as ckpt
from seqgan_fast.cli.commands import main
real, calls = ckpt.save_file, []
def save_file(tensors, filename, *a, **k):
    calls.append(filename)
    real(tensors, filename, *a, **k)
    if "checkpoints/.tmp-" in str(filename) and len(calls) >= 2:
        os.kill(os.getpid(), signal.SIGTERM)  # half-way through a checkpoint
ckpt.save_file = save_file
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_is_one_line_and_leaves_no_temporary_checkpoint(tmp_path):
    """SIGTERM (a scheduler, torchrun stopping the survivors) ended the process at once:
    exit 143, no message, a checkpoints/.tmp-* folder left behind. Now as SIGINT: one line,
    temporaries removed, exit status 143, the run resumable."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH",
                                                                                "")}
    proc = subprocess.run([sys.executable, "-c", _SIGTERM_DURING_CHECKPOINT, "train",
                           "--out", str(out), "-q", "--threads", "1", "--set", *TINY],
                          env=env, capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 143, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("seqgan-fast: terminated (SIGTERM)"), lines
    assert f"--out {out} --resume" in lines[0]
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
    assert main(["train", "--out", str(out), "--resume", "-q"]) == 0
