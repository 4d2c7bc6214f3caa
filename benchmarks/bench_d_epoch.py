"""``d_epoch``: one discriminator training epoch over ``d_sequences`` (20,000) sequences of
length T in minibatches of ``d_batch`` (64): Adam (lr 1e-4), dropout, the paper's L2 term.

Contenders: ``reference`` (today's module with torch's default for-loop Adam) and ``fast``
(the trainer's step, seqgan_fast/train/dstep.py: fused Adam, losses summed on the device; on CPU
the sparse max-pool backward of seqgan_fast/ops/dpool.py, on CUDA the module captured in a
CUDA graph), and on CUDA ``fast_tf32`` (the same with TF32
matmuls and convolutions, config key ``tf32``). The epoch does not
depend on the sampling backend that produced the negatives (that is the ``sample`` op).
Positives and negatives are fixed random token sequences: the cost does not depend on their
content. tokens = 20,000 * T. Floor (the ``/GEMM`` column): the epoch's FLOPs (3 x forward:
convolutions, highway, output) as square 1024 x 1024 sgemms in the same run.
"""
from __future__ import annotations

import copy

import torch

from seqgan_fast.train.dstep import DiscriminatorStep, configure_tf32
from seqgan_fast.train.optim import fast_adam

from .common import Case, Contender, build_models, expect
from .configs import BenchConfig

D_LR = 1e-4
BACKENDS = ("reference", "fast")
CUDA_BACKENDS = ("reference", "fast", "fast_tf32")


def forward_flops(d, seq_len: int) -> float:
    """Multiply-adds x 2 of one sequence's forward pass through discriminator ``d``."""
    E = d.embedding.embedding_dim
    conv = sum((seq_len - c.kernel_size[0] + 1) * c.kernel_size[0] * E * c.out_channels
               for c in d.convs)
    F = d.highway.hidden.in_features
    return 2.0 * (conv + 2 * F * F + 2 * F)


def fused_step_flops(d, seq_len: int) -> float:
    """FLOPs of one sequence's step on the fused path: the forward, the highway and output
    backward (2 x their forward) and the sparse convolution backward (one k*E window per
    row and filter for the weights and one for the input: seqgan_fast/ops/dpool.py)."""
    E = d.embedding.embedding_dim
    F = d.highway.hidden.in_features
    windows = sum(c.kernel_size[0] * c.out_channels for c in d.convs)
    return forward_flops(d, seq_len) + 2 * 2.0 * (2 * F * F + 2 * F) + 2 * 2.0 * E * windows


def d_epoch_fn(cfg: BenchConfig, device: str, backend: str = "reference"):
    """(epoch, discriminator): epoch(max_batches=None) trains one epoch (or its first
    max_batches minibatches) of a private copy of the discriminator; returns the mean loss."""
    d = copy.deepcopy(build_models(cfg, device).discriminator)
    opt = torch.optim.Adam(d.parameters(), lr=D_LR) if backend == "reference" else \
        fast_adam(d.parameters(), lr=D_LR)
    step = None if backend == "reference" else DiscriminatorStep(d, opt, cfg.d_batch)
    tf32 = backend == "fast_tf32"
    gen = torch.Generator().manual_seed(cfg.seed + 11)
    n = cfg.d_sequences
    data = torch.randint(0, cfg.vocab, (n, cfg.seq_len), generator=gen).to(device)
    labels = (torch.arange(n) % 2).to(device)  # half "real", half "generated"
    order = torch.randperm(n, generator=gen).to(device)

    def epoch(max_batches: int | None = None) -> float:
        d.train()
        if device.startswith("cuda"):
            configure_tf32(tf32)
        total, batches = 0.0, 0
        if step is not None:
            total = torch.zeros((), dtype=torch.float64, device=device)
        for i in range(0, n, cfg.d_batch):
            if max_batches is not None and batches >= max_batches:
                break
            idx = order[i : i + cfg.d_batch]
            if step is not None:
                total = total + step(data[idx], labels[idx])[0]
            else:
                loss = d.loss(data[idx], labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach().item()
            batches += 1
        if device.startswith("cuda"):
            configure_tf32(False)
        return float(total) / max(batches, 1)

    return epoch, d


def _sgemm_floor(flops: float, device: str):
    n = 1024
    calls = max(1, round(flops / (2.0 * n**3)))
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device)
    out = torch.empty(n, n, device=device)

    def run() -> torch.Tensor:
        for _ in range(calls):
            torch.mm(a, a, out=out)
        return out

    return run, f"{calls} x torch.mm ({n} x {n}) @ ({n} x {n}): the epoch's FLOPs at sgemm rate"


def build_case(op: str, cfg: BenchConfig, device: str, backends: list[str] | None) -> Case:
    contenders = []
    for backend in CUDA_BACKENDS if device.startswith("cuda") else BACKENDS:
        epoch, d = d_epoch_fn(cfg, device, backend)
        before = [p.detach().clone() for p in d.parameters()]

        def check(loss: float, case: Case, _d=d, _before=before, _b=backend) -> None:
            expect(loss == loss and abs(loss) < float("inf"), f"d_epoch {_b}: loss {loss}")
            expect(any(not torch.equal(a, b)
                       for a, b in zip(_before, _d.parameters(), strict=True)),
                   f"d_epoch {_b}: the discriminator's parameters did not change")

        # the check and the warm-up run a few minibatches; every timed run is a full epoch
        few = lambda _e=epoch: _e(max_batches=3)  # noqa: E731
        contenders.append(Contender(backend, epoch, check, warm_fn=few, check_fn=few))
    d = build_models(cfg, device).discriminator
    flops = 3.0 * forward_flops(d, cfg.seq_len) * cfg.d_sequences
    floor, desc = _sgemm_floor(flops, device)
    return Case(op, cfg, device, cfg.d_sequences * cfg.seq_len, contenders, floor, desc,
                notes=f"{cfg.d_sequences} sequences of T={cfg.seq_len}, minibatch "
                      f"{cfg.d_batch}; {flops / 1e12:.2f} TFLOP (3 x forward; the floor); "
                      f"the fused path (sparse pooling backward) does "
                      f"{fused_step_flops(d, cfg.seq_len) * cfg.d_sequences / 1e12:.2f}")
