"""Data-parallel training (distributed.py) on CPU: gloo, 2 processes on 127.0.0.1, tiny sizes.

Ranks are started with ``torch.multiprocessing`` (spawn) or, for the launch itself, ``torchrun``
(``python -m torch.distributed.run``). Each test compares a 2-process run with a 1-process run of
the same seed: sampled tokens bit for bit (Philox rows are logical), rewards and weights to the
float tolerance of a different reduction order (``WEIGHT_TOL``, measured below).
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import read_metrics

from seqgan_fast import Discriminator, Generator, ops
from seqgan_fast.cli.commands import main
from seqgan_fast.parallel.distributed import World, activate, shard_rollout_rewards, world_from_env
from seqgan_fast.run import checkpoint as ckpt
from seqgan_fast.train.draws import sample_in_chunks

pytestmark = [pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                 reason="torch.distributed with gloo is not available"),
              pytest.mark.usefixtures("one_thread")]  # the ranks set theirs in _rank

REPO = Path(__file__).resolve().parents[1]
# Odd batch (31 -> shards of 15 and 16) and odd evaluation sizes on purpose.
TRAIN = ["vocab_size=61", "seq_len=7", "g_emb_dim=8", "g_hidden_dim=16", "num_train=120",
         "num_eval=91", "num_test=31", "mle_epochs=2", "eval_every=2", "d_pretrain_rounds=1",
         "d_num_negatives=65", "d_epochs=2", "d_emb_dim=8", "d_filter_sizes=2,3",
         "d_num_filters=8,8", "adv_batches=2", "num_rollouts=2", "batch_size=31",
         "adv_d_rounds=1"]
# max |dweight|, 2 ranks vs 1 process. The discriminators agree to ~1e-7 (measured 6e-8);
# the generator's embedding rows of rare tokens get near-zero gradients, whose rounding Adam
# turns into steps of up to lr (measured 1.35e-5 in the history-conditioned test once the CPU
# discriminator step moved to the unpacked GEMM, 7e-7 elsewhere).
WEIGHT_TOL = 5e-5
METRIC_RTOL = 1e-5  # relative, metrics.jsonl values (measured ~2e-9)
JOIN_S = 90         # a rank that is not done by then is a hang: the test fails
# gloo picks its interface from the host name, which a CI container may not resolve
LOOPBACK = {"GLOO_SOCKET_IFNAME": "lo"} if sys.platform.startswith("linux") else {}


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- ranks ------------------------------------------------------------------------------------
def _rank(rank: int, size: int, port: int, job: str, out: str, argv: list[str]) -> None:
    """One rank of a spawned job: torchrun's environment, one thread, then ``job``; what the
    rank reports goes to ``out``/rank<r>.json, its stderr to ``out``/rank<r>.err."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE=str(size), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), **LOOPBACK)
    torch.set_num_threads(1)
    folder = Path(out)
    with open(folder / f"rank{rank}.err", "w") as err, contextlib.redirect_stderr(err):
        report = _JOBS[job](rank, folder, argv)
    (folder / f"rank{rank}.json").write_text(json.dumps(report))


def _job_train(rank: int, folder: Path, argv: list[str]) -> dict:
    return {"rc": main(argv)}


def _job_train_kill_rank1(rank: int, folder: Path, argv: list[str]) -> dict:
    """Rank 1 dies (SIGKILL-like: no clean-up) in its first discriminator round."""
    from seqgan_fast.train.trainer import SeqGANTrainer

    if rank == 1:
        def die(self):
            os._exit(9)
        SeqGANTrainer.discriminator_round = die
    t0 = time.perf_counter()
    rc = main(argv)
    return {"rc": rc, "stop_s": time.perf_counter() - t0}


def _job_draws(rank: int, folder: Path, argv: list[str]) -> dict:
    """Sampled rows and rollout rewards of one batch, each rank drawing its share."""
    backend = argv[0]
    world = world_from_env("cpu", 30.0)
    g, d, B = _models()
    with activate(world):
        tokens = sample_in_chunks(g, 45, seed=11, backend=backend, chunk=8)
    lo, hi = world.shard(B)
    part = ops.sample(g, hi - lo, seed=5, backend=backend, row_offset=lo)
    x = world.gather_rows(part, B)
    rewards = world.gather_rows(shard_rollout_rewards(world, g, d, x, 3, 7, backend), B)
    dist.destroy_process_group()
    return {"tokens": tokens.tolist(), "x": x.tolist(), "rewards": rewards.tolist()}


_JOBS = {"train": _job_train, "kill": _job_train_kill_rank1, "draws": _job_draws}


def _models() -> tuple[Generator, Discriminator, int]:
    torch.manual_seed(3)
    g = Generator(53, 8, 16, 6)
    d = Discriminator(53, 6, 8, (2, 3), (8, 8))
    return g, d, 13


def spawn(job: str, folder: Path, argvs: list[list[str]]) -> list[dict]:
    """Run ``job`` on len(argvs) ranks (rank r gets argvs[r]); their reports, in rank order.
    A rank that dies leaves no report (None); a job not done within JOIN_S fails the test."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    size = len(argvs)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_rank, args=(r, size, port, job, str(folder), argvs[r]))
             for r in range(size)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + JOIN_S
    for p in procs:
        p.join(max(1.0, deadline - time.monotonic()))
    hung = [r for r, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert not hung, f"ranks {hung} still running after {JOIN_S} s: a hang"
    reports = []
    for r in range(size):
        path = folder / f"rank{r}.json"
        reports.append(json.loads(path.read_text()) if path.is_file() else None)
    return reports


def stderr_of(folder: Path, rank: int) -> str:
    return (folder / f"rank{rank}.err").read_text()


def train_argv(out: Path, *extra: str, sets: list[str] = TRAIN) -> list[str]:
    return ["train", "--out", str(out), "-q", "--threads", "1", "--dist-timeout", "30",
            *extra, "--set", *sets]


def one_process(out: Path, *extra: str, sets: list[str] = TRAIN) -> None:
    assert main(train_argv(out, *extra, sets=sets)) == 0


# -- comparisons ------------------------------------------------------------------------------
def assert_same_metrics(a: Path, b: Path) -> None:
    ra, rb = read_metrics(a), read_metrics(b)
    assert [(r["phase"], r["epoch"]) for r in ra] == [(r["phase"], r["epoch"]) for r in rb]
    for x, y in zip(ra, rb, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            if k != "time_s":
                assert y[k] == pytest.approx(x[k], rel=METRIC_RTOL), (x["phase"], x["epoch"], k)


def max_weight_diff(a: Path, b: Path) -> float:
    ta, sa = ckpt.load_checkpoint(ckpt.latest_checkpoint(a))
    tb, sb = ckpt.load_checkpoint(ckpt.latest_checkpoint(b))
    for key in ("phase", "mle_epoch", "d_round", "adv_batch", "seed_calls", "metrics_lines"):
        assert sa[key] == sb[key], key
    worst = 0.0
    for group in ("generator", "rollout", "discriminator"):
        assert ta[group].keys() == tb[group].keys()
        for k in ta[group]:
            worst = max(worst, float((ta[group][k] - tb[group][k]).abs().max()))
    return worst


@pytest.fixture(scope="module")
def single_run(tmp_path_factory) -> Path:
    """The reference: the test schedule in one process."""
    out = tmp_path_factory.mktemp("single") / "run"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one_process(out)
    finally:
        torch.set_num_threads(n)
    return out


# -- tests ------------------------------------------------------------------------------------
def test_shards_partition_the_rows():
    for n in (0, 1, 2, 5, 31, 64):
        for size in (1, 2, 3, 4):
            parts = [World(r, size, torch.device("cpu"), "gloo").shard(n) for r in range(size)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
            sizes = [hi - lo for lo, hi in parts]
            assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("backend", ["reference", "cpp"])
def test_two_ranks_draw_the_single_process_tokens_and_rewards(tmp_path, backend):
    if backend not in ops.available_backends():
        pytest.skip(f"backend {backend} not built")
    r0, r1 = spawn("draws", tmp_path, [[backend], [backend]])
    assert r0 is not None and r1 is not None
    g, d, B = _models()
    tokens = sample_in_chunks(g, 45, seed=11, backend=backend)
    x = ops.sample(g, B, seed=5, backend=backend)
    rewards = ops.rollout_rewards(g, d, x, num_rollouts=3, seed=7, backend=backend)
    for r in (r0, r1):  # every rank holds the whole, gathered
        assert torch.equal(torch.tensor(r["tokens"]), tokens)
        assert torch.equal(torch.tensor(r["x"]), x)
        torch.testing.assert_close(torch.tensor(r["rewards"]), rewards, rtol=1e-6, atol=1e-7)


def test_two_ranks_train_like_one_process(tmp_path, single_run):
    """MLE, discriminator (dropout on) and policy-gradient steps, evaluations: 2 ranks (via
    torchrun) against 1 process, same seed."""
    out = tmp_path / "two"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get(
        "PYTHONPATH", "")]), "OMP_NUM_THREADS": "1", **LOOPBACK}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}", "-m", "seqgan_fast",
           *train_argv(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=JOIN_S,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("done in") == 1  # rank 0 alone reports
    assert_same_metrics(single_run, out)
    worst = max_weight_diff(single_run, out)
    assert worst < WEIGHT_TOL, worst
    summary = json.loads((out / "summary.json").read_text())
    assert summary["adv_batches"] == 2 and (out / "curves.png").is_file()


def test_a_killed_rank_stops_the_job_and_resume_works_on_one_process(tmp_path, single_run):
    out = tmp_path / "run"
    argv = train_argv(out)
    r0, r1 = spawn("kill", tmp_path / "ranks", [argv, argv])
    assert r1 is None  # it died
    assert r0["rc"] == 3
    err = stderr_of(tmp_path / "ranks", 0)
    lines = [ln for ln in err.splitlines() if ln.startswith("seqgan-fast:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "another rank stopped or became unreachable" in lines[0]
    assert "--resume" in lines[0] and str(out) in lines[0]
    # The checkpoint at the end of MLE is intact; one process continues the run from it.
    _, state = ckpt.load_checkpoint(ckpt.latest_checkpoint(out))
    assert state["phase"] == "d_pretrain"
    assert main(["train", "--out", str(out), "-q", "--threads", "1", "--resume"]) == 0
    assert_same_metrics(single_run, out)
    assert max_weight_diff(single_run, out) < WEIGHT_TOL


def test_resume_on_two_ranks_continues_a_one_process_run(tmp_path, single_run):
    out = tmp_path / "run"
    sets = [s for s in TRAIN if not s.startswith("adv_batches=")] + ["adv_batches=0"]
    one_process(out, sets=sets)  # MLE and discriminator pre-training
    argv = ["train", "--out", str(out), "-q", "--threads", "1", "--resume", "--set",
            "adv_batches=2"]
    r0, r1 = spawn("train", tmp_path / "ranks", [argv, argv])
    assert r0 == {"rc": 0} and r1 == {"rc": 0}, stderr_of(tmp_path / "ranks", 0)
    assert_same_metrics(single_run, out)
    assert max_weight_diff(single_run, out) < WEIGHT_TOL


def test_mismatched_configs_are_refused(tmp_path):
    out = tmp_path / "run"
    a = train_argv(out)
    b = train_argv(out, sets=[*TRAIN, "mle_epochs=3"])
    r0, r1 = spawn("train", tmp_path / "ranks", [a, b])
    assert r0 == {"rc": 3} and r1 == {"rc": 3}
    err = stderr_of(tmp_path / "ranks", 0)
    err0 = [ln for ln in err.splitlines() if ln.startswith("seqgan-fast:")]
    assert len(err0) == 1 and "Traceback" not in err, err
    assert "different configs" in err0[0] and "mle_epochs" in err0[0]
    assert "seqgan-fast:" not in stderr_of(tmp_path / "ranks", 1)  # rank 0 speaks for the job
    assert not (out / "metrics.jsonl").exists()  # refused before anything was written


def test_scaling_bench_alone_and_against_a_baseline(tmp_path, capsys):
    from seqgan_fast.benchmarks import harness

    one, two = tmp_path / "s1.json", tmp_path / "s2.json"
    base = ["--op", "scaling", "--config", "tiny", "--repeats", "1", "--threads", "1", "-q"]
    assert harness.main([*base, "--json", str(one)]) == 0
    assert harness.main([*base, "--json", str(two), "--against", str(one)]) == 0
    doc = json.loads(two.read_text())
    assert doc["op"] == "scaling" and doc["world_size"] == 1 and doc["threads_per_rank"] == 1
    assert doc["cores_usable"] >= 1
    assert [r["phase"] for r in doc["results"]] == ["mle_epoch", "d_round", "adv_step", "eval"]
    for r in doc["results"]:
        assert r["median_s"] > 0 and r["efficiency"] == pytest.approx(r["speedup"])
    assert "scaling/tiny" in capsys.readouterr().out
    assert harness.main([*base, "--backends", "cpp,reference"]) == 2  # one backend only


def test_two_ranks_history_conditioned_combined_objective(tmp_path):
    """history_len (continuations of real prefixes, rewards on generated positions only), the
    combined objective and the batch-mean reward baseline: 2 ranks like 1 process."""
    sets = [*TRAIN, "history_len=3", "adv_mle_weight=0.5", "reward_baseline=batch_mean",
            "pg_norm=batch_mean"]
    one = tmp_path / "one"
    one_process(one, sets=sets)
    two = tmp_path / "two"
    argv = train_argv(two, sets=sets)
    r0, r1 = spawn("train", tmp_path / "ranks", [argv, argv])
    assert r0 == {"rc": 0} and r1 == {"rc": 0}, stderr_of(tmp_path / "ranks", 0)
    assert_same_metrics(one, two)
    assert max_weight_diff(one, two) < WEIGHT_TOL
    # the keys act: the history-conditioned run draws more seeds and ends elsewhere
    plain = tmp_path / "plain"
    one_process(plain)
    ta = ckpt.load_checkpoint(ckpt.latest_checkpoint(one))[0]["generator"]
    tb = ckpt.load_checkpoint(ckpt.latest_checkpoint(plain))[0]["generator"]
    assert max(float((ta[k] - tb[k]).abs().max()) for k in ta) > 1e-4


def _data_files(folder: Path) -> dict[str, Path]:
    import random

    rng = random.Random(0)
    words = "a b c d e f g h i j k l m n o p".split()
    files = {}
    for name, n in (("train.txt", 200), ("test.txt", 41)):
        files[name] = folder / name
        files[name].write_text("".join(
            " ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) + "\n"
            for _ in range(n)))
    rows = [f"u{u},i{rng.randint(0, 40)},{t}" for u in range(60)
            for t in range(rng.randint(3, 12))]
    files["log.csv"] = folder / "log.csv"
    files["log.csv"].write_text("user,item,order\n" + "\n".join(rows) + "\n")
    return files


@pytest.mark.parametrize("task", ["text", "recsys"])
def test_text_and_recsys_tasks_on_two_ranks(tmp_path, task):
    files = _data_files(tmp_path)
    sets = [s for s in TRAIN if s.split("=")[0] not in ("vocab_size", "seq_len", "num_train",
                                                        "num_test", "num_eval")]
    sets += ["max_len=9", "seq_len=9", "num_eval=45"]
    if task == "text":
        data = ["--data", str(files["train.txt"])]
        sets.append(f"test_data={files['test.txt']}")
    else:
        data = ["--data", str(files["log.csv"])]
    one_process(tmp_path / "one", *data, sets=sets)
    argv = train_argv(tmp_path / "two", *data, sets=sets)
    r0, r1 = spawn("train", tmp_path / "ranks", [argv, argv])
    assert r0 == {"rc": 0} and r1 == {"rc": 0}, stderr_of(tmp_path / "ranks", 0)
    assert_same_metrics(tmp_path / "one", tmp_path / "two")
    assert max_weight_diff(tmp_path / "one", tmp_path / "two") < WEIGHT_TOL
    if task == "recsys":  # rank 0 wrote the MLE baseline, as one process does
        a = json.loads((tmp_path / "one" / "summary.json").read_text())["baselines"]
        b = json.loads((tmp_path / "two" / "summary.json").read_text())["baselines"]
        assert a.keys() == b.keys() == {"popularity", "repeat", "mle"}
