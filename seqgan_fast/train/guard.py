"""Finite-value guard: training stops at the first non-finite gradient or weight.

A NaN or inf that reaches the weights makes every later number garbage (``ops.sample`` then
returns token V-1 everywhere) while the run still "succeeds". The guard hooks each optimizer:
before a step it checks the gradients (a non-finite loss always shows up there), after the
step the parameters (an overflow of a finite but huge learning rate). The first failure raises
:class:`NonFiniteError` naming the phase, the step and the setting most likely responsible,
so the weights that are checkpointed are never non-finite (``checkpoint.save_checkpoint``
refuses them as a second line of defence).

Cost: one pass over the tensors per check, with no host sync beyond its result: on CPU the
extension's check (csrc/common/finite.h, both threads) runs over the 2.2M discriminator
parameters of preset quick in 0.36 ms against 0.71 ms for the per-tensor vector norms it
replaced, the paper's 7.0M in 0.83 against 1.64 ms (`python benchmarks/micro.py guard`,
2-core Xeon AVX-512; about 34 GB/s, the memory's pace). An element whose square overflows
float32 (|x| >= 2^64) is refused too: such a gradient overflows Adam's second moment
(``exp_avg_sq``) into inf, silently freezing weights.

On CUDA a per-step check costs host syncs (two per step, and ~120 launches for the
discriminator's tensors), which would erase a CUDA graph's gain. There the discriminator step
computes the same test on the device (``ops.finite.non_finite_flags``) inside its graph, ORs it into
sticky per-parameter flags and reads them once per epoch (``DiscriminatorStep.check``, called
by the trainer before anything can be checkpointed): the guarantee holds (no non-finite or
overflowing value is ever checkpointed, training stops naming the parameter), but the stop
comes at the end of the epoch rather than before the offending update.
"""
from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import torch

from ..config import PRESETS, TrainConfig
from ..errors import CheckpointError, NonFiniteError
from ..ops.finite import first_non_finite
from ..run.checkpoint import latest_checkpoint


@dataclass(frozen=True)
class Watch:
    """What ``watch_optimizer`` attached to an optimizer, for a caller that runs the checks
    itself on the device (``ops.finite.non_finite_flags``) and reads them later: the parameters in
    optimizer order with their names, the ids of the two checking hooks (to leave out of a
    host-side step) and ``fail(what, name, note)``, which raises the guard's error."""

    params: tuple[torch.Tensor, ...]
    names: tuple[str, ...]
    hook_ids: frozenset[int]
    fail: Callable[[str, str, str], NoReturn]


_WATCHES: weakref.WeakKeyDictionary[torch.optim.Optimizer, Watch] = weakref.WeakKeyDictionary()


def watch_of(opt: torch.optim.Optimizer) -> Watch | None:
    """The guard watching ``opt`` (``watch_optimizer``), or None."""
    return _WATCHES.get(opt)


def most_likely_setting(cfg: Any, keys: Sequence[str]) -> str:
    """Of ``keys``, the setting farthest (in orders of magnitude) from its preset value,
    formatted ``key=value``; a non-finite value always wins."""
    base = TrainConfig.preset(cfg.preset_name) if cfg.preset_name in PRESETS else TrainConfig()

    def distance(key: str) -> float:
        v, ref = float(getattr(cfg, key)), float(getattr(base, key))
        if not math.isfinite(v):
            return math.inf
        if v <= 0 or ref <= 0:
            return 0.0 if v == ref else 1.0
        return abs(math.log10(v / ref))

    key = max(keys, key=distance)
    return f"{key}={getattr(cfg, key)!r}"


# Which settings scale each optimizer's steps (most likely first when equally far off).
SUSPECTS = {"generator": ("g_lr", "g_grad_clip"),
            "discriminator": ("d_lr", "d_l2_reg", "d_dropout_keep")}


def watch_optimizer(opt: torch.optim.Optimizer, model: str, names: dict[int, str],
                    where: Callable[[], str], suspect: Callable[[], str],
                    kept: Callable[[], str] = lambda: "") -> None:
    """Raise NonFiniteError before a step on non-finite gradients and after one on non-finite
    parameters. ``names``: id(parameter) -> its name; ``where``: the current phase and step;
    ``suspect``: the setting to blame, as ``key=value``; ``kept``: what was kept, if anything
    (appended to the message)."""
    params = [p for group in opt.param_groups for p in group["params"]]

    def fail(what: str, name: str, note: str = "") -> NoReturn:
        raise NonFiniteError(
            f"training stopped: non-finite {what} of {model} parameter {name} in "
            f"{where()}{note}; most likely cause: {suspect()}{kept()}")

    def before(_opt: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
        bad = first_non_finite((names.get(id(p), "?"), p.grad) for p in params)
        if bad is not None:
            fail("(or overflowing) gradient", bad)

    def after(_opt: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
        bad = first_non_finite((names.get(id(p), "?"), p.detach()) for p in params)
        if bad is not None:
            fail("weight", bad)

    handles = (opt.register_step_pre_hook(before), opt.register_step_post_hook(after))
    _WATCHES[opt] = Watch(tuple(params), tuple(names.get(id(p), "?") for p in params),
                          frozenset(h.id for h in handles), fail)


def guard_trainer(trainer: Any) -> None:
    """Watch the three optimizers of a ``SeqGANTrainer`` (phase and step from its state)."""
    cfg, st = trainer.cfg, trainer.state
    steps = {"n": 0}

    def where() -> str:
        phase = st["phase"]
        if phase == "mle":
            pos = f"MLE epoch {st['mle_epoch'] + 1}"
        elif phase == "d_pretrain":
            pos = f"discriminator pre-training round {st['d_round'] + 1}"
        else:
            pos = f"adversarial batch {st['adv_batch'] + 1}"
        return f"phase {phase}, {pos} (optimizer step {steps['n']} of this process)"

    def kept() -> str:
        try:
            path = latest_checkpoint(trainer.out_dir)
        except CheckpointError:
            path = None
        return f"; the last good checkpoint {path} is kept" if path else \
            "; no checkpoint had been written yet"

    def count(*_: Any) -> None:
        steps["n"] += 1

    for opt, model, module in ((trainer.g_mle_opt, "generator", trainer.generator),
                               (trainer.g_adv_opt, "generator", trainer.generator),
                               (trainer.d_opt, "discriminator", trainer.discriminator)):
        opt.register_step_pre_hook(count)
        names = {id(p): n for n, p in module.named_parameters()}
        watch_optimizer(opt, model, names, where,
                        lambda keys=SUSPECTS[model]: most_likely_setting(cfg, keys), kept)
