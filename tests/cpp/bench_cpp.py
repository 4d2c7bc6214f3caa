"""Rollout throughput of the cpp backend against the reference backend, a classic loop and the
bare output-projection GEMM, interleaved in one process (medians). Not a test.

Run from the repository root: python tests/cpp/bench_cpp.py [--config paper|large] [--runs 5]
"""
from __future__ import annotations

import argparse
import logging
import statistics
import time

import torch

from seqgan_fast import Generator, ops
from seqgan_fast.ops.weights import lstm_step, project

log = logging.getLogger("bench_cpp")
CONFIGS = {"paper": (64, 16, 20, 5000, 32), "large": (64, 16, 40, 20000, 128)}
GEMM_CHUNK = 4096  # rows per torch.mm: the floor without paging in a tokens x V output


@torch.no_grad()
def classic_loop(w, x: torch.Tensor, num_rollouts: int) -> torch.Tensor:
    """The classic rollout: for each n and prefix t, re-run the prefix from a zero state,
    then sample with softmax + torch.multinomial (O(T^2) LSTM steps)."""
    B, T = x.shape
    out = x.expand(T - 1, num_rollouts, B, T).clone()
    for n in range(num_rollouts):
        for t in range(1, T):
            h = torch.zeros(B, w.hidden_dim)
            c = torch.zeros_like(h)
            tok = torch.full((B,), w.start_token, dtype=torch.int64)
            for s in range(T):
                h, c = lstm_step(w, w.emb[tok], h, c)
                if s < t:
                    tok = x[:, s]
                else:
                    tok = torch.multinomial(torch.softmax(project(w, h), 1), 1).squeeze(1)
                    out[t - 1, n, :, s] = tok
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", choices=sorted(CONFIGS), default="paper")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip", default="", help="comma list of contenders to skip")
    ap.add_argument("--threads", type=int, default=0, help="torch/OpenMP threads (0: default)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: process CPU time (robust on a shared machine; use --threads 1)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    B, N, T, V, H = CONFIGS[args.config]
    torch.manual_seed(0)
    g = Generator(V, H, H, T)
    w = g.kernel_weights()
    x = g.sample(B, seed=0, backend="reference")
    tokens = B * N * T * (T - 1) // 2
    hid = torch.randn(GEMM_CHUNK, H)
    w_t = w.w_out.t().contiguous()
    logits = torch.empty(GEMM_CHUNK, V)

    def gemm() -> None:
        for i in range(0, tokens, GEMM_CHUNK):
            n = min(GEMM_CHUNK, tokens - i)
            torch.mm(hid[:n], w_t, out=logits[:n])

    contenders = {
        "cpp": lambda: ops.rollout(g, x, N, seed=1, backend="cpp"),
        "reference": lambda: ops.rollout(g, x, N, seed=1, backend="reference"),
        "classic_loop": lambda: classic_loop(w, x, N),
        "gemm": gemm,
    }
    for name in filter(None, args.skip.split(",")):
        contenders.pop(name)
    agree = (contenders["cpp"]() == ops.rollout(g, x, N, seed=1, backend="reference"))
    log.info("%s: cpp vs reference tokens agree on %.6f of positions", args.config,
             agree.double().mean().item())
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.runs):
        for name, fn in contenders.items():
            t0 = clock()
            fn()
            times[name].append(clock() - t0)
            log.info("  run %d %-13s %.4f s", len(times[name]), name, times[name][-1])
    med = {k: statistics.median(v) for k, v in times.items()}
    log.info("config %s B=%d N=%d T=%d V=%d E=H=%d, tokens=%d, threads=%d, runs=%d, clock=%s",
             args.config, B, N, T, V, H, tokens, torch.get_num_threads(), args.runs, args.clock)
    for name, m in med.items():
        log.info("%-13s median %8.4f s  min %8.4f s  %10.0f tok/s  (%.2fx cpp time)", name, m,
                 min(times[name]), tokens / m, m / med["cpp"])


if __name__ == "__main__":
    main()
