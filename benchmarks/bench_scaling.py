"""``scaling``: the data-parallel trainer's phases, timed under ``torchrun`` (or alone).

``seqgan-fast bench --op scaling --config quick|paper|tiny`` builds the real
``SeqGANTrainer`` of that preset (in a temporary folder) on every rank of the launch and times,
``--repeats`` times each, one MLE epoch, one discriminator round (fresh negatives + d_epochs
epochs), one adversarial generator update (sample, rollouts, rewards, PG step) and one
evaluation. Every timed call starts and ends at a barrier, so a time is the slowest rank's.
Rank 0 prints the table and writes ``--json``: per phase the median seconds and sequences/s,
the world size, torch threads per rank and the machine's usable cores (the ceiling of a K-rank
run on C cores is min(K x threads, C) busy cores). ``--against FILE`` (the JSON of a 1-process
run) adds speed-up and scaling efficiency = speed-up / world size.

One node: ``torchrun --nproc_per_node=K -m seqgan_fast bench --op scaling --json sK.json``.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import torch

from seqgan_fast.config import TrainConfig
from seqgan_fast.parallel.distributed import activate, world_from_env

from .timing import machine_info

PHASES = ("mle_epoch", "d_round", "adv_step", "eval")
SCHEMA = 1


def _config(name: str, backend: str) -> TrainConfig:
    if name == "tiny":  # CI smoke: seconds
        return TrainConfig.preset(
            "quick", vocab_size=61, seq_len=7, g_emb_dim=8, g_hidden_dim=16, num_train=128,
            num_eval=96, d_num_negatives=64, d_emb_dim=8, d_filter_sizes=(2, 3),
            d_num_filters=(8, 8), num_rollouts=2, batch_size=32, backend=backend)
    if name in ("quick", "paper"):
        return TrainConfig.preset(name, backend=backend)
    raise ValueError(f"--config {name!r}: the scaling op takes quick, paper or tiny")


def _sequences(cfg: TrainConfig, phase: str) -> int:
    """Sequences one call of ``phase`` processes (generated or trained on)."""
    if phase == "mle_epoch":
        return cfg.num_train
    if phase == "d_round":
        return cfg.d_num_negatives * (1 + 2 * cfg.d_epochs)  # drawn, then 2N x d_epochs
    if phase == "adv_step":
        return cfg.batch_size * (1 + cfg.num_rollouts * (cfg.seq_len - 1))
    return cfg.num_eval


def run(config: str, backend: str, repeats: int, timeout_s: float = 300.0) -> dict[str, Any]:
    """Time the phases on this process's rank; the document (rank 0's is the one to keep)."""
    from seqgan_fast.train.trainer import SeqGANTrainer

    cfg = _config(config, backend)
    world = world_from_env(cfg.device, timeout_s)
    size = 1 if world is None else world.size
    with tempfile.TemporaryDirectory(prefix="seqgan-scaling-") as tmp:
        trainer = SeqGANTrainer(cfg, tmp, progress=False, world=world)
        calls = {
            "mle_epoch": trainer.mle_epoch,
            "d_round": trainer.discriminator_round,
            "adv_step": trainer.policy_gradient_step,
            "eval": lambda: trainer.task.evaluate(trainer.generator, phase="adv", epoch=0),
        }
        times: dict[str, list[float]] = {p: [] for p in PHASES}
        with activate(world):
            for phase in PHASES:
                for _ in range(repeats + 1):  # the first call warms up
                    if world is not None:
                        world.barrier()
                    t0 = time.perf_counter()
                    calls[phase]()
                    if world is not None:
                        world.barrier()
                    times[phase].append(time.perf_counter() - t0)
    machine = machine_info(cfg.device)
    results = []
    for phase in PHASES:
        ts = times[phase][1:]
        med = statistics.median(ts)
        n = _sequences(cfg, phase)
        results.append({"phase": phase, "median_s": med, "min_s": min(ts), "max_s": max(ts),
                        "runs": len(ts), "sequences": n, "sequences_per_s": n / med})
    return {"schema": SCHEMA, "op": "scaling", "config": config, "backend": trainer.backend,
            "world_size": size, "threads_per_rank": torch.get_num_threads(),
            "cores_usable": machine["cores_usable"], "machine": machine, "results": results,
            "rank": 0 if world is None else world.rank}


def add_efficiency(doc: dict[str, Any], single: dict[str, Any]) -> None:
    """speedup = single-process seconds / these seconds; efficiency = speedup / world size."""
    base = {r["phase"]: r["median_s"] for r in single.get("results", [])}
    for row in doc["results"]:
        if row["phase"] in base and row["median_s"] > 0:
            row["speedup"] = base[row["phase"]] / row["median_s"]
            row["efficiency"] = row["speedup"] / doc["world_size"]
    doc["against"] = {"world_size": single.get("world_size"),
                      "threads_per_rank": single.get("threads_per_rank")}


def format_table(doc: dict[str, Any]) -> str:
    head = (f"scaling/{doc['config']} ({doc['backend']} backend): {doc['world_size']} "
            f"process(es) x {doc['threads_per_rank']} thread(s) on {doc['cores_usable']} "
            "usable cores")
    lines = [head, f"{'phase':<10} {'median_s':>9} {'seq/s':>10} {'speedup':>8} {'eff.':>6}"]
    for r in doc["results"]:
        sp = f"{r['speedup']:.2f}" if "speedup" in r else "-"
        ef = f"{r['efficiency']:.0%}" if "efficiency" in r else "-"
        lines.append(f"{r['phase']:<10} {r['median_s']:>9.3f} {r['sequences_per_s']:>10.0f} "
                     f"{sp:>8} {ef:>6}")
    return "\n".join(lines)


def main(config: str, backend: str, repeats: int, json_path: str | None,
         against: str | None) -> int:
    """The ``--op scaling`` branch of ``seqgan-fast bench``; returns the exit status."""
    single = None
    if against:
        try:
            with open(against, encoding="utf-8") as f:
                single = json.load(f)
        except (OSError, ValueError) as exc:
            print(f"seqgan-fast: error: bench: --against {against}: {exc}", file=sys.stderr)
            return 2
    try:
        doc = run(config, backend, repeats)
    except ValueError as exc:
        print(f"seqgan-fast: error: bench: {exc}", file=sys.stderr)
        return 2
    if doc["rank"] != 0:
        return 0
    if single is not None:
        add_efficiency(doc, single)
    doc["command"] = list(sys.argv)
    doc["env"] = {k: os.environ[k] for k in ("WORLD_SIZE", "OMP_NUM_THREADS")
                  if k in os.environ}
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
    print(format_table(doc))
    return 0
