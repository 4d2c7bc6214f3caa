"""benchmarks/gpu_check.sh (the one-command GPU check) and its report, on CPU: the dry run goes
through every stage (the CUDA ones say "skipped: no CUDA"), and the report turns a work
folder into results.json / summary.txt with the failures that must not pass as skips."""
from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from seqgan_fast.benchmarks import gpu_report

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
CUDA_STAGES = ("build", "tests_triton", "warmup", "tests_cuda")


def test_stage_caps_fit_the_nine_minute_run():
    """The sequential stages' caps (background ones overlap the build) sum to <= 540 s."""
    text = SCRIPT.read_text()
    caps = {name: int(cap) for name, cap in re.findall(r"run_stage (\w+) (\d+) ", text)}
    assert set(caps) >= {"env", "build", "tests_cuda", "bench_paper", "bench_large",
                         "bench_train", "train_quick", "train_paper"}
    assert sum(caps.values()) <= 540, caps
    assert 'BUDGET_S="${GPU_CHECK_BUDGET_S:-540}"' in text
    assert "TORCH_CUDA_ARCH_LIST=9.0 " in text  # forced, not defaulted


def test_dry_run_exercises_every_stage_on_cpu(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out)}
    env.pop("TRITON_INTERPRET", None)
    res = subprocess.run(["bash", str(SCRIPT), "--dry-run"], env=env, capture_output=True,
                         text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == \
        ["gpu_check.tgz", "log.txt", "results.json", "summary.txt"]
    summary = (out / "summary.txt").read_text()
    assert res.stdout.rstrip().endswith(summary.rstrip())  # printed last
    assert summary.startswith("gpu_check: PASS (dry run)")
    doc = json.loads((out / "results.json").read_text())
    stages = {s["stage"]: s for s in doc["stages"]}
    for name in CUDA_STAGES:
        assert stages[name]["status"] == "skipped" and "no CUDA" in stages[name]["note"]
    for name in ("env", "bench_paper", "bench_large", "bench_train", "train_quick"):
        assert stages[name]["status"] == "ok", stages[name]
    rows = doc["bench"]["paper"]
    cpp = [r for r in rows if r["backend"] == "cpp" and r["op"] in ("rollout", "sample")]
    assert cpp and all(r["agreement"] >= 0.999 for r in cpp)
    assert doc["train"]["quick"]["phase_s"]["mle"] >= 0
    with tarfile.open(out / "gpu_check.tgz") as tar:
        names = tar.getnames()
    assert "gpu_check/stages.tsv" in names and "gpu_check/bench_paper.json" in names
    assert "gpu_check/run_quick/summary.json" in names
    assert not any("/checkpoints" in n for n in names)


def test_bad_argument_is_one_line(tmp_path):
    res = subprocess.run(["bash", str(SCRIPT), "--gpu"], capture_output=True, text=True,
                         env={**os.environ, "OUT": str(tmp_path)}, timeout=60)
    assert res.returncode == 2 and "unknown argument --gpu" in res.stderr


def _work(tmp_path: Path, stages: list[str], junit: str | None = None) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "stages.tsv").write_text("".join(s + "\n" for s in stages))
    if junit is not None:
        (work / "junit_cuda.xml").write_text(junit)
    return work


_CASE = '<testcase classname="tests.{}" name="{}">{}</testcase>'
JUNIT = "<testsuites><testsuite>" + "".join(_CASE.format(*c) for c in [
    ("test_backend_cuda", "test_rollout_matches_reference_small[cuda-300-4-3-9-lstm]", ""),
    ("test_backend_cuda", "test_sample_matches_reference[triton-300-5-0-gru]",
     '<failure message="x"/>'),
    ("test_backend_cuda", "test_cuda_op_validation_errors", '<skipped message="y"/>'),
    ("test_d_step", "test_cuda_graph_step_follows_the_eager_curve", ""),
]) + "</testsuite></testsuites>"


def test_report_counts_tests_per_backend_and_fails_on_a_failed_build(tmp_path):
    work = _work(tmp_path, ["env\t0\t2\tcap 10s", "build\t1\t95\tcap 150s",
                            "tests_cuda\t0\t30\tcap 90s", "bench_large\t124\t75\tcap 75s",
                            "train_paper\tskipped\t0\tno oracle"], JUNIT)
    dest = tmp_path / "dest"
    assert gpu_report.main([str(work), "--dest", str(dest)]) == 1
    doc = json.loads((dest / "results.json").read_text())
    assert doc["tests"]["cuda"] == {"passed": 1, "failed": 0, "skipped": 1}
    assert doc["tests"]["triton"] == {"passed": 0, "failed": 1, "skipped": 0}
    assert doc["tests"]["cuda_graph"] == {"passed": 1, "failed": 0, "skipped": 0}
    text = (dest / "summary.txt").read_text()
    assert text.startswith("gpu_check: FAIL")
    assert "FAILURE: the CUDA backend did not build" in text
    assert "FAILURE: stage bench_large: timeout (rc 124)" in text
    assert "FAILURE: tests triton: 1 failed" in text
    assert "train_paper  skipped: no oracle" in text


def test_paper_projection_scales_each_phase_to_the_official_schedule():
    proj = gpu_report.project_paper({"mle_epochs": 20, "d_pretrain_rounds": 3,
                                     "adv_batches": 3,
                                     "phase_s": {"mle": 10.0, "d_pretrain": 6.0, "adv": 9.0}})
    assert proj["seconds_per_unit"] == {"mle": 0.5, "d_pretrain": 2.0, "adv": 3.0}
    assert proj["full_schedule_s"] == pytest.approx(0.5 * 120 + 2.0 * 50 + 3.0 * 200)
    assert gpu_report.project_paper({"mle_epochs": 0, "phase_s": {}}) is None


def test_roofline_uses_the_configs_flops_per_token():
    bench = {"large": [{"op": "rollout", "config": "large", "backend": "cuda", "median_s": 0.5},
                       {"op": "sample", "config": "large", "backend": "cuda", "median_s": 0.1}]}
    (row,) = gpu_report.roofline(bench, peak_tflops=67.0)
    cfg = gpu_report.CONFIGS["large"]
    flops = cfg.rollout_tokens * 2 * cfg.hidden * (cfg.vocab + 4 * (cfg.emb + cfg.hidden))
    assert row["tflops"] == pytest.approx(flops / 0.5 / 1e12)
    assert row["fraction_of_fp32_peak"] == pytest.approx(row["tflops"] / 67.0)
