"""``d_epoch``: one discriminator training epoch over ``d_sequences`` (20,000) sequences of
length T in minibatches of ``d_batch`` (64): Adam (lr 1e-4), dropout, the paper's L2 term.

The epoch is the same PyTorch code whatever sampling backend produced the negatives (that is
the ``sample`` op), so it is measured once, as backend ``any``. Positives and negatives are
fixed random token sequences: the cost does not depend on their content. tokens = 20,000 * T;
no GEMM floor (no output projection is involved).
"""
from __future__ import annotations

import copy

import torch

from .common import Case, Contender, build_models, expect
from .configs import BenchConfig

D_LR = 1e-4
BACKEND = "any"


def d_epoch_fn(cfg: BenchConfig, device: str):
    """(epoch, discriminator): epoch(max_batches=None) trains one epoch (or its first
    max_batches minibatches) of a private copy of the discriminator; returns the mean loss."""
    d = copy.deepcopy(build_models(cfg, device).discriminator)
    opt = torch.optim.Adam(d.parameters(), lr=D_LR)
    gen = torch.Generator().manual_seed(cfg.seed + 11)
    n = cfg.d_sequences
    data = torch.randint(0, cfg.vocab, (n, cfg.seq_len), generator=gen).to(device)
    labels = (torch.arange(n) % 2).to(device)  # half "real", half "generated"
    order = torch.randperm(n, generator=gen).to(device)

    def epoch(max_batches: int | None = None) -> float:
        d.train()
        total, batches = 0.0, 0
        for i in range(0, n, cfg.d_batch):
            if max_batches is not None and batches >= max_batches:
                break
            idx = order[i : i + cfg.d_batch]
            loss = d.loss(data[idx], labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().item()
            batches += 1
        return total / max(batches, 1)

    return epoch, d


def build_case(op: str, cfg: BenchConfig, device: str, backends: list[str] | None) -> Case:
    epoch, d = d_epoch_fn(cfg, device)
    before = [p.detach().clone() for p in d.parameters()]

    def check(loss: float, case: Case) -> None:
        expect(loss == loss and abs(loss) < float("inf"), f"d_epoch: loss {loss}")
        expect(any(not torch.equal(a, b) for a, b in zip(before, d.parameters(), strict=True)),
               "d_epoch: the discriminator's parameters did not change")

    # the check and the warm-up run a few minibatches; every timed run is a full epoch
    few = lambda: epoch(max_batches=3)  # noqa: E731
    c = Contender(BACKEND, epoch, check, warm_fn=few, check_fn=few)
    return Case(op, cfg, device, cfg.d_sequences * cfg.seq_len, [c], None, "",
                backend_independent=True,
                notes=f"{cfg.d_sequences} sequences of T={cfg.seq_len}, minibatch "
                      f"{cfg.d_batch}; backend-independent (measured once)")
