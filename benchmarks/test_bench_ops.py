"""pytest-benchmark suite: one benchmark per (op, backend), grouped per op and config.

Each test first runs the contender once and checks it (as the harness does), then times it.
SEQGAN_FAST_BENCH_BACKENDS=a,b limits the backends (e.g. to leave out torch_compile, whose
first compilation dominates a cold smoke run).
"""
from __future__ import annotations

import os

import pytest

from seqgan_fast.benchmarks.common import ALL_BACKENDS, select_backends
from seqgan_fast.benchmarks.harness import BUILDERS, OPS

BACKENDS = [b for b in ALL_BACKENDS if b != "triton"]  # triton on CPU: interpreter only


def _case(op, cfg, backend):
    only = os.environ.get("SEQGAN_FAST_BENCH_BACKENDS")
    if only and backend not in only.split(","):
        pytest.skip(f"{backend} not in SEQGAN_FAST_BENCH_BACKENDS={only}")
    run, why = select_backends([backend], "cpu")
    if backend not in run:
        pytest.skip(why.get(backend, f"{backend} unavailable"))
    case = BUILDERS[op](op, cfg, "cpu", [backend])
    if not case.contenders:
        pytest.skip(f"{backend} is not a contender of {op}")
    return case


def _checked(case):
    ct = case.contenders[0]
    out = (ct.check_fn or ct.fn)()
    if ct.backend == "reference":
        case.set_reference_output(out)
    ct.check(out, case)
    return ct


def _rounds(cfg):
    return 1 if cfg.name == "paper" else 3


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", [op for op in OPS if op not in ("d_epoch", "schedule")])
def test_op(benchmark, bench_config, op, backend):
    case = _case(op, bench_config, backend)
    ct = _checked(case)
    benchmark.group = f"{op}-{bench_config.name}"
    benchmark.extra_info.update(tokens=case.tokens, backend=backend)
    benchmark.pedantic(ct.fn, rounds=_rounds(bench_config), iterations=1)


def test_gemm_floor(benchmark, bench_config):
    case = _case("rollout", bench_config, "reference")
    benchmark.group = f"rollout-{bench_config.name}"
    benchmark.extra_info.update(tokens=case.tokens, backend="gemm_floor")
    out = benchmark.pedantic(case.gemm, rounds=_rounds(bench_config), iterations=1)
    assert out.shape[1] == bench_config.vocab


def test_d_epoch(benchmark, bench_config):
    case = BUILDERS["d_epoch"]("d_epoch", bench_config, "cpu", None)
    ct = _checked(case)
    benchmark.group = f"d_epoch-{bench_config.name}"
    benchmark.extra_info.update(tokens=case.tokens, backend=ct.backend)
    benchmark.pedantic(ct.fn, rounds=1, iterations=1)


def test_schedule(benchmark, bench_config):
    case = BUILDERS["schedule"]("schedule", bench_config, "cpu", None)
    ct = _checked(case)
    benchmark.group = f"schedule-{bench_config.name}"
    benchmark.extra_info.update(tokens=case.tokens, backend=ct.backend)
    phases = benchmark.pedantic(ct.fn, rounds=1, iterations=1)
    assert set(phases) == {"adv_step", "sample_negatives", "d_epoch", "mle_epoch", "eval"}
