"""Single-threaded breakdowns quoted in docs and comments (not part of `seqgan-fast bench`).

  python benchmarks/micro.py score    # fused score: the whole-table pool's us/row (V=5000 and
                                      # V=50); at 1 and 2 threads the fold + pool of the paper's
                                      # completions, prefix-shared and whole, against the
                                      # whole table's torch.mm + pool; head, op, reference
  python benchmarks/micro.py d_step   # discriminator step: forward, backward, Adam: the module
                                      # with default / fused Adam, the forward as one GEMM
                                      # per filter width over unfolded windows (dstep.py: why
                                      # the trainer does not use it), and the fused sparse
                                      # pooling backward (ops/dpool.py: the trainer's step)
  python benchmarks/micro.py d_profile [N] [quick]  # the trainer's D step at 2 threads: self time
                                      # per step of its largest ops (docs/performance.md)
  python benchmarks/micro.py highway  # the paper's highway layer at batch 64, 2 threads: each
                                      # product of a step, MKL against the unpacked gemm_nn,
                                      # and the layer forward + backward, module against fused;
                                      # scoring's 4,096-row products, F.linear against gemm_nn
  python benchmarks/micro.py head     # scoring's fused head (op highway_logits) on the paper's
                                      # 19,456 completions' worth of pooled features (F = 1,720)
                                      # at 2 threads: seconds and GFLOP/s of its two products
  python benchmarks/micro.py d_conv   # the paper's conv + ReLU + max-pool forward at batch 64
                                      # and 1 (1: mostly the weight transposition), 2 threads:
                                      # the fused conv_pool_forward against oneDNN + torch max
  python benchmarks/micro.py g_profile  # the generator's MLE step at the paper size, 2 threads,
                                      # with `train`'s malloc settings (SEQGAN_FAST_MALLOC=system:
                                      # glibc's defaults): torch's output layer + cross-entropy
                                      # against the fused linear_nll, and their largest ops
  python benchmarks/micro.py guard    # the finite-value guard's check per optimizer step over
                                      # quick's and the paper's D parameters, 2 threads: the
                                      # one-pass op against per-tensor vector norms
  python benchmarks/micro.py highway_delta  # how many pooled features of a rollout completion
                                      # differ from its prefix-only windows' (the density a
                                      # sparse "prefix + delta" highway product would have)
  python benchmarks/micro.py cells    # paper-size rollout, LSTM vs GRU: cpp per ISA path,
                                      # reference, reference_loop (a sanity ratio, not a bench)
"""
from __future__ import annotations

import sys
import time

import torch
import torch.nn.functional as F

from seqgan_fast import Discriminator, Generator, ops
from seqgan_fast.ops.highway import inference_weights
from seqgan_fast.ops.score import SCORE_PASS_BYTES, _fold_pool, _head, _pool, fold, fold_operands
from seqgan_fast.train.optim import fast_adam


def _t(fn, reps: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@torch.no_grad()
def cells() -> None:
    from benchmarks.baselines import loop_rollout

    times: dict[tuple[str, str], float] = {}
    for cell in ("lstm", "gru"):
        torch.manual_seed(0)
        g = Generator(5000, 32, 32, 20, cell=cell)
        with torch.no_grad():
            for p in g.parameters():
                p.mul_(10.0)
        w = g.kernel_weights()
        x = ops.sample(g, 64, seed=1, backend="reference")
        for isa in ops.cpu_isa_paths():
            with ops.force_cpu_isa(isa):
                times[cell, f"cpp@{isa}"] = _t(
                    lambda: ops.rollout(w, x, 16, backend="cpp"))  # noqa: B023
        times[cell, "reference"] = _t(
            lambda: ops.rollout(w, x, 16, backend="reference"), 1)  # noqa: B023
        t0 = time.perf_counter()
        loop_rollout(w, x, 16)
        times[cell, "reference_loop"] = time.perf_counter() - t0
    for (cell, name), t in times.items():
        extra = ""
        if name.startswith("cpp"):
            extra = (f"  {times[cell, 'reference'] / t:6.1f}x reference, "
                     f"{times[cell, 'reference_loop'] / t:6.1f}x reference_loop")
            if cell == "gru":
                extra += f", GRU/LSTM time {t / times['lstm', name]:.2f}"
        print(f"rollout paper {cell:4s} {name:14s} {t:8.4f} s{extra}")


def _pool_adds(f, T: int, N: int, straddling: bool = True) -> float:
    """Table row adds of score_pool over the (T-1)*N completions of one sequence, as a fraction
    of scoring them whole (csrc/common/score.h): prefix windows cost nothing per completion,
    a straddling window's prefix offsets 1/N each (summed once per prefix) when shared."""
    whole = shared = 0.0
    for k, fp in zip(f.widths, (-(-n // 16) * 16 for n in f.filters), strict=True):
        for t in range(1, T):
            for p in range(T - k + 1):
                whole += k * fp
                if p + k <= t:
                    continue
                inside = max(0, t - p) if straddling else 0
                shared += (k - inside + inside / N) * fp
    return shared / whole


@torch.no_grad()
def score() -> None:
    g = Generator(5000, 32, 32, 20)
    x = g.sample(64, seed=1, backend="cpp")
    comps = ops.rollout(g, x, 16, seed=0, backend="cpp").view(-1, 20)  # 19 * 16 * 64 rows
    rows = comps[:4096].contiguous()
    for V in (5000, 50):
        d = Discriminator(V, 20).eval()
        f, r = fold(d), rows % V
        s = _t(lambda: _pool(r, 0, None, 1, f))  # noqa: B023
        print(f"score_pool (whole table) V={V}: {s / len(r) * 1e6:.1f} us/row")
    d = Discriminator(5000, 20).eval()
    f, fo = fold(d), fold_operands(d)
    print(f"table adds per completion, of a whole row's: {_pool_adds(f, 20, 16):.0%} "
          f"(prefix windows and straddling windows' prefix parts shared; the prefix windows "
          f"alone {_pool_adds(f, 20, 16, straddling=False):.0%})")
    out = torch.empty(len(comps) + len(x), sum(fo.filters))
    for threads in (1, 2):
        torch.set_num_threads(threads)

        def fold_pool(px, extra):
            return _fold_pool(comps, 0, px, 16, extra, fo, SCORE_PASS_BYTES,
                              out if extra is not None else out[: len(comps)])
        print(f"{threads} thread(s), all {len(comps)} completions (+ x's {len(x)} rows): "
              f"score_fold_pool {_t(lambda: fold_pool(x, x)):.3f} s prefix-shared, "  # noqa: B023
              f"{_t(lambda: fold_pool(None, None)):.3f} s scored whole; "  # noqa: B023
              f"fold (torch.mm, whole table) {_t(lambda: fold(d)):.3f} s + "
              f"score_pool {_t(lambda: _pool(comps, 0, x, 16, f)):.3f} s; "
              f"head {_t(lambda: _head(d, out, inference_weights(d.highway))):.3f} s; "
              f"ops.score {_t(lambda: ops.score(d, comps, prefix_x=x, num_rollouts=16)):.3f} s,"
              f" reference {_t(lambda: d.prob_real(comps), 1):.3f} s")
        if threads == 2:  # the pass size (score.h), and what a fresh pooled buffer costs
            sweep = ", ".join(
                f"{mb} MiB {_t(lambda: _fold_pool(comps, 0, x, 16, x, fo, mb << 20, out)):.3f} s"  # noqa: B023
                for mb in (8, 16, 32, 64))
            fresh = _t(lambda: torch.empty_like(out).fill_(0.0))
            reused = _t(lambda: out.fill_(0.0))
            mib = out.numel() * 4 >> 20
            print(f"  score_fold_pool by pass size: {sweep}; filling a fresh {mib} MiB buffer "
                  f"{fresh:.3f} s, the same buffer again {reused:.3f} s")
    # agreement: ops.score and the reference against the same discriminator in float64
    got = ops.score(d, comps, prefix_x=x, num_rollouts=16).double()
    ref = d.prob_real(comps).double()
    d64 = Discriminator(5000, 20).double().eval()
    d64.load_state_dict({k: v.double() for k, v in d.state_dict().items()})
    exact = d64.prob_real(comps)
    with ops.force_cpu_isa("avx2"):
        same = torch.equal(ops.score(d, comps, prefix_x=x, num_rollouts=16), got.float())
    print(f"agreement over the {len(comps)} completions: max |cpp - reference| "
          f"{(got - ref).abs().max():.2g}; against float64: cpp {(got - exact).abs().max():.2g}, "
          f"reference {(ref - exact).abs().max():.2g}; AVX2 path bit-identical: {same}")
    torch.set_num_threads(1)


def d_step() -> None:
    torch.manual_seed(0)
    d = Discriminator(5000, 20)
    x = torch.randint(0, 5000, (64, 20))
    y = torch.randint(0, 2, (64,))
    module = d.forward

    def unfold(t: torch.Tensor) -> torch.Tensor:  # conv_k(p) = W_k . vec(e[p : p + k])
        e = d.embedding(t)
        B, T, E = e.shape
        pooled = []
        for c in d.convs:
            k, f = c.kernel_size[0], c.out_channels
            win = e.unfold(1, k, 1).reshape(B * (T - k + 1), E * k)
            y = torch.mm(win, c.weight.reshape(f, E * k).t()).view(B, T - k + 1, f)
            pooled.append(y.amax(dim=1) + c.bias)
        return d.head(F.relu(torch.cat(pooled, dim=1)))

    for name, fwd, opt in (
            ("module + default Adam", module, torch.optim.Adam(d.parameters(), lr=1e-4)),
            ("module + fast_adam", module, fast_adam(d.parameters(), lr=1e-4)),
            ("unfold + fast_adam", unfold, fast_adam(d.parameters(), lr=1e-4)),
            ("fused + fast_adam (the trainer's cpp step)",
             lambda t: d(t, pool="fused"), fast_adam(d.parameters(), lr=1e-4))):
        tf = tb = to = 0.0
        n = 20
        for i in range(n + 3):
            t0 = time.perf_counter()
            loss = F.cross_entropy(fwd(x), y) + d.l2_loss()
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            if i >= 3:
                tf, tb, to = tf + t1 - t0, tb + t2 - t1, to + t3 - t2
        print(f"{name}: forward {tf / n * 1e3:.1f} ms, backward {tb / n * 1e3:.1f} ms, "
              f"optimizer {to / n * 1e3:.1f} ms")


def d_profile(threads: int = 2) -> None:
    """The trainer's CPU D step (fused pool, fused Adam) at ``threads``: torch.profiler's self
    time per step of its largest ops (argv[2]: how many, default 8) at the paper size, or at
    preset ``quick``'s 860 filters with argv[3] = quick; with seqgan_fast/cli/malloc.py applied,
    as in ``seqgan-fast train``."""
    from torch.profiler import profile

    from seqgan_fast.cli.malloc import keep_freed_memory
    from seqgan_fast.config import PRESETS
    from seqgan_fast.train.dstep import DiscriminatorStep

    keep_freed_memory()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    quick = len(sys.argv) > 3 and sys.argv[3] == "quick"
    d = Discriminator(5000, 20, **({"num_filters": PRESETS["quick"]["d_num_filters"]}
                                   if quick else {}))
    step = DiscriminatorStep(d, fast_adam(d.parameters(), lr=1e-4), 64, pool="fused")
    x, y = torch.randint(0, 5000, (64, 20)), torch.randint(0, 2, (64,))
    steps = 10
    for _ in range(5):
        step(x, y)
    t0 = time.perf_counter()
    with profile() as prof:
        for _ in range(steps):
            step(x, y)
    wall = (time.perf_counter() - t0) / steps
    print(f"D step at {threads} threads{', quick filters' if quick else ''}: "
          f"{wall * 1e3:.1f} ms (profiled)")
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:top]
    for e in events:
        print(f"  {e.key:40s} {e.self_cpu_time_total / steps / 1e3:6.2f} ms/step, "
              f"{e.count // steps} calls")


def highway(threads: int = 2) -> None:
    """The highway layer of a paper-size D step (batch 64, 1,720 features): per product, MKL
    (torch.mm) against seqgan_fast::gemm_nn on the layouts ops/highway.py uses, then the
    layer's forward + backward, module against fused; then scoring's products (4,096 rows,
    preset quick's 860 and the paper's 1,720 features: F.linear against gemm_nn with the
    bias as a column bias); best of 7 interleaved rounds."""
    from seqgan_fast.models import Highway
    from seqgan_fast.ops.highway import highway as fused

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    B, n = 64, 1720
    w, x, g = torch.randn(n, n), torch.randn(B, n), torch.randn(B, n)
    xt, gt = x.t().contiguous(), g.t().contiguous()
    mm = torch.ops.seqgan_fast.gemm_nn
    layer = Highway(n)
    xg = x.clone().requires_grad_()

    def step(fn) -> None:
        layer.zero_grad(set_to_none=True)
        xg.grad = None
        fn().backward(g)

    cases = {  # name: (MKL, gemm_nn)
        "forward  X W^T (64 x 1720 x 1720)": (lambda: torch.mm(x, w.t()), lambda: mm(w, xt)),
        "input grad  G W": (lambda: torch.mm(g, w), lambda: mm(g, w)),
        "weight grad  G^T X": (lambda: torch.mm(g.t(), x), lambda: mm(gt, x)),
        "layer forward + backward": (lambda: step(lambda: layer(xg)),
                                     lambda: step(lambda: fused(xg, layer))),
    }
    flops = dict.fromkeys(cases, 2.0 * B * n * n)
    for m, f in ((4096, 860), (4096, 1720)):  # scoring (ops/score.py): X W^T + b, M rows
        ws, xs, bs = torch.randn(f, f), torch.randn(m, f), torch.randn(f)
        wst = ws.t().contiguous()
        name = f"scoring  X W^T + b ({m} x {f} x {f})"
        cases[name] = (lambda xs=xs, ws=ws, bs=bs: F.linear(xs, ws, bs),
                       lambda xs=xs, wst=wst, bs=bs: mm(xs, wst, None, bs))
        flops[name] = 2.0 * m * f * f
    best = {k: [float("inf"), float("inf")] for k in cases}
    for _ in range(7):
        for name, fns in cases.items():
            for i, fn in enumerate(fns):
                fn()
                t0 = time.perf_counter()
                for _ in range(10):
                    fn()
                best[name][i] = min(best[name][i], (time.perf_counter() - t0) / 10)
    for name, (a, b) in best.items():
        rate = "" if name.startswith("layer") else \
            f"  ({flops[name] / a / 1e9:.0f} / {flops[name] / b / 1e9:.0f} GFLOP/s)"
        print(f"{name:36s} MKL/module {a * 1e3:6.2f} ms  fused {b * 1e3:6.2f} ms{rate}")


@torch.no_grad()
def head(threads: int = 2) -> None:
    """ops/highway.py highway_logits over 19,456 rows of F = 1,720 in score's 4,096-row
    batches (random features: the time does not depend on the values), best of 5; run it
    with SEQGAN_FAST_ISA=avx2 for that path."""
    from seqgan_fast.ops.cpu_isa import cpu_isa
    from seqgan_fast.ops.highway import highway_logits, inference_weights

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rows, F_ = 19 * 16 * 64, 1720
    d = Discriminator(5000, 20).eval()
    hw = inference_weights(d.highway)
    xs = [torch.rand(min(4096, rows - r), F_) for r in range(0, rows, 4096)]
    s = _t(lambda: [highway_logits(x, hw, d.output) for x in xs], reps=5)
    print(f"head ({cpu_isa()} path, {threads} threads): {s:.3f} s for {rows} rows, "
          f"{2 * 2 * rows * F_ * F_ / s / 1e9:.0f} GFLOP/s in its two products")


@torch.no_grad()
def d_conv(threads: int = 2) -> None:
    """The paper discriminator's conv + ReLU + max-pool forward: the fused op (values and
    argmax) against oneDNN's convolutions + torch's max with argmax + the cats; best of 7
    interleaved rounds."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    d = Discriminator(5000, 20)
    w = [c.weight.contiguous() for c in d.convs]
    b = [c.bias.contiguous() for c in d.convs]
    fused = torch.ops.seqgan_fast.conv_pool_forward

    def module(e: torch.Tensor):
        et = e.transpose(1, 2)
        vals, idx = zip(*(F.conv1d(et, c.weight, c.bias).max(dim=2) for c in d.convs),
                        strict=True)
        return torch.cat(vals, 1).clamp_min(0), torch.cat(idx, 1)

    cases = {}
    for B in (64, 1):
        e = torch.randn(B, 20, 64)
        cases[f"B={B} fused"] = lambda e=e: fused(e, w, b)
        cases[f"B={B} oneDNN + max"] = lambda e=e: module(e)
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(7):
        for name, fn in cases.items():
            fn()
            t0 = time.perf_counter()
            for _ in range(10):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / 10)
    for name, t in best.items():
        print(f"conv + ReLU + max-pool {name:18s} {t * 1e3:6.2f} ms")


def g_profile(threads: int = 2) -> None:
    """The trainer's generator MLE step (batch 64, T = 20, V = 5000, clip 5, Adam) with
    seqgan_fast/cli/malloc.py applied as ``seqgan-fast train`` does: wall time with torch's
    output layer + cross-entropy and with the fused kernel (ops/linear_nll.py), best of 5
    interleaved rounds; then torch.profiler's self time per step of each one's largest ops
    (argv[2]: how many, default 6)."""
    from torch.profiler import profile

    from seqgan_fast.cli.malloc import keep_freed_memory

    kept = keep_freed_memory()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    g = Generator(5000, 32, 32, 20)
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    x = torch.randint(0, 5000, (64, 20))

    def step(fused: bool) -> None:
        opt.zero_grad(set_to_none=True)
        g.mle_loss(x, fused=fused).backward()
        torch.nn.utils.clip_grad_norm_(g.parameters(), 5.0)
        opt.step()

    best = {False: float("inf"), True: float("inf")}
    for _ in range(5):
        for fused in best:
            for _ in range(3):
                step(fused)
            t0 = time.perf_counter()
            for _ in range(10):
                step(fused)
            best[fused] = min(best[fused], (time.perf_counter() - t0) / 10)
    print(f"G MLE step at {threads} threads, malloc {'kept' if kept else 'system'}: "
          f"torch {best[False] * 1e3:.1f} ms, fused {best[True] * 1e3:.1f} ms")
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    for fused in best:
        with profile() as prof:
            for _ in range(10):
                step(fused)
        print(f"{'fused' if fused else 'torch'}:")
        for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:top]:
            print(f"  {e.key:40s} {e.self_cpu_time_total / 10 / 1e3:6.2f} ms/step")


@torch.no_grad()
def guard(threads: int = 2) -> None:
    """The finite-value guard's check over preset quick's and the paper's discriminator
    parameters: the extension's one-pass op against per-tensor vector norms (the check before
    it), best of 20, interleaved."""
    from seqgan_fast.config import TrainConfig
    from seqgan_fast.ops.finite import first_non_finite

    torch.set_num_threads(threads)
    for name in ("quick", "paper"):
        cfg = TrainConfig.preset(name)
        d = Discriminator(cfg.vocab_size, cfg.seq_len, cfg.d_emb_dim, cfg.d_filter_sizes,
                          cfg.d_num_filters)
        named = [(n, p.detach()) for n, p in d.named_parameters()]
        ts = [t for _, t in named]

        def norms(ts=ts) -> bool:
            return bool(torch.isfinite(torch.stack([torch.linalg.vector_norm(t)
                                                    for t in ts])).all())

        best = {"op": float("inf"), "norms": float("inf")}
        for _ in range(20):
            for key, fn in (("op", lambda named=named: first_non_finite(named)),
                            ("norms", norms)):
                t0 = time.perf_counter()
                fn()
                best[key] = min(best[key], time.perf_counter() - t0)
        print(f"guard {name} ({sum(t.numel() for t in ts) / 1e6:.1f}M parameters, {len(ts)} "
              f"tensors, {threads} threads): op {best['op'] * 1e3:.3f} ms, vector norms "
              f"{best['norms'] * 1e3:.3f} ms")


@torch.no_grad()
def highway_delta() -> None:
    """Completion (t, n, b) keeps x[b, :t]; its pooled feature f equals the max over the
    windows inside the prefix unless a window reaching past t beats it. Were that rare, the
    highway product h W could run as (prefix-only h) W + (sparse delta) W. Counts, per prefix
    length t, the share of (completion, feature) pairs where the two differ, for the paper's
    discriminator at torch's init and uniform random tokens (4 completions per sequence)."""
    torch.manual_seed(0)
    d = Discriminator(5000, 20).eval()
    B, T, N = 64, 20, 4
    x = torch.randint(0, 5000, (B, T))
    shares = []
    for t in range(1, T):
        comp = x.repeat(N, 1)
        comp[:, t:] = torch.randint(0, 5000, (N * B, T - t))
        e = d.embedding(comp).transpose(1, 2)
        whole, prefix = [], []
        for conv in d.convs:
            z = F.relu(conv(e))  # (rows, F, T - k + 1); window p covers p .. p + k - 1
            inside = t - conv.kernel_size[0] + 1  # windows that end before t
            whole.append(z.amax(2))
            prefix.append(z[:, :, :inside].amax(2) if inside > 0
                          else torch.zeros_like(z[:, :, 0]))
        shares.append((torch.cat(whole, 1) != torch.cat(prefix, 1)).float().mean().item())
    print("share of pooled features a completion changes, by prefix length t = 1..19:")
    print("  " + " ".join(f"{s:.2f}" for s in shares))
    print(f"  mean {sum(shares) / len(shares):.3f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    ops_ = {"score": score, "d_step": d_step, "cells": cells, "d_profile": d_profile,
            "head": head, "highway": highway, "d_conv": d_conv, "g_profile": g_profile,
            "guard": guard, "highway_delta": highway_delta}
    ops_[sys.argv[1] if len(sys.argv) > 1 else "score"]()
