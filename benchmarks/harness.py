"""The benchmark harness: ``seqgan-fast bench ...`` forwards its arguments to :func:`main`.

Protocol per (op, config): build the models once with fixed seeds; run every contender once
and check its output (shapes, the prefix contract, token agreement with ``reference`` for the
backends that share the Philox contract); record a failure instead of crashing; warm up
(peak memory is measured on the first call after compilation); then time the contenders and
the GEMM floor round robin, run by run, in this one process, and report min / median / max.
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from seqgan_fast.cli.malloc import keep_freed_memory
from seqgan_fast.run.checkpoint import atomic_write_text

from . import (
    bench_adv_step,
    bench_d_epoch,
    bench_decode,
    bench_rollout,
    bench_sample,
    bench_schedule,
    bench_score,
)
from .common import KNOWN_BACKENDS, Case, Contender
from .configs import BenchConfig, parse_choices, resolve_cells, resolve_configs
from .report import GEMM, add_ratios, format_table
from .timing import loadavg, machine_info, measure_peak, timed

log = logging.getLogger("seqgan_fast.benchmarks")

SCHEMA = 1
OPS = ("rollout", "rewards", "score", "sample", "decode", "adv_step", "d_epoch", "schedule")
BUILDERS: dict[str, Callable[..., Case]] = {
    "rollout": bench_rollout.build_case,
    "rewards": bench_rollout.build_case,
    "score": bench_score.build_case,
    "sample": bench_sample.build_case,
    "decode": bench_decode.build_case,
    "adv_step": bench_adv_step.build_case,
    "d_epoch": bench_d_epoch.build_case,
    "schedule": bench_schedule.build_case,
}
MIN_RUN_S = 0.02  # calls shorter than this are repeated inside one timed run


def parse_ops(spec: str) -> list[str]:
    return parse_choices(spec, OPS, "op")


def _row(case: Case, backend: str, tokens: int) -> dict[str, Any]:
    return {"op": case.op, "config": case.config.name, "cell": case.config.cell,
            "config_base": case.config.base_name, "backend": backend,
            "device": case.device, "median_s": None, "min_s": None, "max_s": None, "runs": 0,
            "inner": 1, "tokens": tokens, "tokens_per_s": None, "peak_mem_bytes": None,
            "first_call_s": None}


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= 600 else text[:600] + " ..."


def run_case(case: Case, repeats: int = 3, warmup: int = 1,
             budget_s: float | None = None) -> list[dict[str, Any]]:
    """Check, warm up and time every contender of a case; one result row each, plus the
    GEMM floor's row. A contender whose check or call fails gets an ``error`` and no time.

    budget_s: a contender stops taking part in further rounds once its timed runs have used
    this many seconds (it keeps at least one run); None: always ``repeats`` runs.
    warmup 0: the checked first call of an eager contender counts as its first timed run.
    """
    name = f"{case.op}/{case.config.name}"
    rows: list[dict[str, Any]] = []
    for backend, why in case.unavailable.items():
        row = _row(case, backend, case.tokens)
        row["error"] = f"unavailable: {why}"
        rows.append(row)
    # reference first: its output is what the contract backends are checked against
    order = sorted(case.contenders, key=lambda c: c.backend != "reference")
    # (contender, its row, seconds of its last call, timed runs so far)
    alive: list[tuple[Contender, dict[str, Any], float, list[float]]] = []
    for ct in order:
        row = _row(case, ct.backend, case.tokens)
        rows.append(row)
        call = ct.check_fn or ct.fn
        try:
            if ct.compiles:
                dt, out = timed(call, case.device)
            else:
                row["peak_mem_bytes"], dt, out = measure_peak(call, case.device)
            row["first_call_s"] = dt
            # with no warm-up asked for, an eager full call is a run like any other: count it
            counted = [dt] if warmup == 0 and not ct.compiles and ct.check_fn is None else []
            if ct.backend == "reference":
                case.set_reference_output(out)
            if ct.check is not None:
                ct.check(out, case)
            del out
            log.info("%s %s: checked (first call %.3g s)", name, ct.backend, dt)
            warm = ct.warm_fn or ct.fn
            for i in range(max(warmup, 1 if ct.compiles else 0)):
                if i == 0 and ct.compiles:
                    row["peak_mem_bytes"], dt, _ = measure_peak(warm, case.device)
                else:
                    dt, _ = timed(warm, case.device)
            if ct.warm_fn is not None:
                dt = math.inf  # a partial call says nothing about the full one
            alive.append((ct, row, dt, counted))
        except Exception as exc:  # record and go on: one broken backend must not stop a run
            row["error"] = _error_text(exc)
            log.warning("%s %s failed: %s", name, ct.backend, row["error"])
        finally:
            row.update(case.measured.get(ct.backend, {}))
    if not alive:
        return rows
    if case.gemm is not None:
        gemm_row = _row(case, GEMM, case.tokens)
        gemm_row["notes"] = case.gemm_desc
        dt, _ = timed(case.gemm, case.device)
        rows.append(gemm_row)
        alive.append((Contender(GEMM, case.gemm), gemm_row, dt, []))
    inner = {id(row): max(1, min(1000, math.ceil(MIN_RUN_S / dt))) if dt > 0 else 1
             for _, row, dt, _ in alive}
    times: dict[int, list[float]] = {}
    for _, row, _, counted in alive:
        times[id(row)] = counted if inner[id(row)] == 1 else []  # short calls: repeat inside
    for rnd in range(repeats):
        for ct, row, _, _ in alive:
            spent = times[id(row)]
            if len(spent) >= repeats:
                continue
            if budget_s is not None and spent and sum(spent) + spent[-1] > budget_s:
                continue
            dt, _ = timed(ct.fn, case.device, inner[id(row)])
            spent.append(dt)
        log.info("%s: round %d/%d done", name, rnd + 1, repeats)
    for _, row, _, _ in alive:
        ts = times[id(row)]
        med = statistics.median(ts)
        row.update(median_s=med, min_s=min(ts), max_s=max(ts), runs=len(ts),
                   inner=inner[id(row)], tokens_per_s=row["tokens"] / med if med > 0 else None)
        if case.op == "d_epoch":
            row["sequences_per_s"] = case.config.d_sequences / med if med > 0 else None
    rank = {b: i for i, b in enumerate((*KNOWN_BACKENDS, "fast", GEMM))}
    rows.sort(key=lambda r: rank.get(r["backend"], len(rank)))
    if case.backend_independent:
        for r in rows:
            r["backend_independent"] = True
    if case.notes:
        for r in rows:
            r.setdefault("notes", case.notes)
    if case.annotate is not None:
        for r in rows:
            case.annotate(r)
    return rows


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(message)  # one line, as every seqgan-fast error


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="seqgan-fast bench",
        description="Time rollout / rewards / sample / decode / adv_step / d_epoch for each "
                    "backend and the baselines; write JSON, print a table.")
    p.add_argument("--op", default="all",
                   help=f"{'|'.join(OPS)}|all, or a comma list (default: all); or scaling "
                        "(alone, under torchrun: bench_scaling.py)")
    p.add_argument("--config", default="paper",
                   help="paper|large|tiny|all (all = paper,large), or a comma list")
    p.add_argument("--cell", default="lstm",
                   help="the generator's cell axis: lstm|gru|all, or a comma list (default "
                        "lstm); a GRU config is reported as <config>-gru, with its time "
                        "relative to the LSTM's (time_vs_lstm) when both ran")
    p.add_argument("--backends", default=None,
                   help=f"comma list of {','.join(KNOWN_BACKENDS)} (default: every available "
                        "one; triton on CPU only when named, with TRITON_INTERPRET=1; "
                        "cpp@ISA forces the CPU core's path for that row)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--json", default=None, metavar="FILE", help="write the results here")
    for flag, dest in (("--batch", "batch"), ("--rollouts", "rollouts"),
                       ("--seq-len", "seq_len"), ("--vocab", "vocab"), ("--hidden", "hidden"),
                       ("--emb", "emb"), ("--sample-batch", "sample_batch"),
                       ("--decode-batch", "decode_batch"), ("--d-sequences", "d_sequences")):
        p.add_argument(flag, dest=dest, type=int, default=None, help="override the config")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per contender (3)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up calls after the check (1)")
    p.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="stop timing a contender once its runs used this long (>= 1 run)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--quick", action="store_true",
                   help="CI smoke: the tiny config, 2 runs, no extra warm-up")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress log")
    p.add_argument("--against", default=None, metavar="FILE",
                   help="--op scaling: the JSON of a 1-process run, for speed-up and scaling "
                        "efficiency")
    return p


def _overrides(args: argparse.Namespace) -> dict[str, int | None]:
    keys = ("batch", "rollouts", "seq_len", "vocab", "hidden", "emb", "sample_batch",
            "decode_batch", "d_sequences")
    out = {k: getattr(args, k) for k in keys}
    if args.hidden is not None and args.emb is None:
        out["emb"] = args.hidden  # E = H in both named configs
    return out


def run(ops: list[str], configs: list[BenchConfig], backends: list[str] | None, device: str,
        repeats: int = 3, warmup: int = 1, budget_s: float | None = None,
        on_case: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run every (op, config) and return the JSON document (schema 1). ``on_case(doc)``
    after each case (the document so far: ``--json`` writes it, so a run killed by a time
    limit keeps every finished case).

    On CUDA, TF32 is off for every contender that does not ask for it (the d_epoch
    ``fast_tf32`` row): cuDNN convolutions default to TF32 in torch, which would make the
    reference discriminator disagree with the fp32 kernels beyond float32 rounding."""
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(device),
        "settings": {"repeats": repeats, "warmup": warmup, "budget_s": budget_s,
                     "min_run_s": MIN_RUN_S},
        "configs": {c.name: c.to_dict() for c in configs},
        "results": [],
    }
    t0 = time.perf_counter()
    for cfg in configs:
        for op in ops:
            try:
                case = BUILDERS[op](op, cfg, device, backends)
            except Exception as exc:
                doc["results"].append({"op": op, "config": cfg.name, "backend": "*",
                                       "device": device, "error": _error_text(exc)})
                log.warning("%s/%s: could not be set up: %s", op, cfg.name, exc)
                continue
            doc["results"] += run_case(case, repeats, warmup, budget_s)
            if on_case is not None:
                add_ratios(doc["results"])
                on_case(doc)
    add_ratios(doc["results"])
    doc["machine"]["loadavg_end"] = loadavg()
    doc["wall_s"] = time.perf_counter() - t0
    return doc


def write_json(path: str, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path`` atomically (run/checkpoint.py's temporary file renamed over
    it): a run killed mid-write leaves the previous complete document."""
    atomic_write_text(path, json.dumps(doc, indent=1))


def check_json_target(path: str) -> None:
    """The --json file must be writable, checked before the benchmark runs (not after)."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"--json {path}: is a folder, expected a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"--json {path}: folder {parent} does not exist")
    existed = p.exists()
    try:  # a real probe: os.access says yes to root on /proc and read-only mounts
        with open(p, "a"):
            pass
    except OSError as exc:
        raise ValueError(f"--json {path}: not writable ({exc.strerror or exc})") from None
    if not existed:
        p.unlink(missing_ok=True)


def _check_sizes(args: argparse.Namespace) -> None:
    for key, value in _overrides(args).items():
        if value is not None and value < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be >= 1, got {value}")
    if args.seq_len is not None and args.seq_len < 2:
        raise ValueError(f"--seq-len must be >= 2 (a rollout needs a prefix and a "
                         f"continuation), got {args.seq_len}")
    if args.threads is not None and not 1 <= args.threads <= 4096:
        raise ValueError(f"--threads must be in [1, 4096], got {args.threads}")


def _scaling(args: argparse.Namespace) -> int:
    """``--op scaling`` (bench_scaling.py): the data-parallel trainer's phases, under torchrun
    or alone; its own table and JSON (one row per phase)."""
    from . import bench_scaling

    backends = [b.strip() for b in (args.backends or "auto").split(",") if b.strip()]
    if len(backends) != 1 or backends[0] not in ("auto", "reference", "cpp", "cuda", "triton"):
        print("seqgan-fast: error: bench: --op scaling times one backend: --backends auto|"
              f"reference|cpp|cuda|triton, got {args.backends!r}", file=sys.stderr)
        return 2
    if args.repeats < 1:
        print("seqgan-fast: error: bench: --repeats must be >= 1", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    config = "quick" if args.config == "paper" and args.quick else args.config
    return bench_scaling.main(config, backends[0], args.repeats, args.json, args.against)


def main(argv: list[str] | None = None) -> int:
    """``seqgan-fast bench``: returns 0; 2 on bad arguments (one line, before anything runs);
    1 when every contender failed."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except ValueError as exc:
        print(f"seqgan-fast: error: bench: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    if not args.quiet and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                            datefmt="%H:%M:%S", stream=sys.stderr)
    if args.quick:
        args.config, args.repeats, args.warmup = "tiny", min(args.repeats, 2), 0
    if args.op == "scaling":
        return _scaling(args)
    try:
        ops = parse_ops(args.op)
        configs = [c.replace(**_overrides(args)).with_cell(cell)
                   for c in resolve_configs(args.config) for cell in resolve_cells(args.cell)]
        backends = None if args.backends is None else \
            [b.strip() for b in args.backends.split(",") if b.strip()]
        if backends is not None:
            bad = [b for b in backends if b not in KNOWN_BACKENDS]
            if bad:
                raise ValueError(f"unknown backend(s) {bad}; choose from "
                                 f"{', '.join(KNOWN_BACKENDS)}")
        if args.repeats < 1 or args.warmup < 0:
            raise ValueError("--repeats must be >= 1 and --warmup >= 0")
        if args.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is visible to torch")
        _check_sizes(args)
        if args.json:
            check_json_target(args.json)
        # the allocator `seqgan-fast train` runs with (seqgan_fast/cli/malloc.py), so that the
        # figures, the schedule's projection above all, are those of training;
        # SEQGAN_FAST_MALLOC=system measures glibc's defaults
        malloc = "keep" if keep_freed_memory() else "system"
    except ValueError as exc:
        print(f"seqgan-fast: error: bench: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    command = list(sys.argv) if argv is None else ["seqgan-fast", "bench", *argv]

    def save(doc: dict[str, Any]) -> None:
        doc["machine"]["malloc"] = malloc
        doc["command"] = command
        if args.json:
            write_json(args.json, doc)

    doc = run(ops, configs, backends, args.device, args.repeats, args.warmup, args.budget,
              on_case=save)
    save(doc)
    if args.json:
        log.info("wrote %s", args.json)
    print(format_table(doc))
    timed_rows = [r for r in doc["results"] if r.get("median_s") is not None
                  and r.get("backend") != GEMM]
    if not timed_rows:
        print("seqgan-fast: error: bench: every contender failed (see the error column"
              f"{' and ' + args.json if args.json else ''})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
