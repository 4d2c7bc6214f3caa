"""The ``paper`` preset on the paper's oracle, NLL_oracle beside the official log's.

    python benchmarks/paper_curve.py [--mle-epochs 120] [--adv-batches N] --out DIR

Trains with ``TrainConfig.preset("paper")`` (the reference code's schedule and its effective
behaviour, docs/training-and-faithfulness.md) on ``seqgan_oracle/target_params.npz`` from the
shared data folder (``SEQGAN_FAST_DATA``), then prints our curve beside the official
experiment log (``seqgan_oracle/experiment-log.txt``, read where it lies, never copied) at the
same points: the paper preset evaluates where the reference code does and labels as its log
does (MLE "epoch k" = after k+1 epochs; adversarial "k" = after batch k's generator step, before its
discriminator rounds). ``--report-only`` re-prints the table of a finished run in ``--out``;
``--json PATH`` writes the curve, the alignment and the machine to a small JSON.
Exit status 2 (with the reason) when the oracle or the log is missing.
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

ORACLE = ("seqgan_oracle", "target_params.npz")
OFFICIAL_LOG = ("seqgan_oracle", "experiment-log.txt")
# The paper's Table 1 (synthetic data) gives 9.038 for MLE; its log ends MLE at 9.07058.
PAPER_MLE_NLL = 9.038
_SECTIONS = {"pre-training...": "mle", "adversarial training...": "adv"}
_LINE = re.compile(r"^epoch:\s*(\d+)\s+nll:\s*([0-9.eE+-]+)\s*$")


def parse_official_log(path: str | Path) -> dict[str, dict[int, float]]:
    """The official ``experiment-log.txt``: {"mle": {k: nll}, "adv": {k: nll}}, k as logged."""
    curves: dict[str, dict[int, float]] = {"mle": {}, "adv": {}}
    phase = None
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line in _SECTIONS:
            phase = _SECTIONS[line]
            continue
        m = _LINE.match(line)
        if m and phase is not None:
            curves[phase][int(m.group(1))] = float(m.group(2))
    if not curves["mle"]:
        raise ValueError(f"{path}: no 'epoch: K nll: V' lines after 'pre-training...'")
    return curves


def aligned_rows(records: list[dict[str, Any]],
                 official: dict[str, dict[int, float]]) -> list[dict[str, Any]]:
    """One row per evaluation of ours (official labels), with the log's value at that label
    (None where the log has none). ``trained``: MLE epochs / generator steps done."""
    rows = []
    for r in records:
        phase, k = r["phase"], int(r["epoch"])
        theirs = official.get(phase, {}).get(k)
        ours = r.get("nll_oracle")
        rows.append({"phase": phase, "label": k, "trained": k + 1, "ours": ours,
                     "official": theirs,
                     "diff": None if theirs is None or ours is None else ours - theirs})
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The comparison as a fixed-width table."""
    def f(v: float | None) -> str:
        return "—" if v is None else f"{v:.4f}"

    lines = [f"{'phase':<6} {'log k':>5} {'done':>5} {'ours':>8} {'official':>8} {'diff':>8}"]
    for r in rows:
        done = f"{r['trained']}{'ep' if r['phase'] == 'mle' else 'G'}"
        diff = "—" if r["diff"] is None else f"{r['diff']:+.4f}"
        lines.append(f"{r['phase']:<6} {r['label']:>5} {done:>5} {f(r['ours']):>8} "
                     f"{f(r['official']):>8} {diff:>8}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="run folder (metrics.jsonl, checkpoints, ...)")
    p.add_argument("--mle-epochs", type=int, default=120)
    p.add_argument("--d-pretrain-rounds", type=int, default=50)
    p.add_argument("--d-epochs", type=int, default=3)
    p.add_argument("--adv-batches", type=int, default=200)
    p.add_argument("--adv-d-rounds", type=int, default=5)
    p.add_argument("--backend", default="auto")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument("--report-only", action="store_true",
                   help="do not train: print the table of the run already in --out")
    p.add_argument("--json", default=None, help="also write the curve and alignment here")
    return p


def _shared(parts: tuple[str, ...]) -> Path | None:
    from seqgan_fast.data.paths import data_file

    try:
        return data_file(*parts)
    except FileNotFoundError as exc:
        print(f"paper_curve: skipped: {exc}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    oracle, log_path = _shared(ORACLE), _shared(OFFICIAL_LOG)
    if oracle is None or log_path is None:
        return 2
    import torch

    from seqgan_fast import SeqGANTrainer, TrainConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    summary: dict[str, Any] = {}
    if not args.report_only:
        cfg = TrainConfig.preset(
            "paper", oracle_params=str(oracle), mle_epochs=args.mle_epochs,
            d_pretrain_rounds=args.d_pretrain_rounds, d_epochs=args.d_epochs,
            adv_batches=args.adv_batches, adv_d_rounds=args.adv_d_rounds,
            backend=args.backend, device=args.device, seed=args.seed)
        t0 = time.perf_counter()
        summary = SeqGANTrainer(cfg, out, resume=args.resume, overwrite=args.overwrite,
                                progress=False).fit()
        logging.info("finished in %.0f s", time.perf_counter() - t0)
    elif (out / "summary.json").is_file():
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    metrics = out / "metrics.jsonl"
    if not metrics.is_file():
        print(f"paper_curve: no {metrics}", file=sys.stderr)
        return 2
    records = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines()]
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    if config.get("eval_schedule") != "official":
        print("paper_curve: this run does not use eval_schedule=official; its labels do not "
              "match the log's", file=sys.stderr)
        return 2
    official = parse_official_log(log_path)
    rows = aligned_rows(records, official)
    print(format_rows(rows))
    mle = [r for r in rows if r["phase"] == "mle"]
    if mle:
        last_logged = max(official["mle"])
        print(f"end of MLE: ours {mle[-1]['ours']:.4f} after {mle[-1]['trained']} epochs; "
              f"official log {official['mle'][last_logged]:.4f} (epoch {last_logged}); "
              f"paper {PAPER_MLE_NLL}")
    if args.json:
        from seqgan_fast.benchmarks.timing import machine_info

        doc = {
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": "python benchmarks/paper_curve.py " + shlex.join(
                sys.argv[1:] if argv is None else argv),
            "machine": machine_info(config.get("device", "cpu")),
            "config": {k: config[k] for k in (
                "mle_epochs", "d_pretrain_rounds", "d_epochs", "adv_batches", "adv_d_rounds",
                "num_rollouts", "pg_norm", "rollout_policy", "mle_shuffle", "d_shuffle",
                "eval_schedule", "backend", "seed", "num_train", "num_eval")},
            "wall_s": summary.get("wall_s"), "phase_s": summary.get("phase_s"),
            "paper_mle_nll": PAPER_MLE_NLL,
            "rows": rows,
        }
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
