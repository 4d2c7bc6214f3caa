"""``schedule``: the phases of the paper's training schedule, each measured once per call,
and the projected wall time of the whole ``paper`` preset from those phase costs.

One call runs, for its backend: one adversarial generator update (``adv_step``: sample B,
rewards from N rollouts scored by D, policy-gradient step), sampling the 10,000 negatives of
one discriminator round, one discriminator epoch over 20,000 sequences (``reference``: the
default for-loop Adam; ``cpp``: the trainer's fused Adam), one MLE epoch over 10,000
sequences and one NLL_oracle evaluation (10,000 samples scored by an oracle; ``cpp``: both
with the fused output layer + NLL of ops/linear_nll.py, ``reference`` torch's ops). The row's
``phases_s`` holds those seconds; ``projected`` adds them up as the paper's schedule does
(LantaoYu/SeqGAN: 120 MLE epochs, 50 discriminator pre-training rounds x 3 epochs, 200
adversarial batches each 1 generator update + 5 rounds x 3 epochs, NLL_oracle every 5 MLE
epochs and every 5 adversarial batches). ``adv_batch_s`` is one adversarial batch (the
update + 5 rounds). The timed figure of the row is one call (all phases once).
"""
from __future__ import annotations

import copy
import time

import torch

from seqgan_fast import Oracle, ops
from seqgan_fast.train.optim import fast_adam

from .bench_adv_step import adv_step_fn
from .bench_d_epoch import d_epoch_fn
from .common import Case, Contender, build_models, expect
from .configs import BenchConfig

# the paper's schedule (sequence_gan.py)
MLE_EPOCHS, D_PRE_ROUNDS, ADV_BATCHES, D_ROUNDS, D_EPOCHS, EVAL_EVERY = 120, 50, 200, 5, 3, 5
GENERATED_NUM = 10_000
BACKENDS = ("reference", "cpp")


def projection(p: dict[str, float]) -> dict[str, float]:
    """Seconds of each part of the paper schedule from phase costs ``p``."""
    d_round = p["sample_negatives"] + D_EPOCHS * p["d_epoch"]
    out = {
        "mle": MLE_EPOCHS * p["mle_epoch"] + (MLE_EPOCHS // EVAL_EVERY) * p["eval"],
        "d_pretrain": D_PRE_ROUNDS * d_round,
        "adversarial": ADV_BATCHES * (p["adv_step"] + D_ROUNDS * d_round)
        + (ADV_BATCHES // EVAL_EVERY) * p["eval"],
    }
    out["total"] = sum(out.values())
    out["adv_batch"] = p["adv_step"] + D_ROUNDS * d_round
    return out


def schedule_fn(backend: str, cfg: BenchConfig, device: str):
    m = build_models(cfg, device)
    kernels = "cpp" if backend == "cpp" else "reference"
    adv_step = adv_step_fn(kernels, cfg, device)
    d_epoch, _ = d_epoch_fn(cfg, device, "fast" if backend == "cpp" else "reference")
    gen = copy.deepcopy(m.generator)
    opt = fast_adam(gen.parameters(), 0.01) if backend == "cpp" else \
        torch.optim.Adam(gen.parameters(), lr=0.01)
    oracle = Oracle(cfg.vocab, cfg.emb, cfg.hidden, cfg.seq_len, seed=cfg.seed + 5)
    real = oracle.sample(GENERATED_NUM, seed=1, backend=kernels)
    phases: dict[str, float] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        phases[name] = time.perf_counter() - t0
        return out

    def mle_epoch():
        for i in range(0, GENERATED_NUM, cfg.d_batch):
            loss = gen.mle_loss(real[i : i + cfg.d_batch], fused=backend == "cpp")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(gen.parameters(), 5.0)
            opt.step()

    def evaluate():
        with torch.no_grad():
            return oracle.nll(ops.sample(gen, GENERATED_NUM, seed=2, backend=kernels),
                              fused=backend == "cpp")

    def run() -> dict[str, float]:
        timed("adv_step", adv_step)
        timed("sample_negatives", lambda: ops.sample(gen, GENERATED_NUM, seed=3,
                                                     backend=kernels))
        timed("d_epoch", d_epoch)
        timed("mle_epoch", mle_epoch)
        timed("eval", evaluate)
        return dict(phases)

    return run, phases


def build_case(op: str, cfg: BenchConfig, device: str, backends: list[str] | None) -> Case:
    if op != "schedule":
        raise ValueError(f"bench_schedule builds schedule, not {op!r}")
    contenders, last = [], {}
    for backend in BACKENDS:
        if backend == "cpp" and not ops.is_available("cpp", device):
            continue
        run, phases = schedule_fn(backend, cfg, device)
        last[backend] = phases

        def check(out: dict[str, float], case: Case, _b=backend) -> None:
            expect(set(out) == {"adv_step", "sample_negatives", "d_epoch", "mle_epoch", "eval"},
                   f"schedule {_b}: phases {sorted(out)}")

        contenders.append(Contender(backend, run, check))

    def annotate(row: dict) -> None:
        phases = last.get(row.get("backend"))
        if phases:
            row["phases_s"] = {k: round(v, 4) for k, v in phases.items()}
            row["projected_s"] = {k: round(v, 1) for k, v in projection(phases).items()}

    return Case(op, cfg, device, cfg.d_sequences * cfg.seq_len, contenders, None, "",
                annotate=annotate,
                notes="phases once each per call; projected_s: the paper's schedule "
                      "(120 MLE epochs, 50 x 3 D pre-training epochs, 200 adversarial "
                      "batches of 1 G update + 5 x 3 D epochs) from those phase costs")
