"""The ``seqgan-fast`` command line: ``train``, ``sample``, ``recommend``, ``bench``.

Bad input (unknown preset, bad ``--set``, missing data file, nothing to resume, ...) gives
one line ``seqgan-fast: error: ...`` on stderr and exit status 2, before anything is
written.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .. import ops
from .._version import __version__
from ..config import PRESETS, ConfigError, TrainConfig
from ..data.interactions import read_interactions
from ..data.paths import data_dir
from ..data.text import resolve_data_path
from ..errors import CLIError, NonFiniteError, Terminated
from ..ops import cpu_isa
from ..ops.checks import check_temperature
from ..parallel.distributed import DistributedError, env_world_size, world_from_env
from ..recommend import Recommender, load_run_generator, read_user_list
from ..run.checkpoint import CheckpointError, latest_checkpoint
from ..run.lock import RunLockedError
from ..tasks.oracle import OracleTask
from ..tasks.recsys import RecsysTask
from ..tasks.text import TextTask
from ..train.draws import SAMPLE_CHUNK
from ..train.trainer import SeqGANTrainer
from .malloc import keep_freed_memory
from .threads import ThreadGovernor

PROG = "seqgan-fast"
MAX_THREADS = 4096
MAX_SAMPLES = 10_000_000  # sample -n: Philox rows are 32-bit; printed in chunks, so memory is
                          # bounded, but more lines than this is a typo rather than a wish
_TASK_BY_SUFFIX = {".txt": "text", ".inter": "recsys", ".csv": "recsys"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="SeqGAN with fused sampling and rollout kernels.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="{train,sample,recommend,bench}")

    t = sub.add_parser("train", help="train a SeqGAN (default: preset quick on the oracle)",
                       description="Train SeqGAN. Without arguments: preset 'quick' on the "
                       "seeded synthetic oracle, written to runs/quick.")
    t.add_argument("--preset", help=f"named configuration: {', '.join(sorted(PRESETS))} "
                   "(default quick)")
    t.add_argument("--task", help="oracle | text | recsys (default: from --data or preset)")
    t.add_argument("--data", help="'oracle' or a data file (.txt -> text; .inter/.csv -> recsys)")
    t.add_argument("--out", help="output folder (default runs/<preset>)")
    t.add_argument("--device", help="cpu | cuda")
    t.add_argument("--backend", help="auto | reference | cpp | triton | cuda")
    t.add_argument("--seed", type=int, help="random seed of the run")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    t.add_argument("--overwrite", action="store_true",
                   help="replace a run already in --out (otherwise that is an error)")
    t.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override any TrainConfig field (applied last), e.g. mle_epochs=10")
    t.add_argument("--threads", type=int,
                   help="CPU threads for torch (default: torch's, fewer while other processes "
                   "keep CPUs busy; see threads.py)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log lines")
    t.add_argument("--dist-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="under torchrun: how long a rank waits for a peer that hangs before "
                   "the job stops (a peer that dies stops it at once; default 120)")

    s = sub.add_parser("sample", help="print sequences from a trained run's generator")
    s.add_argument("--run", required=True, help="run folder (as written by train)")
    s.add_argument("-n", type=int, default=10,
                   help=f"number of sequences (default 10, at most {MAX_SAMPLES:,})")
    s.add_argument("--temperature", type=float, default=1.0, help="softmax temperature")
    s.add_argument("--seed", type=int, default=0, help="sampling seed in [0, 2**64) (default 0)")
    s.add_argument("--device", default="cpu", help="cpu | cuda")
    s.add_argument("--backend", default="auto", help="auto | reference | cpp | triton | cuda")
    s.add_argument("--checkpoint", default="latest",
                   help="latest (default) | best (selected by validation) | auto")
    s.add_argument("--history", help="recsys runs: continue this item history (space-separated "
                   "item ids of the input file) instead of sampling from <bos>")

    r = sub.add_parser("recommend", help="top-k next items for the users of a recommendation run",
                       description="Top-k next items for users of a recsys run, from their "
                       "whole history in the interaction file; CSV user,rank,item,score "
                       "(score: the generator's log-probability).")
    r.add_argument("--run", required=True, help="recsys run folder (as written by train)")
    r.add_argument("--users", default="all",
                   help="'all' (default: every user of the interaction file) or a file of user "
                   "ids, one per line")
    r.add_argument("--data", help="interaction file with the histories (default: the run's)")
    r.add_argument("-k", type=int, default=10, help="items per user (default 10)")
    seen = r.add_mutually_exclusive_group()
    seen.add_argument("--exclude-seen", dest="exclude_seen", action="store_true", default=None,
                      help="never recommend an item the user already has")
    seen.add_argument("--include-seen", dest="exclude_seen", action="store_false",
                      help="allow re-recommending (default: the run's mask_history)")
    r.add_argument("--out", required=True, help="output CSV (written atomically)")
    r.add_argument("--batch-size", type=int, default=1024,
                   help="users scored per forward pass (bounds memory; default 1024)")
    r.add_argument("--device", default="cpu", help="cpu | cuda")
    r.add_argument("--checkpoint", default="auto", help="auto (default: the generator selected "
                   "by validation where the run has one) | best | latest")

    sub.add_parser("bench", add_help=False,
                   help="kernel benchmarks (seqgan-fast bench --help for options)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``seqgan-fast`` / ``python -m seqgan_fast``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _check_cpu_isa()
    except ValueError as exc:
        return _fail(str(exc))
    if argv and argv[0] == "bench":
        return _bench(argv[1:])
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise CLIError("missing command: train, sample, recommend or bench (see "
                           "seqgan-fast --help)")
        if args.command == "train":
            return _train(args)
        if args.command == "recommend":
            return _recommend(args)
        return _sample(args)
    except SystemExit as exc:  # --help
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    except (_BadInput, CLIError) as exc:
        return _fail(str(exc))


class _BadInput(Exception):
    pass


def _check_cpu_isa() -> None:
    """A bad SEQGAN_FAST_ISA is refused before any work (ops.cpu_isa raises ValueError)."""
    if os.environ.get("SEQGAN_FAST_ISA"):

        cpu_isa()


def _fail(message: str) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def _setup_errors():
    """Errors of the set-up stage (arguments, config, data, checkpoint), all user-facing."""

    return (CLIError, ConfigError, CheckpointError, FileNotFoundError, NotADirectoryError,
            PermissionError, ValueError, RuntimeError)


def _fit_errors():
    """Errors that stop a started run; what is already saved stays (see guard.py)."""

    return (DistributedError, NonFiniteError, RunLockedError, CheckpointError, ConfigError,
            OSError)


def _configure_logging(quiet: bool, level: int | None = None) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(message)s", stream=sys.stderr)
    if level is None:
        level = logging.WARNING if quiet else logging.INFO
    logging.getLogger("seqgan_fast").setLevel(level)


# -- train ------------------------------------------------------------------------------------
def _train_config(args: argparse.Namespace) -> tuple[TrainConfig, Path]:

    out = Path(args.out) if args.out else Path("runs") / (args.preset or "quick")
    if args.resume and args.overwrite:
        raise CLIError("--resume and --overwrite exclude each other (continue the run, or "
                       "replace it)")
    if args.resume:
        if latest_checkpoint(out) is None and not (out / "config.json").is_file():
            raise ConfigError(f"nothing to resume: no checkpoint in {out}")
        try:
            cfg = TrainConfig.from_dict(json.loads((out / "config.json").read_text("utf-8")))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{out / 'config.json'}: unreadable run config ({exc})") from None
        except RecursionError:
            raise ConfigError(f"{out / 'config.json'}: unreadable run config (nested too "
                              "deeply)") from None
        if args.preset and args.preset != cfg.preset_name:
            raise ConfigError(f"{out} was trained with preset {cfg.preset_name!r}, not "
                              f"{args.preset!r}")
    else:
        cfg = TrainConfig.preset(args.preset or "quick")
    changes: dict[str, Any] = {}
    if args.data is not None:
        changes["data"] = args.data
        if args.data != "oracle":
            _check_data_file(args.data)
    if args.task is not None:
        changes["task"] = args.task
    elif args.data is not None:
        changes["task"] = _infer_task(args.data, cfg.task)
    for key in ("device", "backend", "seed"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    cfg = cfg.replace(**changes).with_overrides(args.set).validate()
    if cfg.task != "oracle" and cfg.data == "oracle":
        raise ConfigError(f"task {cfg.task} needs a data file: --data PATH")
    return cfg, out


def _check_data_file(data: str) -> None:
    """The file as given, or (relative) under the shared data folder, as the tasks look."""

    p = Path(data).expanduser()
    if p.is_file() or (not p.is_absolute() and (data_dir() / p).is_file()):
        return
    if p.is_dir() or (not p.is_absolute() and (data_dir() / p).is_dir()):
        raise ConfigError(f"--data {data} is a directory; give a data file")
    raise ConfigError(f"data file not found: {data}")


def _infer_task(data: str, preset_task: str) -> str:
    if data == "oracle":
        return "oracle"
    suffix = Path(data).suffix.lower()
    if suffix == ".txt" and preset_task == "recsys":
        return "recsys"  # a recommendation preset: one user per line, 'user item1 item2 ...'
    task = _TASK_BY_SUFFIX.get(suffix)
    if task is None:
        if preset_task != "oracle":
            return preset_task
        raise ConfigError(f"cannot tell the task from {data!r} (.txt -> text, or one user per "
                          "line under a recsys preset; .inter/.csv -> recsys); pass --task")
    return task


def _train(args: argparse.Namespace) -> int:

    try:  # before the first large tensor (seqgan_fast/cli/malloc.py: why)
        keep_freed_memory()
    except ValueError as exc:
        raise _BadInput(str(exc)) from None

    try:
        world_size = env_world_size()
    except DistributedError as exc:
        raise _BadInput(str(exc)) from None
    with _sigterm_raises():
        try:
            if world_size <= 1:
                return _train_process(args, None)
            try:
                return _train_process(args, world_size)
            finally:
                if dist.is_initialized():
                    dist.destroy_process_group()
        except Terminated:
            return _terminated(args, world_size)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` in the main thread (as SIGINT raises KeyboardInterrupt),
    once: the checkpoint being written removes its temporary folder on the way out (a
    further SIGTERM is ignored while that happens). Elsewhere than the main thread, nothing
    changes (Python delivers signals there only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum, frame):
        nonlocal fired
        if not fired:
            fired = True
            raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminated(args: argparse.Namespace, world_size: int) -> int:
    """One line for a SIGTERM; exit status 143 (128 + SIGTERM), as the signal's own."""
    out = Path(args.out) if args.out else Path("runs") / (args.preset or "quick")
    resume = f"continue with: {PROG} train --out {out} --resume"
    if world_size > 1:  # torchrun stops the survivors this way when one rank fails
        rank = os.environ.get("RANK", "?")
        print(f"{PROG}: rank {rank} of {world_size}: stopped by SIGTERM: a peer rank failed "
              f"(its error is above) or the launcher stopped the job; {resume}",
              file=sys.stderr)
    else:
        print(f"{PROG}: terminated (SIGTERM); {resume}", file=sys.stderr)
    return 128 + signal.SIGTERM


def _train_process(args: argparse.Namespace, world_size: int | None) -> int:
    """``train`` in this process: the whole run, or (``world_size``) one rank of it."""

    main_rank = world_size is None or os.environ.get("RANK", "0") == "0"
    _configure_logging(args.quiet, None if main_rank else logging.ERROR)  # rank 0 speaks
    world = None
    try:
        if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
            raise ConfigError(f"--threads must be in [1, {MAX_THREADS}], got {args.threads}")
        if not args.dist_timeout > 0:
            raise ConfigError(f"--dist-timeout must be > 0 seconds, got {args.dist_timeout}")
        cfg, out = _train_config(args)
        if world_size is not None:
            world = world_from_env(cfg.device, args.dist_timeout)
        governor = ThreadGovernor(args.threads)  # fewer threads on a loaded machine
        governor.apply(warn=False)  # a set-up error stays the only line
        trainer = SeqGANTrainer(cfg, out, resume=args.resume, overwrite=args.overwrite,
                                progress=False if args.quiet else None, world=world)
        governor.attach(trainer)
    except DistributedError as exc:
        return _fail_rank(exc)
    except _setup_errors() as exc:
        if world is not None and not world.is_main:
            return 2  # rank 0 met the same input and says so
        raise _BadInput(str(exc)) from None
    try:
        from tqdm.contrib.logging import logging_redirect_tqdm  # local: absent from older tqdm

        redirect = logging_redirect_tqdm()  # the root handler (_configure_logging's)
    except ImportError:  # older tqdm
        redirect = nullcontext()
    try:
        with redirect:
            summary = trainer.fit()
    except DistributedError as exc:
        return _fail_rank(exc)
    except _fit_errors() as exc:  # the guard, the run lock, a disk that filled up, ...
        if not main_rank and not isinstance(exc, OSError):
            return 2  # the guard stops every rank at the same step; rank 0 says why
        if isinstance(exc, OSError):  # one line naming the folder, not a temporary file
            raise _BadInput(f"cannot write the run folder {out}: {exc.strerror or exc}; what "
                            "was already saved is kept") from None
        raise _BadInput(str(exc)) from None
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; continue with: {PROG} train --out {out} --resume",
              file=sys.stderr)
        return 130
    if main_rank:
        _print_summary(summary, out)
    return 0


def _fail_rank(exc) -> int:
    """A rank that lost its peers (or was refused with them): one line, unless another rank
    reports the same cause; exit status 3 (2 is bad input)."""
    if exc.echo:
        _fail(str(exc))
    return 3


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    print(f"done in {summary.get('wall_s', 0):.1f} s ({summary.get('device')}, "
          f"{summary.get('backend')} backend): {out}")
    labels = (("init", "init"), ("mle", "MLE"), ("adv", "adversarial"))
    keys = sorted({k.rsplit("_", 1)[0] for k in summary
                   if k.rsplit("_", 1)[-1] in ("init", "mle", "adv")})
    for key in keys:
        parts = [f"{summary[f'{key}_{tag}']:.4g} ({label})" for tag, label in labels
                 if isinstance(summary.get(f"{key}_{tag}"), (int, float))]
        print(f"  {key}: {' -> '.join(parts)}")
    files = [n for n in ("config.json", "metrics.jsonl", "summary.json", "curves.png",
                         "checkpoints") if (out / n).exists()]
    print(f"  files: {', '.join(files)}")


# -- sample -----------------------------------------------------------------------------------
def _task_class(name: str):
    if name == "oracle":

        return OracleTask
    if name == "text":

        return TextTask
    if name == "recsys":

        return RecsysTask
    raise ConfigError(f"unknown task {name!r} in the run's checkpoint")


def _sample(args: argparse.Namespace) -> int:

    _configure_logging(quiet=True)
    try:
        if not 1 <= args.n <= MAX_SAMPLES:
            raise ConfigError(f"-n must be in [1, {MAX_SAMPLES}], got {args.n}")
        if not 0 <= args.seed < 2**64:
            raise ConfigError(f"--seed must be in [0, 2**64), got {args.seed}")
        try:
            temperature = check_temperature(args.temperature)
        except ValueError as exc:
            raise ConfigError(f"--temperature: {exc}") from None
        loaded = load_run_generator(args.run, args.device, args.checkpoint)
        generator, cfg, state = loaded.generator, loaded.cfg, loaded.state
        backend = ops.resolve(args.backend, generator.device)
        task = _task_class(state["task"]).load(Path(args.run), cfg)
        prefix = None if args.history is None else \
            _history_prefix(task, state["task"], args.history, generator)
    except _setup_errors() as exc:
        raise _BadInput(str(exc)) from None
    with torch.no_grad():  # chunk by chunk: memory does not grow with -n
        for r0 in range(0, args.n, SAMPLE_CHUNK):
            n = min(SAMPLE_CHUNK, args.n - r0)
            x = ops.sample(generator, n, seed=args.seed, temperature=temperature,
                           backend=backend, row_offset=r0,
                           prefix=None if prefix is None else prefix.expand(n, -1))
            if prefix is not None:  # print the continuation only
                x = x[:, prefix.shape[1]:]
            for line in task.decode(x.cpu()):
                print(line)
    return 0


def _history_prefix(task, task_name: str, history: str, generator):
    """--history as a (1, P) token prefix: its last seq_len - 1 known items."""
    if task_name != "recsys":
        raise ConfigError(f"--history needs a recsys run; {task_name!r} runs sample from "
                          "the start token")
    items = history.split()
    if not items:
        raise ConfigError("--history is empty; give space-separated item ids")
    specials = [it for it in items
                if it in task.vocab.stoi and task.vocab.stoi[it] < task.vocab.num_specials]
    if specials:
        names = list(dict.fromkeys(specials))
        what = "is a special token" if len(names) == 1 else "are special tokens"
        raise ConfigError(f"--history: {', '.join(names)} {what}, not item ids; give item ids "
                          "only")
    unknown = [it for it in items if it not in task.vocab.stoi]
    toks = [task.vocab.stoi[it] for it in items if it in task.vocab.stoi]
    if not toks:
        raise ConfigError(f"--history: none of its {len(items)} item ids is known to the run "
                          f"(e.g. {unknown[0]!r})")
    if unknown:
        logging.getLogger("seqgan_fast").warning("--history: skipped %d unknown item id(s), "
                                                 "e.g. %r", len(unknown), unknown[0])
    toks = toks[-(generator.seq_len - 1):]
    return torch.tensor([toks], dtype=torch.int64, device=generator.device)


# -- recommend --------------------------------------------------------------------------------
def _recommend(args: argparse.Namespace) -> int:

    _configure_logging(quiet=True)
    t0 = time.perf_counter()
    try:
        if args.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
        out = Path(args.out)
        _check_out_file(out)  # before the model is loaded and every user scored
        rec = Recommender.from_run(args.run, args.device, args.exclude_seen, args.batch_size,
                                   args.checkpoint)
        if not 1 <= args.k <= rec.num_items:
            raise ConfigError(f"-k must be in [1, {rec.num_items}] (the run's item count), "
                              f"got {args.k}")
        cfg = rec.cfg
        data = Path(args.data) if args.data else resolve_data_path(cfg.data, "interaction")
        inter = read_interactions(data, cfg.columns, min_count=1, min_interactions=1)
        by_user = dict(zip(inter.users, inter.sequences, strict=True))
        if args.users == "all":
            users = list(inter.users)
            unknown_users: list[str] = []
        else:
            wanted = read_user_list(args.users)
            users = [u for u in wanted if u in by_user]
            unknown_users = [u for u in wanted if u not in by_user]
            if not users:
                raise ConfigError(f"--users {args.users}: none of its {len(wanted)} user ids "
                                  f"is in {data} (e.g. {wanted[0]!r})")
    except (*_setup_errors(), OSError) as exc:
        raise _BadInput(str(exc)) from None
    if unknown_users:
        print(f"{PROG}: warning: {len(unknown_users)} user id(s) of {args.users} are not in "
              f"{data} and were skipped, e.g. {unknown_users[0]!r}", file=sys.stderr)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    rows = empty = unknown_items = 0
    try:
        with _sigterm_raises(), open(tmp, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["user", "rank", "item", "score"])
            for part in rec.iter_recommend([by_user[u] for u in users], args.k):
                for i, items, scores in zip(part.index, part.items, part.scores, strict=True):
                    for rank, (item, score) in enumerate(zip(items, scores, strict=True), 1):
                        w.writerow([users[i], rank, item, f"{score:.6g}"])
                rows += len(part.index)
                empty += len(part.empty)
                unknown_items += part.unknown_items
        os.replace(tmp, out)
    except OSError as exc:  # a disk that filled up while writing
        raise _BadInput(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    except Terminated:  # the partial file goes (finally); nothing at --out changed
        print(f"{PROG}: terminated (SIGTERM); {out} not written", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if tmp.exists():
            tmp.unlink()
    wall = time.perf_counter() - t0
    print(f"recommend: {rows} users scored ({empty} without a known item skipped, "
          f"{len(unknown_users)} unknown users skipped, {unknown_items} unknown item ids "
          f"dropped) in {wall:.2f} s, {rows / max(wall, 1e-9):.0f} users/s; wrote {out}",
          file=sys.stderr)
    return 0


def _check_out_file(out: Path) -> None:
    """--out names a file that can be written: not a folder, in an existing folder in which a
    (removed at once) probe file can be created."""
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name")
    if not out.parent.is_dir():
        raise ConfigError(f"--out: folder {out.parent} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.probe-", dir=out.parent)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write in {out.parent} "
                          f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


# -- bench ------------------------------------------------------------------------------------
def _bench(argv: list[str]) -> int:
    try:
        # local: the harness lives in the repository (benchmarks/), not in wheels
        from ..benchmarks.harness import main as bench_main
    except ImportError as exc:
        return _fail("bench: the benchmark harness ships with the source tree (a git checkout "
                     "or the sdist, installed with pip install --no-build-isolation -e .), not "
                     f"with wheels ({exc})")
    return int(bench_main(argv) or 0)
