"""The ``seqgan-fast`` command line: ``train``, ``sample``, ``bench``.

Bad input (unknown preset, bad ``--set``, missing data file, nothing to resume, ...) gives
one line ``seqgan-fast: error: ...`` on stderr and exit status 2, before anything is
written.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from .config import PRESETS, ConfigError, TrainConfig

PROG = "seqgan-fast"
MAX_THREADS = 4096
MAX_SAMPLES = 10_000_000  # sample -n: Philox rows are 32-bit; printed in chunks, so memory is
                          # bounded, but more lines than this is a typo rather than a wish
_TASK_BY_SUFFIX = {".txt": "text", ".inter": "recsys", ".csv": "recsys"}


class CLIError(Exception):
    """A usage error; the message is printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="SeqGAN with fused sampling and rollout kernels.")
    sub = p.add_subparsers(dest="command", metavar="{train,sample,bench}")

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

    s = sub.add_parser("sample", help="print sequences from a trained run's generator")
    s.add_argument("--run", required=True, help="run folder (as written by train)")
    s.add_argument("-n", type=int, default=10,
                   help=f"number of sequences (default 10, at most {MAX_SAMPLES:,})")
    s.add_argument("--temperature", type=float, default=1.0, help="softmax temperature")
    s.add_argument("--seed", type=int, default=0, help="sampling seed in [0, 2**64) (default 0)")
    s.add_argument("--device", default="cpu", help="cpu | cuda")
    s.add_argument("--backend", default="auto", help="auto | reference | cpp | triton | cuda")

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
            raise CLIError("missing command: train, sample or bench (see seqgan-fast --help)")
        if args.command == "train":
            return _train(args)
        return _sample(args)
    except SystemExit as exc:  # --help
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    except (_BadInput, CLIError) as exc:
        return _fail(str(exc))


class _BadInput(Exception):
    pass


def _check_cpu_isa() -> None:
    """A bad SEQGAN_FAST_ISA is refused before any work (ops.cpu_isa raises ValueError)."""
    import os

    if os.environ.get("SEQGAN_FAST_ISA"):
        from .ops import cpu_isa

        cpu_isa()


def _fail(message: str) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def _setup_errors():
    """Errors of the set-up stage (arguments, config, data, checkpoint), all user-facing."""
    from .checkpoint import CheckpointError

    return (CLIError, ConfigError, CheckpointError, FileNotFoundError, NotADirectoryError,
            PermissionError, ValueError, RuntimeError)


def _fit_errors():
    """Errors that stop a started run; what is already saved stays (see guard.py)."""
    from .checkpoint import CheckpointError
    from .guard import NonFiniteError
    from .runlock import RunLockedError

    return (NonFiniteError, RunLockedError, CheckpointError, ConfigError, OSError)


def _configure_logging(quiet: bool) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(message)s", stream=sys.stderr)
    logging.getLogger("seqgan_fast").setLevel(logging.WARNING if quiet else logging.INFO)


# -- train ------------------------------------------------------------------------------------
def _train_config(args: argparse.Namespace) -> tuple[TrainConfig, Path]:
    from .checkpoint import latest_checkpoint

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
    from .data.paths import data_dir

    p = Path(data).expanduser()
    if p.is_file() or (not p.is_absolute() and (data_dir() / p).is_file()):
        return
    raise ConfigError(f"data file not found: {data}")


def _infer_task(data: str, preset_task: str) -> str:
    if data == "oracle":
        return "oracle"
    task = _TASK_BY_SUFFIX.get(Path(data).suffix.lower())
    if task is None:
        if preset_task != "oracle":
            return preset_task
        raise ConfigError(f"cannot tell the task from {data!r} (.txt -> text, .inter/.csv -> "
                          "recsys); pass --task")
    return task


def _train(args: argparse.Namespace) -> int:
    from .threads import ThreadGovernor
    from .trainer import SeqGANTrainer

    _configure_logging(args.quiet)
    try:
        if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
            raise ConfigError(f"--threads must be in [1, {MAX_THREADS}], got {args.threads}")
        cfg, out = _train_config(args)
        governor = ThreadGovernor(args.threads)  # fewer threads on a loaded machine
        governor.apply(warn=False)  # a set-up error stays the only line
        trainer = SeqGANTrainer(cfg, out, resume=args.resume, overwrite=args.overwrite,
                                progress=False if args.quiet else None)
        governor.attach(trainer)
    except _setup_errors() as exc:
        raise _BadInput(str(exc)) from None
    try:
        from tqdm.contrib.logging import logging_redirect_tqdm

        redirect = logging_redirect_tqdm()  # the root handler (_configure_logging's)
    except ImportError:  # older tqdm
        redirect = nullcontext()
    try:
        with redirect:
            summary = trainer.fit()
    except _fit_errors() as exc:  # the guard, the run lock, a disk that filled up, ...
        raise _BadInput(str(exc)) from None
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; continue with: {PROG} train --out {out} --resume",
              file=sys.stderr)
        return 130
    _print_summary(summary, out)
    return 0


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
        from .tasks.oracle import OracleTask

        return OracleTask
    if name == "text":
        from .tasks.text import TextTask

        return TextTask
    if name == "recsys":
        from .tasks.recsys import RecsysTask

        return RecsysTask
    raise ConfigError(f"unknown task {name!r} in the run's checkpoint")


def _sample(args: argparse.Namespace) -> int:
    import torch

    from . import ops
    from .checkpoint import latest_checkpoint, load_checkpoint
    from .models import Generator
    from .ops.checks import check_temperature
    from .runfolder import check_run_state
    from .trainer import SAMPLE_CHUNK, check_device

    _configure_logging(quiet=True)
    try:
        run = Path(args.run)
        if not run.is_dir():
            raise ConfigError(f"run folder not found: {run}")
        if not 1 <= args.n <= MAX_SAMPLES:
            raise ConfigError(f"-n must be in [1, {MAX_SAMPLES}], got {args.n}")
        if not 0 <= args.seed < 2**64:
            raise ConfigError(f"--seed must be in [0, 2**64), got {args.seed}")
        try:
            temperature = check_temperature(args.temperature)
        except ValueError as exc:
            raise ConfigError(f"--temperature: {exc}") from None
        path = latest_checkpoint(run)
        if path is None:
            raise ConfigError(f"no checkpoint in {run} (train it first)")
        tensors, state = load_checkpoint(path, groups=("generator",))
        check_run_state(state, path / "state.json")
        device = check_device(args.device)
        backend = ops.resolve(args.backend, device)
        m = Generator.complete_arch(state["model"])
        generator = Generator(m["vocab_size"], m["g_emb_dim"], m["g_hidden_dim"],
                              m["seq_len"], m["start_token"], cell=m["g_cell"],
                              encoder=m["g_encoder"], history_len=m["g_history"] or None)
        generator.load_state_dict(tensors["generator"])
        generator.to(device)
        cfg = TrainConfig.from_dict(state["config"]).replace(device=str(device))
        task = _task_class(state["task"]).load(run, cfg)
    except _setup_errors() as exc:
        raise _BadInput(str(exc)) from None
    with torch.no_grad():  # chunk by chunk: memory does not grow with -n
        for r0 in range(0, args.n, SAMPLE_CHUNK):
            x = ops.sample(generator, min(SAMPLE_CHUNK, args.n - r0), seed=args.seed,
                           temperature=temperature, backend=backend, row_offset=r0)
            for line in task.decode(x.cpu()):
                print(line)
    return 0


# -- bench ------------------------------------------------------------------------------------
def _bench(argv: list[str]) -> int:
    try:
        from .benchmarks.harness import main as bench_main
    except ImportError as exc:
        return _fail(f"the benchmark harness is unavailable ({exc})")
    return int(bench_main(argv) or 0)
