"""One trainer per run folder (seqgan_fast/run/lock.py): a second trainer is refused with one
line, a killed holder's lock is taken over, a run stopped before its first checkpoint is
rerun."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys

import pytest
from helpers import REPO, copy_run, snapshot, typed_setting
from helpers import TINY_TRAIN as TINY

from seqgan_fast.cli.commands import main
from seqgan_fast.config import TrainConfig
from seqgan_fast.run.lock import RunLock, RunLockedError, is_locked

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.one_thread


@pytest.mark.parametrize("extra", [[], ["--overwrite"], ["--resume"]])
def test_a_second_trainer_on_a_live_run_is_refused(pristine_run, tmp_path, capsys, extra):
    run = copy_run(pristine_run, tmp_path / "run")
    before = snapshot(run)
    with RunLock(run):  # a trainer holds the folder (this process, another open file)
        argv = ["train", "--out", str(run), "-q", *extra]
        assert main(argv if extra else [*argv, "--set", *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "in use by a running trainer" in err[0], err
    assert f"process {os.getpid()}" in err[0]
    assert snapshot(run) == before
    assert not is_locked(run)


def test_lock_is_exclusive_released_and_reported():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        with RunLock(d) as lock:
            assert lock.held and is_locked(d)
            with pytest.raises(RunLockedError, match=f"process {os.getpid()}"):
                RunLock(d).acquire()
        assert not is_locked(d)
        RunLock(d).acquire().release()


def test_stale_lock_of_a_killed_process_is_taken_over(tmp_path, caplog):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH",
                                                                                "")}
    code = ("import sys; from seqgan_fast.run.lock import RunLock; RunLock(sys.argv[1])"
            ".acquire(); print('locked', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert is_locked(tmp_path)
        with pytest.raises(RunLockedError, match=f"process {proc.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert not is_locked(tmp_path)  # the kernel dropped the lock with the process
    with caplog.at_level(logging.INFO, logger="seqgan_fast.run.lock"):
        with RunLock(tmp_path):
            assert (tmp_path / ".lock").read_text().split() == [str(os.getpid())]
    assert f"taking over the lock left by process {proc.pid}" in caplog.text


@pytest.mark.parametrize("extra", [[], ["--resume"]])
def test_a_run_killed_before_its_first_checkpoint_can_be_rerun(tmp_path, capsys, extra):
    run = tmp_path / "run"
    run.mkdir()
    cfg = TrainConfig.preset("quick", **{k: typed_setting(k, v) for k, v in
                                        (s.split("=") for s in TINY)}, backend="reference")
    (run / "config.json").write_text(cfg.to_json())
    (run / "metrics.jsonl").write_text('{"phase": "mle", "epoch": 0, "nll_oracle": 5.4}\n')
    argv = ["train", "--out", str(run), "-q"]
    assert main([*argv, *extra] if extra else [*argv, "--set", *TINY]) == 0, \
        capsys.readouterr().err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["phase"], r["epoch"]) for r in records] == [("mle", 0), ("mle", 2), ("adv", 1)]
