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
            r, "generator", nan_fill, update_digest=True), "sample"), "NaN or inf"),
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
        ("--threads 0", lambda tmp, run: ["train", "--out", str(tmp / "n"), "--threads", "0"],
         "--threads"),
    ]


CASES = _cases()



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
