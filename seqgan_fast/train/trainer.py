"""SeqGAN training as the paper's reference code schedules it.

1. MLE pre-training of the generator (Adam, global grad-norm clip), ``mle_epochs`` epochs.
2. Discriminator pre-training: ``d_pretrain_rounds`` x (fresh negatives from the generator,
   then ``d_epochs`` epochs over positives + negatives).
3. Adversarial training: ``adv_batches`` x (``adv_g_steps`` policy-gradient steps with
   Monte-Carlo rollout rewards; rollout-policy update; ``adv_d_rounds`` discriminator rounds).

Where the reference code's effective behaviour differs from the paper's text, config keys
choose (docs/training-and-faithfulness.md): ``pg_norm``, ``rollout_policy``, ``mle_shuffle``,
``d_shuffle`` and ``eval_schedule``.

Every random draw (sampling, rollouts, shuffles) takes a seed derived from ``cfg.seed`` and a
call counter that is checkpointed, so a run - resumed or not - is reproducible.

Data-parallel (``torchrun``, distributed.py): every rank runs this schedule on its share of
each batch's logical rows - the same global batches, permutations and seeds as one process -
and gradients are summed across ranks from local losses scaled so that the sum is the
single-process loss (a mean over rows: local sum / global count; the summed PG loss: as is).
Clipping and the optimizer step follow the reduction, so the weights stay equal on all ranks.
Rank 0 alone writes the run folder; the others get its checkpoint by broadcast.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .. import ops
from ..config import TrainConfig
from ..config.device import check_device
from ..data.embeddings import load_embeddings, vocabulary_strings
from ..errors import ConfigError
from ..models import Discriminator, Generator
from ..parallel.distributed import (
    DEFAULT_TIMEOUT_S,
    DistributedError,
    World,
    activate,
    check_same_config,
    shard_rollout_rewards,
    world_from_env,
)
from ..run.checkpoint import latest_checkpoint
from ..run.lock import RunLock
from ..run.state import BEST_DIR, RunState, Trainables, format_value, jsonable, open_run  # noqa: F401 (BEST_DIR)
from ..tasks import make_task
from .draws import draw_seed, sample_in_chunks
from .dstep import DiscriminatorStep, configure_tf32
from .guard import guard_trainer
from .optim import fast_adam

log = logging.getLogger(__name__)

_STREAM_TRAINER = 1


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



class SeqGANTrainer:
    """Train a SeqGAN generator on ``make_task(cfg)``; artefacts go to ``out_dir``.

    Everything is validated in the constructor, before anything is written: the config,
    device, backend, the task's data, and (``resume=True``) the checkpoint. A folder that
    already holds a run is only reused with ``resume=True`` (continue it) or
    ``overwrite=True`` (replace it). ``progress``: tqdm bars (None: only on a terminal).
    ``world``: the data-parallel process group (distributed.World); None: the one of a
    ``torchrun`` launch if there is one (``dist_timeout_s``: how long a collective waits for
    a hung peer), else a single process.

    Files: ``config.json``, ``metrics.jsonl`` (one JSON object per evaluation: phase,
    epoch, time_s and the task's metrics), ``checkpoints/``, ``summary.json``,
    ``curves.png``.
    """

    def __init__(self, cfg: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = False,
                 overwrite: bool = False, progress: bool | None = None, task=None,
                 world: World | None = None,
                 dist_timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.cfg = cfg.validate()
        self.out_dir = Path(out_dir)
        self.world = world if world is not None else world_from_env(cfg.device, dist_timeout_s)
        writes = self.world is None or self.world.is_main
        self.progress = progress if writes else False
        resume, overwrite, ckpt_tensors, ckpt_state = self._open_folder(resume, overwrite)
        torch.manual_seed(cfg.seed)
        encoder_len = self._build_task(task, ckpt_state)
        embeddings_info = self._build_models(encoder_len, resume)
        self._build_optimizers()
        self.run = RunState(
            self.out_dir, self.cfg, self.task,
            Trainables(self.generator, self.rollout_policy, self.discriminator,
                       self.g_mle_opt, self.g_adv_opt, self.d_opt),
            self.device, self.backend, self.world, resumed=resume, overwrite=overwrite,
            embeddings_info=embeddings_info)
        self.state = self.run.state  # the schedule's counters (checkpointed with the run)
        if ckpt_state is not None:
            self.run.restore(ckpt_tensors, ckpt_state)
        guard_trainer(self)  # NaN/inf gradients or weights stop training (guard.py)

    # -- construction, in order (the order of the random draws is part of the run) ---------
    def _open_folder(self, resume: bool, overwrite: bool):
        """The device and backend, and what the run folder may hold (``run.state.open_run``):
        a single process checks the folder first, as it always did; data-parallel ranks
        first agree on their config, then rank 0 decides for all."""
        if self.world is None:
            plan = open_run(self.out_dir, self.cfg, resume, overwrite)
        self.device = check_device(self.cfg.device)
        if self.world is not None and self.device.type == "cuda":
            self.device = self.world.device  # one device per rank: cuda:LOCAL_RANK
        try:
            self.backend = ops.resolve(self.cfg.backend, self.device)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
        if self.world is not None:  # every rank agrees before rank 0 touches the folder
            check_same_config(self.world, {
                **self.cfg.to_dict(), "resume": resume, "overwrite": overwrite,
                "resolved_backend": self.backend, "torch": torch.__version__})
            plan = self._open_run(resume, overwrite)
        return plan

    def _build_task(self, task, ckpt_state: dict[str, Any] | None) -> int | None:
        """The task (``make_task(cfg)`` unless given) and its training sequences; the history
        lengths checked against its sequence length. Returns the separate encoder's length
        (a resumed run keeps the one its checkpoint recorded: runs from before the default
        followed history_len read seq_len // 2)."""
        with activate(self.world):
            self.task = task if task is not None else make_task(self.cfg)
            self.train_x = self.task.train_sequences().to(self.device)
        if self.train_x.dim() != 2 or self.train_x.shape[0] == 0:
            raise ConfigError(f"task {self.task.name} gave no training sequences")
        if ckpt_state is not None:  # every rank, before anything is written: same token ids
            self.task.check_saved(self.out_dir)
        recorded = Generator.complete_arch((ckpt_state or {}).get("model", {})).get("g_history")
        encoder_len = self.cfg.check_lengths(self.task.seq_len, recorded)
        self.cond_x = self._conditional_rows(self.cfg)
        return encoder_len

    def _build_models(self, encoder_len: int | None, resume: bool) -> dict[str, Any] | None:
        """Generator (with pretrained embeddings where configured), discriminator and the
        rollout policy; returns what the embeddings file gave (None without one)."""
        cfg = self.cfg
        V, T, start = self.task.vocab_size, self.task.seq_len, self.task.start_token
        self.generator = Generator(V, cfg.g_emb_dim, cfg.g_hidden_dim, T, start,
                                   cell=cfg.g_cell, encoder=cfg.g_encoder,
                                   encoder_len=encoder_len).to(self.device)
        self.discriminator = Discriminator(
            V, T, cfg.d_emb_dim, cfg.d_filter_sizes, cfg.d_num_filters, cfg.d_dropout_keep,
            cfg.d_l2_reg).to(self.device)
        embeddings_info = None
        if cfg.g_embeddings and not resume:  # a resumed run restores its trained embedding
            loaded = load_embeddings(cfg.g_embeddings, vocabulary_strings(self.task),
                                     cfg.g_emb_dim, seed=cfg.seed)
            with torch.no_grad():
                self.generator.embedding.weight.copy_(loaded.weight.to(self.device))
            embeddings_info = loaded.info()
        if cfg.g_embeddings_freeze:
            self.generator.embedding.weight.requires_grad_(False)
        if self.world is not None:  # equal by the seed already; as DDP, make sure
            self.world.broadcast_module(self.generator)
            self.world.broadcast_module(self.discriminator)
        self.rollout_policy = copy.deepcopy(self.generator).requires_grad_(False)
        return embeddings_info

    def _build_optimizers(self) -> None:
        """Separate Adam states for MLE and policy gradient, as the reference code's two ops;
        the discriminator's Adam (optim.py) inside its training step (dstep.py)."""
        cfg = self.cfg
        self.g_mle_opt = torch.optim.Adam(self.generator.parameters(), lr=cfg.g_lr)
        self.g_adv_opt = torch.optim.Adam(self.generator.parameters(), lr=cfg.g_lr)
        self.d_opt = fast_adam(self.discriminator.parameters(), lr=cfg.d_lr)  # see optim.py
        if self.device.type == "cuda":
            configure_tf32(cfg.tf32)
        hook, size = None, 1
        if self.world is not None:  # the cross-rank gradient sum of every D step
            def hook() -> None:
                self.world.all_reduce_grads(self.discriminator.parameters())
            size = self.world.size
        # Every backend but reference trains on the fused CPU kernels where they run: the D
        # step's (dstep.py) and the MLE loss's output layer + log-softmax + NLL
        # (ops/linear_nll.py); reference keeps torch's module and ops.
        self.fused_kernels = cfg.backend != "reference"
        self.d_step = DiscriminatorStep(self.discriminator, self.d_opt, cfg.batch_size,
                                        graph=cfg.d_graph, grad_hook=hook,
                                        world_size=size,
                                        pool="auto" if self.fused_kernels else "module")

    def save_checkpoint(self) -> Path:
        """Write the whole training state (atomically; rank 0 only) and return its folder."""
        return self.run.save_checkpoint()

    # -- helpers --------------------------------------------------------------------------
    def _open_run(self, resume: bool, overwrite: bool):
        """``runstate.open_run`` on rank 0 (the only one that touches the run folder); the
        other ranks get its answer - or its refusal - and the checkpoint by broadcast."""
        plan = None
        if self.world.is_main:
            try:
                plan = open_run(self.out_dir, self.cfg, resume, overwrite)
            except Exception as exc:
                self.world.broadcast_object((None, str(exc)))
                raise
        plan, refusal = self.world.broadcast_object((plan, None))
        if refusal is not None:
            raise DistributedError(f"rank 0 refused to start: {refusal}", echo=False)
        return plan

    def _conditional_rows(self, cfg: TrainConfig) -> torch.Tensor | None:
        """history_len > 0: the real sequences with at least one item after the history (a
        padded window has none to judge)."""
        P = cfg.history_len
        if not P:
            return None
        pad = getattr(self.task, "pad_token", None)
        rows = self.train_x if pad is None else self.train_x[self.train_x[:, P] != pad]
        if rows.shape[0] == 0:
            raise ConfigError(f"history_len={P}: no training sequence has an item after "
                              f"{P} history positions")
        log.info("history-conditioned: %d of %d training sequences continue a %d-item "
                 "history", rows.shape[0], self.train_x.shape[0], P)
        return rows

    def _real_rows(self, num: int, seed: int, with_replacement: bool = False) -> torch.Tensor:
        """``num`` real sequences drawn with ``seed`` (without replacement while there are
        enough); with ``history_len`` only those with a continuation after the history."""
        pool = self.cond_x if self.cfg.history_len else self.train_x
        gen = torch.Generator().manual_seed(seed)
        if with_replacement or pool.shape[0] < num:
            pick = torch.randint(0, pool.shape[0], (num,), generator=gen)
        else:
            pick = torch.randperm(pool.shape[0], generator=gen)[:num]
        return pool[pick.to(self.device)]

    def _shard(self, idx: torch.Tensor) -> tuple[torch.Tensor, int]:
        """This rank's part of a batch of indices, and where it starts in the batch."""
        if self.world is None:
            return idx, 0
        lo, hi = self.world.shard(idx.numel())
        return idx[lo:hi], lo

    def next_seed(self) -> int:
        """The seed of the next random draw (counter checkpointed with the run)."""
        seed = draw_seed(self.cfg.seed, _STREAM_TRAINER, self.state["seed_calls"])
        self.state["seed_calls"] += 1
        return seed

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

    def _g_step(self, opt: torch.optim.Optimizer, loss: torch.Tensor | None) -> None:
        """Backward (None: this rank has no rows of the batch), the cross-rank gradient sum,
        the global-norm clip, the step."""
        opt.zero_grad(set_to_none=True)
        if loss is not None:
            loss.backward()
        if self.world is not None:
            self.world.all_reduce_grads(self.generator.parameters())
        torch.nn.utils.clip_grad_norm_(self.generator.parameters(), self.cfg.g_grad_clip)
        opt.step()

    # -- phases ---------------------------------------------------------------------------
    def mle_epoch(self) -> float:
        """One epoch of MLE over the training sequences; returns the mean batch loss."""
        self.generator.train()
        total, count = 0.0, 0
        batches = self._batches(self.train_x.shape[0], self.next_seed(), self.cfg.mle_shuffle)
        for idx in batches:
            if self.world is None:
                loss = self.generator.mle_loss(self.train_x[idx], fused=self.fused_kernels)
            else:  # this rank's share of the batch's mean token NLL
                mine, _ = self._shard(idx)
                loss = None
                if mine.numel():
                    x = self.train_x[mine]
                    loss = self.generator.mle_loss(x, fused=self.fused_kernels,
                                                   total_tokens=idx.numel() * x.shape[1])
            self._g_step(self.g_mle_opt, loss)
            total, count = total + (float(loss.detach()) if loss is not None else 0.0), count + 1
        if self.world is not None:
            total = self.world.sum([total])[0]
        return total / max(count, 1)

    def discriminator_round(self) -> tuple[float, float]:
        """Fresh negatives, then ``d_epochs`` epochs over positives + negatives, shuffled once
        for all of them (``d_shuffle=once``, the reference loader) or every epoch.
        Returns (mean loss, accuracy) of the last epoch."""
        cfg = self.cfg
        if cfg.history_len:  # (history, continuation): negatives continue real histories
            neg_seed, pick_seed = self.next_seed(), self.next_seed()
            pos = self._real_rows(cfg.d_num_negatives, pick_seed)
            neg = sample_in_chunks(self.generator, pos.shape[0], neg_seed, self.backend,
                                   prefix=pos[:, : cfg.history_len])
        else:
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
        n = x.shape[0]
        once = list(self._batches(n, self.next_seed())) if cfg.d_shuffle == "once" else None
        for _ in range(cfg.d_epochs):
            # summed on the device: one host sync per epoch (CUDA graphs replay back to back)
            loss_sum = x.new_zeros((), dtype=torch.float64)
            correct = x.new_zeros((), dtype=torch.int64)
            seen = count = 0
            for idx in once if once is not None else self._batches(n, self.next_seed()):
                mine, lo = self._shard(idx)  # data-parallel: this rank's rows of the batch
                rows = None if self.world is None else (lo, idx.numel())
                loss, hits = self.d_step(x[mine], y[mine], rows)
                loss_sum, correct = loss_sum + loss, correct + hits
                seen, count = seen + mine.numel(), count + 1
            self.d_step.check()  # the finite-value flags of steps run on the device
        loss_sum, correct = float(loss_sum), float(correct)
        if self.world is not None:
            loss_sum, correct, seen = self.world.sum([loss_sum, correct, seen])
        return loss_sum / max(count, 1), correct / max(seen, 1)

    def policy_gradient_step(self) -> float:
        """Sample a batch, score it with rollout rewards, one PG step; returns mean reward."""
        cfg = self.cfg
        policy = self.rollout_policy if cfg.rollout_policy == "delayed" else self.generator
        prefix = None
        if cfg.history_len:  # continue real users' histories; only the continuation is rewarded
            prefix = self._real_rows(cfg.batch_size, self.next_seed())[:, : cfg.history_len]
        if self.world is not None:
            return self._policy_gradient_step_shard(policy, prefix)
        x = ops.sample(self.generator, cfg.batch_size, seed=self.next_seed(),
                       backend=self.backend, prefix=prefix)
        rewards = ops.rollout_rewards(policy, self.discriminator, x,
                                      num_rollouts=cfg.num_rollouts, seed=self.next_seed(),
                                      backend=self.backend, history_len=cfg.history_len)
        real = None
        if cfg.adv_mle_weight > 0:  # a real minibatch for the likelihood term
            real = self._real_rows(cfg.batch_size, self.next_seed(), with_replacement=True)
        self.generator.train()
        loss = self.generator.adversarial_loss(
            x, rewards, real, pg_weight=cfg.adv_pg_weight, mle_weight=cfg.adv_mle_weight,
            baseline=cfg.reward_baseline, norm=cfg.pg_norm, fused=self.fused_kernels)
        self._g_step(self.g_adv_opt, loss)
        return float(rewards.mean())

    def _policy_gradient_step_shard(self, policy: Generator,
                                    prefix: torch.Tensor | None) -> float:
        """``policy_gradient_step`` on this rank's rows lo..hi of the batch: they are sampled
        here (Philox rows lo..hi: the single-process tokens), gathered for the rollout
        (distributed.shard_rollout_rewards), rewarded and differentiated here."""
        cfg, world, B = self.cfg, self.world, self.cfg.batch_size
        lo, hi = world.shard(B)
        part = ops.sample(self.generator, hi - lo, seed=self.next_seed(), backend=self.backend,
                          row_offset=lo, prefix=None if prefix is None else prefix[lo:hi])
        x = world.gather_rows(part, B)
        rewards = shard_rollout_rewards(world, policy, self.discriminator, x, cfg.num_rollouts,
                                        self.next_seed(), self.backend,
                                        history_len=cfg.history_len)
        real = None
        if cfg.adv_mle_weight > 0:  # the same real batch on every rank; each takes its rows
            real = self._real_rows(B, self.next_seed(), with_replacement=True)
        if cfg.reward_baseline == "batch_mean":  # the whole batch's mean at each position
            mean = torch.tensor(world.sum(rewards.sum(0).tolist()), device=rewards.device) / B
            rewards = rewards - mean
        self.generator.train()
        loss = None
        if hi > lo:  # the summed loss is summed across ranks as it is; batch_mean divides by B
            loss = self.generator.pg_loss(part, rewards, norm="sum")
            loss = loss / B if cfg.pg_norm == "batch_mean" else loss
            loss = cfg.adv_pg_weight * loss
            if real is not None:  # this rank's share of the real batch's mean token NLL
                r = real[lo:hi]
                loss = loss + cfg.adv_mle_weight * self.generator.mle_loss(
                    r, fused=self.fused_kernels, total_tokens=B * r.shape[1])
        self._g_step(self.g_adv_opt, loss)
        return world.sum([float(rewards.sum())])[0] / (B * x.shape[1])

    # -- evaluation (files and checkpoints: run/state.py's RunState) -----------------------
    def evaluate(self, phase: str, epoch: int, final: bool = False) -> dict[str, Any]:
        self.generator.eval()
        with activate(self.world):  # the tasks shard their samples and sum their metrics
            metrics = self.task.evaluate(self.generator, phase=phase, epoch=epoch, final=final)
        record = {"phase": phase, "epoch": epoch, "time_s": round(self.run.elapsed(), 3),
                  **jsonable(metrics)}
        if self.world is not None:  # rank 0's record (its clock) on every rank
            record = self.world.broadcast_object(record)
        self.run.append_record(record)
        log.info("%s %s %d: %s", phase, "epoch" if phase == "mle" else "batch", epoch,
                 ", ".join(f"{k}={format_value(v)}" for k, v in metrics.items()))
        self.run.consider_best(record, candidate=phase == "adv" or final)
        return record

    # -- the schedule ---------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Run (or continue) the whole schedule; returns the summary (also in summary.json).
        Holds the run folder's lock (runlock.py) throughout: a second trainer is refused.
        Data-parallel: rank 0 holds the lock and writes; a rank that loses its peers raises
        DistributedError (one line, naming the checkpoint to resume from)."""
        try:
            with RunLock(self.out_dir) if self.run.writes else contextlib.nullcontext():
                if self.run.writes and not (self.run.resumed or self.run.overwrite) \
                        and latest_checkpoint(self.out_dir):
                    raise ConfigError(f"{self.out_dir} now holds a run (written by another "
                                      "trainer after this one was set up); not overwritten")
                with activate(self.world):
                    summary = self._fit_locked()
                if self.world is not None:
                    self.world.barrier()  # the run folder is complete when any rank returns
                return summary
        except DistributedError as exc:
            raise DistributedError(f"{exc}; {self._kept()}", echo=exc.echo) from None

    def _kept(self) -> str:
        try:
            path = latest_checkpoint(self.out_dir)
        except Exception:  # a folder that rank 0 was writing when it died
            path = None
        if path is None:
            return "no checkpoint had been written yet"
        return (f"the last checkpoint {path} is kept: continue with seqgan-fast train --out "
                f"{self.out_dir} --resume (any number of processes)")

    def _fit_locked(self) -> dict[str, Any]:
        self.run.prepare_out_dir()
        self.run.sync_best_dir()
        self.run.start_clock()
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
            self.run.save_checkpoint()
            self.run.plot()
        return self.run.write_summary()

    def _fit_mle(self) -> None:
        cfg, st = self.cfg, self.state
        official = cfg.eval_schedule == "official"
        if st["mle_epoch"] == 0 and not self.run.records and not official:
            self.evaluate("mle", 0, final=cfg.mle_epochs == 0)
        with self._bar(cfg.mle_epochs, st["mle_epoch"], "MLE") as bar:
            while st["mle_epoch"] < cfg.mle_epochs:
                loss = self.mle_epoch()
                st["mle_epoch"] += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
                e = st["mle_epoch"]
                label = e - 1 if official else e  # the official log's "epoch k": k+1 epochs
                self._scheduled_eval("mle", label, last=e == cfg.mle_epochs)

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
                    self.run.save_checkpoint()
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
                        self.run.maybe_checkpoint()  # a whole batch: resuming never splits one
                else:
                    self._scheduled_eval("adv", b, last=b == cfg.adv_batches)

    def _scheduled_eval(self, phase: str, label: int, last: bool) -> None:
        """The phase's final evaluation at its last unit; otherwise every ``eval_every`` units
        an evaluation and, as configured, a checkpoint."""
        if last:
            self.evaluate(phase, label, final=True)
        elif label % self.cfg.eval_every == 0:
            self.evaluate(phase, label)
            self.run.maybe_checkpoint()

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

def _isa_note(backend: str) -> str:
    """', CPU path avx2' for the cpp backend: which ISA copy of the core the run uses."""
    return f", CPU path {ops.cpu_isa()}" if backend == "cpp" else ""
