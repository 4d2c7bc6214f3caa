"""SeqGAN training as the paper's reference code schedules it.

1. MLE pre-training of the generator (Adam, global grad-norm clip), ``mle_epochs`` epochs.
2. Discriminator pre-training: ``d_pretrain_rounds`` x (fresh negatives from the generator,
   then ``d_epochs`` epochs over positives + negatives).
3. Adversarial training: ``adv_batches`` x (``adv_g_steps`` policy-gradient steps with
   Monte-Carlo rollout rewards; rollout-policy update; ``adv_d_rounds`` discriminator rounds).

Where the reference code's effective behaviour differs from the paper's text, config keys
choose (README "Faithfulness"): ``pg_norm``, ``rollout_policy``, ``mle_shuffle``,
``d_shuffle`` and ``eval_schedule``.

Every random draw (sampling, rollouts, shuffles) takes a seed derived from ``cfg.seed`` and a
call counter that is checkpointed, so a run - resumed or not - is reproducible.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from . import ops
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
from .config import ConfigError, TrainConfig
from .guard import guard_trainer
from .models import Discriminator, Generator
from .optim import fast_adam
from .runfolder import check_metrics_file, check_output_folder, check_run_state, restart_plan
from .runlock import RunLock, refuse_if_locked

log = logging.getLogger(__name__)

CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, CURVES_FILE = (
    "config.json", "metrics.jsonl", "summary.json", "curves.png")
PHASES = ("mle", "d_pretrain", "adv", "done")
# Keys that may differ between a run and its resumption (schedule and runtime only).
RESUMABLE_CHANGES = frozenset({"mle_epochs", "d_pretrain_rounds", "adv_batches", "eval_every",
                               "checkpoint_every", "num_eval", "device", "backend"})
SAMPLE_CHUNK = 4096  # rows per sampling call: bounds the reference backend's logit memory
_STREAM_TRAINER = 1


def derive_seed(base: int, stream: int, index: int) -> int:
    """A 64-bit seed for draw ``index`` of ``stream``, derived from ``base`` (SeedSequence:
    well mixed, platform independent)."""
    words = np.random.SeedSequence([base % 2**64, stream, index]).generate_state(2, np.uint32)
    return int(words[0]) | (int(words[1]) << 32)


def sample_in_chunks(model, num: int, seed: int, backend: str = "auto",
                     temperature: float = 1.0, chunk: int = SAMPLE_CHUNK) -> torch.Tensor:
    """``model.sample(num, seed)`` drawn ``chunk`` rows at a time (same tokens: each row keeps
    its Philox row index): (num, seq_len) int64."""
    parts = [ops.sample(model, min(chunk, num - r0), seed=seed, temperature=temperature,
                        backend=backend, row_offset=r0)
             for r0 in range(0, num, chunk)]
    if not parts:
        return torch.zeros(0, model.seq_len, dtype=torch.int64, device=model.device)
    return torch.cat(parts)


@torch.no_grad()
def update_rollout_policy(rollout: Generator, generator: Generator, rate: float) -> None:
    """The delayed rollout policy of the paper's text (``rollout_policy=delayed``): the
    embedding is copied from the generator; every other parameter becomes
    ``rate * rollout + (1 - rate) * generator``. The reference code writes this update, but
    its rollout network reads the generator's variables through ``tf.identity`` and the
    update only rebinds Python attributes, so its rollouts use the current generator."""
    own = dict(generator.named_parameters())
    for name, p in rollout.named_parameters():
        if name.startswith("embedding."):
            p.copy_(own[name])
        else:
            p.mul_(rate).add_(own[name], alpha=1.0 - rate)


def _run_files(out_dir: Path) -> list[Path]:
    names = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, CURVES_FILE, "checkpoints")
    return [out_dir / n for n in names if (out_dir / n).exists()]


def check_device(device: str) -> torch.device:
    """Parse ``cpu`` / ``cuda[:N]``; ConfigError when CUDA is asked for but unavailable."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"bad device {device!r}; choose from cpu, cuda") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"bad device {device!r}; choose from cpu, cuda")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available "
                              f"(torch {torch.__version__}, CUDA build: "
                              f"{torch.version.cuda or 'no'})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} CUDA "
                              "device(s)")
    return dev


class SeqGANTrainer:
    """Train a SeqGAN generator on ``make_task(cfg)``; artefacts go to ``out_dir``.

    Everything is validated in the constructor, before anything is written: the config,
    device, backend, the task's data, and (``resume=True``) the checkpoint. A folder that
    already holds a run is only reused with ``resume=True`` (continue it) or
    ``overwrite=True`` (replace it). ``progress``: tqdm bars (None: only on a terminal).

    Files: ``config.json``, ``metrics.jsonl`` (one JSON object per evaluation: phase,
    epoch, time_s and the task's metrics), ``checkpoints/``, ``summary.json``,
    ``curves.png``.
    """

    def __init__(self, cfg: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = False,
                 overwrite: bool = False, progress: bool | None = None, task=None) -> None:
        from .tasks import make_task

        self.cfg = cfg.validate()
        self.out_dir = Path(out_dir)
        self.progress = progress
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ConfigError(f"output path {self.out_dir} exists and is not a folder")
        check_output_folder(self.out_dir)
        refuse_if_locked(self.out_dir)
        resume, overwrite = restart_plan(self.out_dir, resume, overwrite)
        ckpt_tensors: dict[str, dict[str, torch.Tensor]] = {}
        ckpt_state: dict[str, Any] | None = None
        if resume:
            path = latest_checkpoint(self.out_dir)
            if path is None:
                raise ConfigError(f"nothing to resume: no checkpoint in {self.out_dir}")
            ckpt_tensors, ckpt_state = load_checkpoint(path)
            check_run_state(ckpt_state, path / "state.json")
            check_metrics_file(self.out_dir / METRICS_FILE, ckpt_state["metrics_lines"])
            _check_resume_config(TrainConfig.from_dict(ckpt_state["config"]), cfg)
        elif _run_files(self.out_dir) and not overwrite:
            raise ConfigError(f"{self.out_dir} already holds a run; resume it (--resume) or "
                              "replace it (--overwrite), or choose another output folder")
        self.resumed = resume
        self.overwrite = overwrite
        self.device = check_device(cfg.device)
        try:
            self.backend = ops.resolve(cfg.backend, self.device)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
        torch.manual_seed(cfg.seed)
        self.task = task if task is not None else make_task(cfg)
        self.train_x = self.task.train_sequences().to(self.device)
        if self.train_x.dim() != 2 or self.train_x.shape[0] == 0:
            raise ConfigError(f"task {self.task.name} gave no training sequences")

        V, T, start = self.task.vocab_size, self.task.seq_len, self.task.start_token
        self.generator = Generator(V, cfg.g_emb_dim, cfg.g_hidden_dim, T, start,
                                   cell=cfg.g_cell, encoder=cfg.g_encoder,
                                   history_len=cfg.g_history or None).to(self.device)
        self.discriminator = Discriminator(
            V, T, cfg.d_emb_dim, cfg.d_filter_sizes, cfg.d_num_filters, cfg.d_dropout_keep,
            cfg.d_l2_reg).to(self.device)
        self.rollout_policy = copy.deepcopy(self.generator).requires_grad_(False)
        # Separate Adam states for MLE and policy gradient, as the reference code's two ops.
        self.g_mle_opt = torch.optim.Adam(self.generator.parameters(), lr=cfg.g_lr)
        self.g_adv_opt = torch.optim.Adam(self.generator.parameters(), lr=cfg.g_lr)
        self.d_opt = fast_adam(self.discriminator.parameters(), lr=cfg.d_lr)  # see optim.py

        self.state: dict[str, Any] = {
            "phase": "mle", "mle_epoch": 0, "d_round": 0, "adv_batch": 0, "seed_calls": 0,
            "elapsed_s": 0.0, "metrics_lines": 0, "num_evals": 0, "save_index": 0,
            "phase_s": {"mle": 0.0, "d_pretrain": 0.0, "adv": 0.0},
        }
        self.records: list[dict[str, Any]] = []
        if ckpt_state is not None:
            self._restore(ckpt_tensors, ckpt_state)
        guard_trainer(self)  # NaN/inf gradients or weights stop training (guard.py)

    # -- helpers --------------------------------------------------------------------------
    @property
    def model_info(self) -> dict[str, Any]:
        g = self.generator
        return {"vocab_size": g.vocab_size, "seq_len": g.seq_len, "start_token": g.start_token,
                "g_emb_dim": g.emb_dim, "g_hidden_dim": g.hidden_dim, **g.arch_info()}

    def next_seed(self) -> int:
        """The seed of the next random draw (counter checkpointed with the run)."""
        seed = derive_seed(self.cfg.seed, _STREAM_TRAINER, self.state["seed_calls"])
        self.state["seed_calls"] += 1
        return seed

    def _elapsed(self) -> float:
        return self._elapsed0 + time.perf_counter() - self._t0

    def _bar(self, total: int, initial: int, desc: str) -> tqdm:
        disable = None if self.progress is None else not self.progress
        return tqdm(total=total, initial=initial, desc=desc, disable=disable, leave=False,
                    dynamic_ncols=True)

    def _batches(self, n: int, seed: int, shuffle: bool = True) -> Iterator[torch.Tensor]:
        """Index batches of ``batch_size`` over n items, shuffled or in order; the incomplete
        last batch is dropped (as the reference code's loaders) unless it is the only one."""
        if shuffle:
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        else:
            perm = torch.arange(n)
        perm = perm.to(self.device)
        bs = self.cfg.batch_size
        if n <= bs:
            yield perm
            return
        for i in range(0, n - bs + 1, bs):
            yield perm[i : i + bs]

    def _g_step(self, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.generator.parameters(), self.cfg.g_grad_clip)
        opt.step()

    # -- phases ---------------------------------------------------------------------------
    def mle_epoch(self) -> float:
        """One epoch of MLE over the training sequences; returns the mean batch loss."""
        self.generator.train()
        total, count = 0.0, 0
        batches = self._batches(self.train_x.shape[0], self.next_seed(), self.cfg.mle_shuffle)
        for idx in batches:
            loss = self.generator.mle_loss(self.train_x[idx])
            self._g_step(self.g_mle_opt, loss)
            total, count = total + float(loss.detach()), count + 1
        return total / max(count, 1)

    def discriminator_round(self) -> tuple[float, float]:
        """Fresh negatives, then ``d_epochs`` epochs over positives + negatives, shuffled once
        for all of them (``d_shuffle=once``, the reference loader) or every epoch.
        Returns (mean loss, accuracy) of the last epoch."""
        cfg = self.cfg
        neg = sample_in_chunks(self.generator, cfg.d_num_negatives, self.next_seed(),
                               self.backend)
        pos = self.train_x
        pick_seed = self.next_seed()
        if pos.shape[0] > cfg.d_num_negatives:
            gen = torch.Generator().manual_seed(pick_seed)
            pos = pos[torch.randperm(pos.shape[0], generator=gen)[: cfg.d_num_negatives]
                      .to(self.device)]
        x = torch.cat([pos, neg])
        y = torch.cat([torch.ones(pos.shape[0], dtype=torch.int64),
                       torch.zeros(neg.shape[0], dtype=torch.int64)]).to(self.device)
        self.discriminator.train()
        loss_sum = correct = seen = count = 0.0
        n = x.shape[0]
        once = list(self._batches(n, self.next_seed())) if cfg.d_shuffle == "once" else None
        for _ in range(cfg.d_epochs):
            loss_sum = correct = seen = count = 0.0
            for idx in once if once is not None else self._batches(n, self.next_seed()):
                logits = self.discriminator(x[idx])
                loss = torch.nn.functional.cross_entropy(logits, y[idx]) \
                    + self.discriminator.l2_loss()
                self.d_opt.zero_grad(set_to_none=True)
                loss.backward()
                self.d_opt.step()
                loss_sum += float(loss.detach())
                correct += float((logits.argmax(1) == y[idx]).sum())
                seen += idx.numel()
                count += 1
        return loss_sum / max(count, 1), correct / max(seen, 1)

    def policy_gradient_step(self) -> float:
        """Sample a batch, score it with rollout rewards, one PG step; returns mean reward."""
        cfg = self.cfg
        x = ops.sample(self.generator, cfg.batch_size, seed=self.next_seed(),
                       backend=self.backend)
        policy = self.rollout_policy if cfg.rollout_policy == "delayed" else self.generator
        rewards = ops.rollout_rewards(policy, self.discriminator, x,
                                      num_rollouts=cfg.num_rollouts, seed=self.next_seed(),
                                      backend=self.backend)
        self.generator.train()
        self._g_step(self.g_adv_opt, self.generator.pg_loss(x, rewards, norm=cfg.pg_norm))
        return float(rewards.mean())

    # -- evaluation, checkpoints, files ---------------------------------------------------
    def evaluate(self, phase: str, epoch: int, final: bool = False) -> dict[str, Any]:
        self.generator.eval()
        metrics = self.task.evaluate(self.generator, phase=phase, epoch=epoch, final=final)
        record = {"phase": phase, "epoch": epoch, "time_s": round(self._elapsed(), 3),
                  **_jsonable(metrics)}
        with open(self.out_dir / METRICS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.records.append(record)
        self.state["metrics_lines"] += 1
        self.state["num_evals"] += 1
        log.info("%s %s %d: %s", phase, "epoch" if phase == "mle" else "batch", epoch,
                 ", ".join(f"{k}={_fmt(v)}" for k, v in metrics.items()))
        return record

    def _maybe_checkpoint(self) -> None:
        if self.state["num_evals"] % self.cfg.checkpoint_every == 0:
            self.save_checkpoint()

    def save_checkpoint(self) -> Path:
        """Write the whole training state (atomically) and return its folder."""
        self.state["elapsed_s"] = self._elapsed()
        self.state["save_index"] += 1
        rng = {"torch_cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["torch_cuda"] = torch.cuda.get_rng_state(self.device)
        tensors = {
            "generator": self.generator.state_dict(),
            "rollout": self.rollout_policy.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "optimizers": {**optimizer_tensors(self.g_mle_opt, "g_mle"),
                           **optimizer_tensors(self.g_adv_opt, "g_adv"),
                           **optimizer_tensors(self.d_opt, "d")},
            "rng": rng,
        }
        state = {"format": 1, **self.state, "config": self.cfg.to_dict(),
                 "model": self.model_info, "task": self.task.name, "backend": self.backend}
        return save_checkpoint(self.out_dir, self.state["save_index"], tensors, state)

    def _restore(self, tensors: dict[str, dict[str, torch.Tensor]], state: dict[str, Any]) -> None:
        if Generator.complete_arch(state.get("model")) != self.model_info:
            raise ConfigError(f"checkpoint in {self.out_dir} is for model {state.get('model')}, "
                              f"but this config builds {self.model_info}")
        self.generator.load_state_dict(tensors["generator"])
        self.rollout_policy.load_state_dict(tensors["rollout"])
        self.discriminator.load_state_dict(tensors["discriminator"])
        load_optimizer(self.g_mle_opt, tensors["optimizers"], "g_mle")
        load_optimizer(self.g_adv_opt, tensors["optimizers"], "g_adv")
        load_optimizer(self.d_opt, tensors["optimizers"], "d")
        torch.set_rng_state(tensors["rng"]["torch_cpu"])
        if self.device.type == "cuda" and "torch_cuda" in tensors["rng"]:
            torch.cuda.set_rng_state(tensors["rng"]["torch_cuda"], self.device)
        for key in self.state:
            if key in state:
                self.state[key] = state[key]
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

    def _prepare_out_dir(self) -> None:
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
        self.resumed = True  # a second fit() continues this run

    # -- the schedule ---------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Run (or continue) the whole schedule; returns the summary (also in summary.json).
        Holds the run folder's lock (runlock.py) throughout: a second trainer is refused."""
        with RunLock(self.out_dir):
            if not (self.resumed or self.overwrite) and latest_checkpoint(self.out_dir):
                raise ConfigError(f"{self.out_dir} now holds a run (written by another "
                                  "trainer after this one was set up); not overwritten")
            return self._fit_locked()

    def _fit_locked(self) -> dict[str, Any]:
        self._prepare_out_dir()
        self._elapsed0, self._t0 = float(self.state["elapsed_s"]), time.perf_counter()
        log.info("training %s on %s (%s backend%s) -> %s", self.task.name, self.device,
                 self.backend, _isa_note(self.backend), self.out_dir)
        st = self.state
        phases = (("mle", self._fit_mle, "d_pretrain"), ("d_pretrain", self._fit_d, "adv"),
                  ("adv", self._fit_adv, "done"))
        for name, run, following in phases:
            if st["phase"] != name:
                continue
            t = time.perf_counter()
            run()
            st["phase_s"][name] += time.perf_counter() - t
            st["phase"] = following
            if following == "adv":  # the rollout policy starts as a copy of the generator
                self.rollout_policy.load_state_dict(self.generator.state_dict())
            self.save_checkpoint()
            self._plot()
        return self._write_summary()

    def _fit_mle(self) -> None:
        cfg, st = self.cfg, self.state
        official = cfg.eval_schedule == "official"
        if st["mle_epoch"] == 0 and not self.records and not official:
            self.evaluate("mle", 0, final=cfg.mle_epochs == 0)
        with self._bar(cfg.mle_epochs, st["mle_epoch"], "MLE") as bar:
            while st["mle_epoch"] < cfg.mle_epochs:
                loss = self.mle_epoch()
                st["mle_epoch"] += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
                e = st["mle_epoch"]
                label = e - 1 if official else e  # the official log's "epoch k": k+1 epochs
                if e == cfg.mle_epochs:
                    self.evaluate("mle", label, final=True)
                elif label % cfg.eval_every == 0:
                    self.evaluate("mle", label)
                    self._maybe_checkpoint()

    def _fit_d(self) -> None:
        cfg, st = self.cfg, self.state
        loss = acc = None
        with self._bar(cfg.d_pretrain_rounds, st["d_round"], "D pre-train") as bar:
            while st["d_round"] < cfg.d_pretrain_rounds:
                loss, acc = self.discriminator_round()
                st["d_round"] += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}")
                log.debug("D round %d: loss %.4f, accuracy %.4f", st["d_round"], loss, acc)
                if st["d_round"] < cfg.d_pretrain_rounds and st["d_round"] % cfg.eval_every == 0:
                    self.save_checkpoint()
        if loss is not None:
            log.info("discriminator pre-trained: last epoch loss %.4f, accuracy %.4f", loss, acc)

    def _fit_adv(self) -> None:
        cfg, st = self.cfg, self.state
        with self._bar(cfg.adv_batches, st["adv_batch"], "adversarial") as bar:
            while st["adv_batch"] < cfg.adv_batches:
                rewards = [self.policy_gradient_step() for _ in range(cfg.adv_g_steps)]
                evaluated = self._official_adv_eval()
                if cfg.rollout_policy == "delayed":
                    update_rollout_policy(self.rollout_policy, self.generator,
                                          cfg.rollout_update_rate)
                d = [self.discriminator_round() for _ in range(cfg.adv_d_rounds)]
                st["adv_batch"] += 1
                bar.update(1)
                bar.set_postfix(reward=f"{sum(rewards) / len(rewards):.3f}",
                                **({"d_acc": f"{d[-1][1]:.3f}"} if d else {}))
                b = st["adv_batch"]
                if cfg.eval_schedule == "official":
                    if evaluated and b < cfg.adv_batches:
                        self._maybe_checkpoint()  # a whole batch: resuming never splits one
                elif b == cfg.adv_batches:
                    self.evaluate("adv", b, final=True)
                elif b % cfg.eval_every == 0:
                    self.evaluate("adv", b)
                    self._maybe_checkpoint()

    def _official_adv_eval(self) -> bool:
        """``eval_schedule=official``: evaluate batch k (0-based) after its generator step and
        before its discriminator rounds, when k % eval_every == 0 or k is the last batch, as
        the reference code logs "k". Returns whether it evaluated."""
        cfg, k = self.cfg, self.state["adv_batch"]
        last = k == cfg.adv_batches - 1
        if cfg.eval_schedule != "official" or not (last or k % cfg.eval_every == 0):
            return False
        self.evaluate("adv", k, final=last)
        return True

    def _write_summary(self) -> dict[str, Any]:
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
        summary.update(_jsonable(self.task.summary_extras()))
        summary.update({
            "task": self.task.name, "preset": self.cfg.preset_name, "device": str(self.device),
            "backend": self.backend, "wall_s": round(self._elapsed(), 3),
            "phase_s": {k: round(v, 3) for k, v in self.state["phase_s"].items()},
            "mle_epochs": self.state["mle_epoch"], "d_pretrain_rounds": self.state["d_round"],
            "adv_batches": self.state["adv_batch"],
        })
        atomic_write_json(self.out_dir / SUMMARY_FILE, summary)
        return summary

    def _plot(self) -> None:
        from .plotting import plot_curves

        try:
            plot_curves(self.records, self.out_dir / CURVES_FILE)
        except Exception as exc:  # a figure must never cost a training run
            log.warning("could not draw %s: %s", self.out_dir / CURVES_FILE, exc)


def _check_resume_config(saved: TrainConfig, new: TrainConfig) -> None:
    saved_d, new_d = saved.to_dict(), new.to_dict()
    changed = sorted(k for k in saved_d if saved_d[k] != new_d[k] and k not in RESUMABLE_CHANGES)
    if changed:
        detail = ", ".join(f"{k}: {saved_d[k]!r} -> {new_d[k]!r}" for k in changed)
        raise ConfigError(f"cannot resume with a different {detail} (only "
                          f"{', '.join(sorted(RESUMABLE_CHANGES))} may change)")


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
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


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _isa_note(backend: str) -> str:
    """', CPU path avx2' for the cpp backend: which ISA copy of the core the run uses."""
    return f", CPU path {ops.cpu_isa()}" if backend == "cpp" else ""
