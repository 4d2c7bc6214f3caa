"""Tests of the harness itself: the baselines' correctness, the protocol, the JSON, the table."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seqgan_fast import Generator, ops
from seqgan_fast.benchmarks import harness
from seqgan_fast.benchmarks.baselines import loop_complete, loop_decode, loop_rollout, loop_sample
from seqgan_fast.benchmarks.common import (
    Case,
    CheckError,
    Contender,
    check_agreement,
    check_rollout_output,
    gemm_floor,
)
from seqgan_fast.benchmarks.configs import CONFIGS, BenchConfig
from seqgan_fast.benchmarks.report import add_ratios, format_table, markdown_table
from seqgan_fast.ops.weights import lstm_step, prefix_states, project

ROOT = Path(__file__).resolve().parent


def _peaked_generator(vocab=7, seq_len=5, seed=0):
    torch.manual_seed(seed)
    g = Generator(vocab, 4, 8, seq_len)
    with torch.no_grad():
        for p in g.parameters():
            p.mul_(15.0)  # far from uniform: a wrong conditioning shows in the counts
    return g


def _counts_match(tokens: torch.Tensor, probs: torch.Tensor, max_sigma: float = 5.0) -> None:
    """Every category's count is within max_sigma binomial standard deviations."""
    n = tokens.numel()
    counts = torch.bincount(tokens.flatten(), minlength=probs.numel()).double()
    mean = probs.double() * n
    sd = (mean * (1 - probs.double())).clamp_min(1e-9).sqrt()
    z = ((counts - mean).abs() / sd).max().item()
    assert z <= max_sigma, f"counts {counts.tolist()} vs expected {mean.tolist()} (z = {z:.1f})"


def test_loop_rollout_contract_and_conditional_distribution():
    g = _peaked_generator()
    w = g.kernel_weights()
    x = ops.sample(g, 3, seed=5, backend="reference")
    torch.manual_seed(0)
    comps = loop_rollout(w, x, 4)
    check_rollout_output(comps, x, 4, g.vocab_size)  # shape, range, prefixes
    # the token after prefix t must follow p(. | x[b, :t]) of that row: many copies of each
    # row go through loop_complete (what loop_rollout runs per prefix) at once
    reps = 1500
    xb = x.repeat(reps, 1)
    hp, _ = prefix_states(w, x)
    for t in (1, 3):
        comp = loop_complete(w, xb[:, :t], x.shape[1])
        assert torch.equal(comp[:, :t], xb[:, :t])
        for b in range(x.shape[0]):
            probs = torch.softmax(project(w, hp[t, b : b + 1]), dim=1)[0]
            _counts_match(comp[b::3, t], probs)


def test_loop_sample_and_decode_follow_the_softmax():
    g = _peaked_generator(vocab=11)
    w = g.kernel_weights()
    torch.manual_seed(1)
    xs = loop_sample(w, 4000, 2)
    assert xs.shape == (4000, 2) and xs.dtype == torch.int64
    h0, _ = lstm_step(w, w.emb[torch.tensor([w.start_token])], torch.zeros(1, 8),
                      torch.zeros(1, 8))
    _counts_match(xs[:, 0], torch.softmax(project(w, h0), dim=1)[0])
    tok = torch.full((3000,), 4)
    h, c = torch.zeros(3000, 8), torch.zeros(3000, 8)
    nxt, h1, c1 = loop_decode(w, tok, h, c)
    eh, ec = lstm_step(w, w.emb[tok], h, c)
    assert torch.equal(h1, eh) and torch.equal(c1, ec)
    _counts_match(nxt, torch.softmax(project(w, eh[:1]), dim=1)[0])


def test_check_rollout_output_rejects_a_broken_prefix():
    g = _peaked_generator()
    x = ops.sample(g, 4, seed=1, backend="reference")
    comps = ops.rollout(g, x, 3, seed=2, backend="reference")
    check_rollout_output(comps, x, 3, g.vocab_size)
    bad = comps.clone()
    bad[2, 1, 3, 0] = (bad[2, 1, 3, 0] + 1) % g.vocab_size
    with pytest.raises(CheckError, match="prefix length 3"):
        check_rollout_output(bad, x, 3, g.vocab_size)
    with pytest.raises(CheckError, match="outside"):
        check_rollout_output(comps + g.vocab_size, x + g.vocab_size, 3, g.vocab_size)


@pytest.mark.parametrize("tokens,block", [(1000, 256), (37, 64), (4096, 4096)])
def test_gemm_floor_covers_every_token(tokens, block, monkeypatch):
    w_out = torch.randn(13, 5)
    calls = []
    real_mm = torch.mm
    monkeypatch.setattr(torch, "mm", lambda a, b, out: calls.append(a.shape[0]) or
                        real_mm(a, b, out=out))
    run, desc = gemm_floor(tokens, block, w_out)
    out = run()
    assert sum(calls) == tokens and max(calls) <= block and out.shape[1] == 13
    assert "@ (5 x 13)" in desc


def _toy_case(contenders, tokens=100):
    cfg = CONFIGS["tiny"]
    return Case("rollout", cfg, "cpu", tokens, contenders,
                gemm=lambda: torch.ones(3) @ torch.ones(3), gemm_desc="toy",
                make_reference=lambda: torch.zeros(2))


def test_run_case_records_failures_and_times_the_rest():
    def boom():
        raise RuntimeError("cannot compile here")

    def wrong(out, case):
        raise CheckError("tokens agree on 0.5")

    calls = {"ok": 0}

    def ok():
        calls["ok"] += 1
        return torch.zeros(2)

    rows = harness.run_case(_toy_case([
        Contender("reference", ok, lambda out, case: None),
        Contender("torch_compile", boom, compiles=True),
        Contender("cpp", ok, wrong),
    ]), repeats=4, warmup=2)
    by = {r["backend"]: r for r in rows}
    assert set(by) == {"reference", "torch_compile", "cpp", "gemm_floor"}
    assert "RuntimeError: cannot compile here" in by["torch_compile"]["error"]
    assert "tokens agree on 0.5" in by["cpp"]["error"] and by["cpp"]["median_s"] is None
    ref = by["reference"]
    assert "error" not in ref and ref["runs"] == 4
    assert ref["min_s"] <= ref["median_s"] <= ref["max_s"]
    assert ref["tokens_per_s"] == pytest.approx(100 / ref["median_s"])
    # 2 checked calls (reference + cpp) + 2 warm-ups + 4 timed runs, each of `inner` calls
    assert calls["ok"] == 2 + 2 + 4 * ref["inner"]
    assert by["gemm_floor"]["runs"] == 4


def test_agreement_fraction_is_recorded_in_the_row_passed_or_not():
    ref = torch.arange(1000) % 7
    close = ref.clone()
    close[:1] = (close[:1] + 1) % 7  # 999 of 1000 agree
    far = ref.clone()
    far[:10] = (far[:10] + 1) % 7  # 990 of 1000

    def agree(name):
        return lambda out, case: check_agreement(out, case.reference_output(), name, case)

    rows = harness.run_case(_toy_case([
        Contender("reference", lambda: ref.clone()),
        Contender("cpp", lambda: close.clone(), agree("cpp")),
        Contender("triton", lambda: far.clone(), agree("triton")),
    ]), repeats=1, warmup=0)
    by = {r["backend"]: r for r in rows}
    assert by["cpp"]["agreement"] == pytest.approx(0.999) and "error" not in by["cpp"]
    assert by["triton"]["agreement"] == pytest.approx(0.990)
    assert "agree with reference on 0.99000" in by["triton"]["error"]
    assert "agreement" not in by["reference"]


def test_run_saves_the_document_after_every_case(tmp_path, monkeypatch):
    """--json is rewritten (atomically) after each case, so a run cut by a time limit keeps
    the cases it finished."""
    seen = []
    real = harness.write_json

    def spy(path, doc):
        real(path, doc)
        seen.append([(r["op"], r["backend"]) for r in json.loads(Path(path).read_text())
                     ["results"]])

    monkeypatch.setattr(harness, "write_json", spy)
    out = tmp_path / "b.json"
    assert harness.main(["--quick", "--op", "decode,sample", "--backends", "reference",
                         "--json", str(out), "-q"]) == 0
    assert len(seen) == 3  # after decode, after sample, at the end
    assert {op for op, _ in seen[0]} == {"decode"}
    assert {op for op, _ in seen[1]} == {"decode", "sample"} and seen[2] == seen[1]
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]  # no temporary file left


def test_run_case_budget_keeps_one_run():
    rows = harness.run_case(_toy_case([Contender("reference", lambda: torch.zeros(2))]),
                            repeats=5, warmup=0, budget_s=0.0)
    assert all(r["runs"] == 1 for r in rows)


def test_add_ratios():
    rows = [{"op": "rollout", "config": "paper", "backend": b, "median_s": t}
            for b, t in (("reference_loop", 8.0), ("reference", 2.0), ("cpp", 0.5),
                         ("gemm_floor", 0.25), ("triton", None))]
    rows.append({"op": "sample", "config": "paper", "backend": "cpp", "median_s": 1.0})
    add_ratios(rows)
    by = {(r["op"], r["backend"]): r for r in rows}
    cpp = by["rollout", "cpp"]
    assert cpp["speedup_vs_reference_loop"] == 16.0 and cpp["speedup_vs_reference"] == 4.0
    assert cpp["speedup_vs_torch_compile"] is None  # no torch_compile row in the group
    assert cpp["gemm_ratio"] == 2.0 and by["rollout", "gemm_floor"]["gemm_ratio"] is None
    assert by["rollout", "triton"]["speedup_vs_reference"] is None
    assert by["sample", "cpp"]["speedup_vs_reference"] is None  # no reference in its group


def test_config_overrides_and_tokens():
    cfg = CONFIGS["paper"].replace(batch=3, seq_len=9, vocab=None)
    assert (cfg.batch, cfg.seq_len, cfg.vocab) == (3, 9, 5000)
    assert cfg.rollout_tokens == 3 * 16 * 9 * 8 // 2
    assert CONFIGS["paper"].rollout_tokens == 64 * 16 * 190
    assert isinstance(cfg, BenchConfig)


def test_main_writes_json_and_prints_the_table_last(tmp_path, capsys):
    out = tmp_path / "b.json"
    rc = harness.main(["--quick", "--op", "rollout,decode", "--backends",
                       "reference_loop,reference", "--batch", "3", "--json", str(out), "-q"])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == 1
    for key in ("cpu_model", "cores", "torch", "triton", "device_name", "torch_threads"):
        assert key in doc["machine"]
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    keep = glibc and os.environ.get("SEQGAN_FAST_MALLOC", "keep") == "keep"
    assert doc["machine"]["malloc"] == ("keep" if keep else "system")  # as `train` runs
    cfg = doc["configs"]["tiny"]
    assert cfg["batch"] == 3
    rows = {(r["op"], r["backend"]): r for r in doc["results"]}
    assert set(rows) == {(op, b) for op in ("rollout", "decode")
                         for b in ("reference_loop", "reference", "gemm_floor")}
    roll = rows["rollout", "reference"]
    T, N = cfg["seq_len"], cfg["rollouts"]
    assert roll["tokens"] == 3 * N * T * (T - 1) // 2
    assert rows["decode", "reference"]["tokens"] == cfg["decode_batch"]
    for r in doc["results"]:
        for key in ("median_s", "min_s", "max_s", "runs", "tokens", "tokens_per_s",
                    "peak_mem_bytes"):
            assert key in r
        assert r["runs"] == 2
    assert roll["speedup_vs_reference_loop"] == pytest.approx(
        rows["rollout", "reference_loop"]["median_s"] / roll["median_s"])
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1].startswith("tokens/s:")
    assert any(line.startswith("rollout") and "reference_loop" in line for line in printed)
    assert format_table(doc).strip() == "\n".join(printed).strip()


def test_markdown_report_of_a_saved_run(tmp_path, capsys):
    rows = [{"op": "score", "config": "paper", "backend": b, "median_s": t,
             "tokens_per_s": 1e3 / t} for b, t in (("reference", 4.0), ("cpp", 0.5),
                                                   ("cpp@avx2", 1.0), ("gemm_floor", 2.0))]
    rows.append({"op": "score", "config": "paper", "backend": "cpp@baseline",
                 "error": "skipped"})
    add_ratios(rows)
    doc = {"schema": 1, "machine": {"device": "cpu", "cpu_isa": "avx512"},
           "command": ["seqgan-fast", "bench", "--op", "score"], "results": rows}
    table = markdown_table(doc).splitlines()
    assert "`seqgan-fast bench --op score`" in table[0] and "cpp CPU path avx512" in table[0]
    assert table[2] == "| op | backend | median | tokens/s | vs `reference` | /GEMM |"
    body = {line.split(" | ")[1]: line for line in table[4:]}
    assert set(body) == {"reference", "cpp (avx512)", "cpp@avx2", "gemm_floor"}
    assert body["cpp (avx512)"] == "| score | cpp (avx512) | 500 ms | 2k | 8× | 0.25× |"
    assert body["gemm_floor"].endswith("| 2× | — |")
    src = tmp_path / "run.json"
    src.write_text(json.dumps(doc))
    res = subprocess.run([sys.executable, str(ROOT / "report.py"), str(src), "--markdown"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "\n".join(table)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": 7, "results": []}))
    res = subprocess.run([sys.executable, str(ROOT / "report.py"), str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "bad.json" in res.stderr and "schema" in res.stderr


def test_cell_axis_gives_gru_rows_with_their_ratio_to_the_lstm(tmp_path):
    out = tmp_path / "cells.json"
    rc = harness.main(["--quick", "--op", "rollout,sample,decode", "--cell", "lstm,gru",
                       "--backends", "reference,cpp", "--json", str(out), "-q"])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert set(doc["configs"]) == {"tiny", "tiny-gru"} and doc["configs"]["tiny-gru"]["cell"] \
        == "gru"
    rows = {(r["op"], r["config"], r["backend"]): r for r in doc["results"]}
    for op in ("rollout", "sample", "decode"):
        gru, lstm = rows[op, "tiny-gru", "cpp"], rows[op, "tiny", "cpp"]
        assert gru["cell"] == "gru" and "error" not in gru
        assert gru["time_vs_lstm"] == pytest.approx(gru["median_s"] / lstm["median_s"])
        assert "time_vs_lstm" not in lstm


@pytest.mark.parametrize("argv", [["--op", "nope"], ["--config", "huge"],
                                  ["--backends", "reference,fast"], ["--repeats", "0"],
                                  ["--cell", "rnn"]])
def test_main_rejects_bad_arguments(argv, capsys):
    assert harness.main(argv + ["-q"]) == 2
    assert "error" in capsys.readouterr().err


def test_main_applies_trains_allocator_and_records_what_it_got(tmp_path, monkeypatch):
    calls = []

    def refused():  # as keep_freed_memory off glibc: settings not in force
        calls.append(True)
        return False

    monkeypatch.setattr(harness, "keep_freed_memory", refused)
    out = tmp_path / "b.json"
    assert harness.main(["--quick", "--op", "decode", "--backends", "reference", "--json",
                         str(out), "-q"]) == 0
    assert calls == [True]
    assert json.loads(out.read_text())["machine"]["malloc"] == "system"


def test_main_rejects_an_unknown_malloc_mode_before_running(monkeypatch, capsys):
    monkeypatch.setenv("SEQGAN_FAST_MALLOC", "jemalloc")
    assert harness.main(["--quick", "--op", "decode", "--backends", "reference", "-q"]) == 2
    err = capsys.readouterr().err
    assert "SEQGAN_FAST_MALLOC" in err and "'jemalloc'" in err


def test_plot_writes_a_png(tmp_path):
    doc = {"schema": 1, "machine": {"device": "cpu"}, "results": [
        {"op": "rollout", "config": "paper", "backend": b, "tokens_per_s": v}
        for b, v in (("reference_loop", 1e3), ("reference", 1e4), ("gemm_floor", 4e5))]}
    src = tmp_path / "b.json"
    src.write_text(json.dumps(doc))
    png = tmp_path / "b.png"
    res = subprocess.run([sys.executable, str(ROOT / "plot.py"), str(src), str(src), "-o",
                          str(png)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": 7, "results": []}))
    res = subprocess.run([sys.executable, str(ROOT / "plot.py"), str(bad), "-o", str(png)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "schema" in res.stderr


def test_warmup_zero_counts_the_checked_call_of_slow_eager_contenders():
    calls = {"eager": 0, "compiled": 0}

    def slow(key):
        def fn():
            calls[key] += 1
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < harness.MIN_RUN_S:
                pass  # longer than MIN_RUN_S: one call per run
            return torch.zeros(2)
        return fn

    rows = harness.run_case(_toy_case([Contender("reference", slow("eager")),
                                       Contender("torch_compile", slow("compiled"),
                                                 compiles=True)]),
                            repeats=3, warmup=0)
    by = {r["backend"]: r for r in rows}
    assert by["reference"]["runs"] == 3 and calls["eager"] == 3  # check call + 2 more
    # a compiling contender: check (compiles), one warm call (memory), then 3 timed runs
    assert by["torch_compile"]["runs"] == 3 and calls["compiled"] == 5
