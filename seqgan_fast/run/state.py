"""Run state apart from the schedule: the run folder's files, checkpoints and resumption.

``open_run`` decides which run a folder may hold; ``RunState`` (held by ``SeqGANTrainer``,
train/trainer.py) keeps the counters and records and reads and writes the run folder: the
checkpoint of the whole training state and its restoration, ``metrics.jsonl``,
``config.json``, ``summary.json`` and the curves. The trainer keeps the schedule (its
phases) and calls these.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..config import ConfigError, TrainConfig
from ..metrics import paired_gain_z
from ..models import Generator
from .checkpoint import (
    atomic_write_json,
    atomic_write_text,
    clear_checkpoints,
    latest_checkpoint,
    load_checkpoint,
    load_optimizer,
    optimizer_tensors,
    save_checkpoint,
)
from .folder import check_metrics_file, check_output_folder, check_run_state, restart_plan
from .lock import refuse_if_locked
from .plots import plot_curves

log = logging.getLogger(__name__)

CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, CURVES_FILE = (
    "config.json", "metrics.jsonl", "summary.json", "curves.png")
BEST_DIR = "best"  # the selected generator (select_metric): best/checkpoints/NNNNNN
PHASES = ("mle", "d_pretrain", "adv", "done")
# Keys that may differ between a run and its resumption (schedule and runtime only).
RESUMABLE_CHANGES = frozenset({"mle_epochs", "d_pretrain_rounds", "adv_batches", "eval_every",
                               "checkpoint_every", "num_eval", "device", "backend", "d_graph",
                               "tf32"})


def open_run(out_dir: Path, cfg: TrainConfig, resume: bool, overwrite: bool
             ) -> tuple[bool, bool, dict[str, dict[str, torch.Tensor]], dict[str, Any] | None]:
    """Decide what ``out_dir`` may hold before anything is written: returns (resume,
    overwrite, checkpoint tensors, checkpoint state) - the checkpoint only when resuming.
    ConfigError when the folder cannot be used as asked."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"output path {out_dir} exists and is not a folder")
    check_output_folder(out_dir)
    refuse_if_locked(out_dir)
    resume, overwrite = restart_plan(out_dir, resume, overwrite)
    ckpt_tensors: dict[str, dict[str, torch.Tensor]] = {}
    ckpt_state: dict[str, Any] | None = None
    if resume:
        path = latest_checkpoint(out_dir)
        if path is None:
            raise ConfigError(f"nothing to resume: no checkpoint in {out_dir}")
        ckpt_tensors, ckpt_state = load_checkpoint(path)
        check_run_state(ckpt_state, path / "state.json")
        check_metrics_file(out_dir / METRICS_FILE, ckpt_state["metrics_lines"])
        _check_resume_config(TrainConfig.from_dict(ckpt_state["config"]), cfg)
    elif _run_files(out_dir) and not overwrite:
        raise ConfigError(f"{out_dir} already holds a run; resume it (--resume) or "
                          "replace it (--overwrite), or choose another output folder")
    return resume, overwrite, ckpt_tensors, ckpt_state


def _run_files(out_dir: Path) -> list[Path]:
    names = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, CURVES_FILE, "checkpoints")
    return [out_dir / n for n in names if (out_dir / n).exists()]


@dataclass
class Trainables:
    """What a checkpoint holds besides the counters: the three networks and their optimizers
    (separate Adam states for MLE and the policy gradient, as the reference code's two ops)."""

    generator: Generator
    rollout_policy: Generator
    discriminator: torch.nn.Module
    g_mle_opt: torch.optim.Optimizer
    g_adv_opt: torch.optim.Optimizer
    d_opt: torch.optim.Optimizer


class RunState:
    """A training run's state and its folder: the schedule's counters (``state``), the
    evaluation records, the generator selected by validation, checkpoints of the whole
    training state and their restoration, ``metrics.jsonl``, ``config.json``,
    ``summary.json`` and the curves. ``SeqGANTrainer`` holds one (``trainer.run``) and runs
    the schedule; this object never reaches back into the trainer.

    ``world``: the data-parallel group or None; only a single process or rank 0 writes.
    ``resumed`` / ``overwrite``: what ``open_run`` decided for the folder."""

    def __init__(self, out_dir: Path, cfg: TrainConfig, task: Any, nets: Trainables,
                 device: torch.device, backend: str, world: Any = None, resumed: bool = False,
                 overwrite: bool = False,
                 embeddings_info: dict[str, Any] | None = None) -> None:
        check_batch_fits(cfg, task)
        self.out_dir, self.cfg, self.task, self.nets = out_dir, cfg, task, nets
        self.device, self.backend, self.world = device, backend, world
        self.resumed, self.overwrite = resumed, overwrite
        self.state: dict[str, Any] = {
            "phase": "mle", "mle_epoch": 0, "d_round": 0, "adv_batch": 0, "seed_calls": 0,
            "elapsed_s": 0.0, "metrics_lines": 0, "num_evals": 0, "save_index": 0,
            "phase_s": {"mle": 0.0, "d_pretrain": 0.0, "adv": 0.0},
        }
        if embeddings_info is not None:
            self.state["g_embeddings"] = embeddings_info
        self._best_generator: dict[str, torch.Tensor] | None = None
        self._best_per_user = None  # its per-user validation values (select_min_z)
        self.records: list[dict[str, Any]] = []
        self._elapsed0, self._t0 = 0.0, time.perf_counter()

    @property
    def writes(self) -> bool:
        """Whether this process writes the run folder: a single process, or rank 0."""
        return self.world is None or self.world.is_main

    @property
    def model_info(self) -> dict[str, Any]:
        g = self.nets.generator
        return {"vocab_size": g.vocab_size, "seq_len": g.seq_len, "start_token": g.start_token,
                "g_emb_dim": g.emb_dim, "g_hidden_dim": g.hidden_dim, **g.arch_info()}

    def start_clock(self) -> None:
        """Training time restarts from the checkpointed ``elapsed_s``."""
        self._elapsed0, self._t0 = float(self.state["elapsed_s"]), time.perf_counter()

    def elapsed(self) -> float:
        return self._elapsed0 + time.perf_counter() - self._t0

    def append_record(self, record: dict[str, Any]) -> None:
        """One evaluation: a line of metrics.jsonl (rank 0), and the run's count of them."""
        if self.writes:
            with open(self.out_dir / METRICS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        self.records.append(record)
        self.state["metrics_lines"] += 1
        self.state["num_evals"] += 1

    # -- selection by validation (select_metric) ------------------------------------------
    def _select_name(self) -> str | None:
        name, cfg = self.cfg.select_metric, self.cfg
        if name == "none":
            return None
        if name != "auto":
            return name
        if self.task.name == "recsys":
            return f"val_ndcg@{10 if 10 in cfg.topk else max(cfg.topk)}"
        if self.task.name == "oracle":
            return "nll_oracle"
        return "nll_test" if self.task.name == "text" and cfg.test_data else None

    def consider_best(self, record: dict[str, Any], candidate: bool) -> None:
        """Keep the generator of the best candidate evaluation (the final MLE one and every
        adversarial one) by the selection metric, in memory and in ``best/``."""
        name = self._select_name()
        if name is None:
            return
        if name not in record:
            raise ConfigError(f"select_metric={name!r} is not among this task's metrics "
                              f"({', '.join(k for k in record if k not in ('phase', 'epoch'))})")
        if not candidate:
            return
        value = float(record[name])
        minimise = name.removeprefix("val_").startswith("nll")
        best = self.state.get("best")
        if best is not None and not (value < best["value"] if minimise else
                                     value > best["value"]):
            return
        entry = {"metric": name, "mode": "min" if minimise else "max", "value": value,
                 "phase": record["phase"], "epoch": record["epoch"],
                 "metrics": {k: v for k, v in record.items() if k != "time_s"}}
        z_min = float(self.cfg.select_min_z)
        mine = self.task.per_user_values(name) if z_min > 0 else None  # of this record
        if best is not None and mine is not None:
            theirs = self._selected_per_user(name)
            gain, z = paired_gain_z(theirs, mine) if minimise else paired_gain_z(mine, theirs)
            if z <= z_min:
                log.info("selection: %s %s %d: %s %+.4f over the selected (%s %d) is %.2f "
                         "standard errors <= select_min_z=%g; keeping the selected",
                         record["phase"], "batch" if record["phase"] == "adv" else "epoch",
                         record["epoch"], name, gain, best["phase"], best["epoch"], z, z_min)
                self.state.setdefault("not_selected", []).append(
                    {"phase": record["phase"], "epoch": record["epoch"], "value": value,
                     "gain": gain, "z": z})
                return
            entry["gain_z"] = z
        self.state["best"] = entry
        self._best_generator = {k: v.detach().clone()
                                for k, v in self.nets.generator.state_dict().items()}
        self._best_per_user = mine
        self._write_best()

    def _selected_per_user(self, name: str):
        """The selected generator's per-user validation values (recomputed from its weights
        after a resume)."""
        if self._best_per_user is None:
            g = copy.deepcopy(self.nets.generator)
            g.load_state_dict(self._best_generator)
            self._best_per_user = self.task.per_user_values(name, g)
        return self._best_per_user

    def _state_json(self) -> dict[str, Any]:
        return {"format": 1, **self.state, "config": self.cfg.to_dict(),
                "model": self.model_info, "task": self.task.name, "backend": self.backend}

    def _write_best(self) -> None:
        if self._best_generator is not None and self.writes:
            save_checkpoint(self.out_dir / BEST_DIR, self.state["num_evals"],
                            {"generator": self._best_generator}, self._state_json())

    def sync_best_dir(self) -> None:
        """best/ follows the restored state (one from a discarded future is replaced)."""
        if not self.writes:
            return
        if self._best_generator is not None:
            self._write_best()
        else:
            clear_checkpoints(self.out_dir / BEST_DIR)

    def maybe_checkpoint(self) -> None:
        if self.state["num_evals"] % self.cfg.checkpoint_every == 0:
            self.save_checkpoint()

    def save_checkpoint(self) -> Path:
        """Write the whole training state (atomically; rank 0 only) and return its folder."""
        self.state["elapsed_s"] = self.elapsed()
        self.state["save_index"] += 1
        rng = {"torch_cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["torch_cuda"] = torch.cuda.get_rng_state(self.device)
        tensors = {
            "generator": self.nets.generator.state_dict(),
            "rollout": self.nets.rollout_policy.state_dict(),
            "discriminator": self.nets.discriminator.state_dict(),
            "optimizers": {**optimizer_tensors(self.nets.g_mle_opt, "g_mle"),
                           **optimizer_tensors(self.nets.g_adv_opt, "g_adv"),
                           **optimizer_tensors(self.nets.d_opt, "d")},
            "rng": rng,
        }
        if self._best_generator is not None:  # so that a resume restores best/ exactly
            tensors["best_generator"] = self._best_generator
        if not self.writes:  # the other ranks keep the same counters, rank 0 writes
            return self.out_dir / "checkpoints"
        return save_checkpoint(self.out_dir, self.state["save_index"], tensors,
                               self._state_json())

    def restore(self, tensors: dict[str, dict[str, torch.Tensor]], state: dict[str, Any]) -> None:
        if Generator.complete_arch(state.get("model")) != self.model_info:
            raise ConfigError(f"checkpoint in {self.out_dir} is for model {state.get('model')}, "
                              f"but this config builds {self.model_info}")
        self.nets.generator.load_state_dict(tensors["generator"])
        self.nets.rollout_policy.load_state_dict(tensors["rollout"])
        self.nets.discriminator.load_state_dict(tensors["discriminator"])
        load_optimizer(self.nets.g_mle_opt, tensors["optimizers"], "g_mle")
        load_optimizer(self.nets.g_adv_opt, tensors["optimizers"], "g_adv")
        load_optimizer(self.nets.d_opt, tensors["optimizers"], "d")
        torch.set_rng_state(tensors["rng"]["torch_cpu"])
        if self.device.type == "cuda" and "torch_cuda" in tensors["rng"]:
            torch.cuda.set_rng_state(tensors["rng"]["torch_cuda"], self.device)
        for key in self.state:
            if key in state:
                self.state[key] = state[key]
        if "g_embeddings" in state:  # what the run was initialised with (embeddings.py)
            self.state["g_embeddings"] = state["g_embeddings"]
        if "best" in state and "best_generator" in tensors:
            self.state["best"] = state["best"]
            self._best_generator = tensors["best_generator"]
        if self.state["phase"] == "done" and self.state["adv_batch"] < self.cfg.adv_batches:
            self.state["phase"] = "adv"  # the schedule was extended
        done = PHASES.index(self.state["phase"])
        for phase, key, count in (("mle", "mle_epochs", "mle_epoch"),
                                  ("d_pretrain", "d_pretrain_rounds", "d_round")):
            if done > PHASES.index(phase) and getattr(self.cfg, key) != self.state[count]:
                log.warning("%s=%d ignored: that phase already ended after %d", key,
                            getattr(self.cfg, key), self.state[count])
        log.info("resuming %s at phase %s (MLE epoch %d, D round %d, adversarial batch %d)",
                 self.out_dir, self.state["phase"], self.state["mle_epoch"],
                 self.state["d_round"], self.state["adv_batch"])

    def prepare_out_dir(self) -> None:
        if self.writes:
            self._write_out_dir()
        if self.world is not None:  # rank 0's metrics history everywhere
            self.records = self.world.broadcast_object(self.records)
        self.resumed = True  # a second fit() continues this run

    def _write_out_dir(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        metrics = self.out_dir / METRICS_FILE
        if self.resumed:
            lines = metrics.read_text(encoding="utf-8").splitlines() if metrics.exists() else []
            keep = lines[: self.state["metrics_lines"]]
            self.records = [json.loads(line) for line in keep]
            atomic_write_text(metrics, "".join(line + "\n" for line in keep))
        else:
            if self.overwrite:
                clear_checkpoints(self.out_dir)
                for name in (SUMMARY_FILE, CURVES_FILE):
                    (self.out_dir / name).unlink(missing_ok=True)
            atomic_write_text(metrics, "")
        self.task.save(self.out_dir)  # also on resume: the task may keep state there
        atomic_write_text(self.out_dir / CONFIG_FILE, self.cfg.to_json() + "\n")

    def write_summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = dict(self.records[-1]) if self.records else {}
        mle = [r for r in self.records if r["phase"] == "mle"]
        adv = [r for r in self.records if r["phase"] == "adv"]
        untrained = mle and mle[0]["epoch"] == 0 and self.cfg.eval_schedule == "completed"
        marks = {"init": mle[0] if untrained else None,
                 "mle": mle[-1] if mle else None, "adv": adv[-1] if adv else None}
        for tag, rec in marks.items():
            for key, value in (rec or {}).items():
                if key not in ("phase", "epoch", "time_s") and isinstance(value, (int, float)):
                    summary[f"{key}_{tag}"] = value
        summary.update(jsonable(self.task.summary_extras()))
        summary.update({
            "version": __version__, "task": self.task.name, "preset": self.cfg.preset_name,
            "device": str(self.device),
            "backend": self.backend, "wall_s": round(self.elapsed(), 3),
            "phase_s": {k: round(v, 3) for k, v in self.state["phase_s"].items()},
            "mle_epochs": self.state["mle_epoch"], "d_pretrain_rounds": self.state["d_round"],
            "adv_batches": self.state["adv_batch"],
        })
        if "g_embeddings" in self.state:
            summary["g_embeddings"] = self.state["g_embeddings"]
        if "best" in self.state:
            best = self.state["best"]
            summary["selected"] = {**best, "folder": str(self.out_dir / BEST_DIR),
                                   "adversarial_beat_mle": best["phase"] == "adv",
                                   "passed_over": self.state.get("not_selected", [])}
            if self.records:
                summary["last"] = {k: v for k, v in self.records[-1].items() if k != "time_s"}
        if self.writes:
            atomic_write_json(self.out_dir / SUMMARY_FILE, summary)
        return summary

    def plot(self) -> None:
        if not self.writes:
            return
        try:
            plot_curves(self.records, self.out_dir / CURVES_FILE)
        except Exception as exc:  # a figure must never cost a training run
            log.warning("could not draw %s: %s", self.out_dir / CURVES_FILE, exc)



def check_batch_fits(cfg: TrainConfig, task: Any) -> None:
    """A batch no larger than the training data (known once the task has read its file;
    the oracle's num_train is checked with the config): refused before anything is written,
    not minutes later as (T - 1) * num_rollouts * batch_size completions per step. Also a
    warning where the discriminator would get fewer positives than negatives."""
    n = int(task.train_sequences().shape[0])
    where = "num_train" if task.name == "oracle" else f"the training data ({cfg.data})"
    if cfg.batch_size > n:
        raise ConfigError(f"bad value {cfg.batch_size} for batch_size: a batch cannot be "
                          f"larger than {where}: {n} sequences (lower batch_size)")
    if cfg.d_num_negatives > n and not cfg.history_len:
        log.warning("d_num_negatives=%d exceeds the %d training sequences: the discriminator "
                    "trains on %d positives against %d negatives", cfg.d_num_negatives, n, n,
                    cfg.d_num_negatives)


def _check_resume_config(saved: TrainConfig, new: TrainConfig) -> None:
    saved_d, new_d = saved.to_dict(), new.to_dict()
    changed = sorted(k for k in saved_d if saved_d[k] != new_d[k] and k not in RESUMABLE_CHANGES)
    if changed:
        detail = ", ".join(f"{k}: {saved_d[k]!r} -> {new_d[k]!r}" for k in changed)
        raise ConfigError(f"cannot resume with a different {detail} (only "
                          f"{', '.join(sorted(RESUMABLE_CHANGES))} may change)")


def jsonable(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` with tensors and numpy scalars as plain numbers, non-finite floats as None."""
    def conv(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            v = v.item() if v.numel() == 1 else v.tolist()
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v

    return {str(k): conv(v) for k, v in d.items()}


def format_value(v: Any) -> str:
    """A metric as the log line shows it (floats to 4 decimals)."""
    return f"{v:.4f}" if isinstance(v, float) else str(v)
