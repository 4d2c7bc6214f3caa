"""The results of ``benchmarks/gpu_check.sh`` as one JSON document and a short summary.

    python benchmarks/gpu_report.py WORK --dest OUT [--budget S] [--dry-run]

WORK is the script's work folder (``stages.tsv``, ``env.json``, ``junit_*.xml``,
``bench_*.json``, ``run_*/summary.json``); OUT receives ``results.json`` and ``summary.txt``.
Exit status: 0 when every stage that ran passed (skipped stages are listed, not failures),
1 when a stage failed, timed out or a test failed, 2 on a missing work folder.

Test counts are per backend: ``cuda`` (the extension's kernels), ``triton`` (compiled on the
GPU) and ``cuda_graph`` (the discriminator step of seqgan_fast/train/dstep.py). A CUDA build that
failed counts as a failure even where its tests only skipped.

The roofline: a rollout's completion token costs 2*H*(V + 4*(E + H)) FLOPs (the output
projection and the LSTM cell's two GEMMs), against ``GPU_PEAK_TFLOPS`` (default 67: H200 SXM,
fp32 without tensor cores). The paper projection scales each phase of the short paper run to
the official schedule (120 MLE epochs, 50 discriminator pre-training rounds, 200 adversarial
batches).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

try:
    from seqgan_fast.benchmarks.configs import CONFIGS
except ImportError:  # run from a checkout without the editable install's symlink
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.configs import CONFIGS

PAPER_SCHEDULE = {"mle": ("mle_epochs", 120), "d_pretrain": ("d_pretrain_rounds", 50),
                  "adv": ("adv_batches", 200)}
TEST_GROUPS = ("cuda", "triton", "cuda_graph")


def read_stages(work: Path) -> list[dict[str, Any]]:
    out = []
    path = work / "stages.tsv"
    for line in path.read_text().splitlines() if path.exists() else []:
        name, status, seconds, note = (line.split("\t") + ["", "", ""])[:4]
        rc = None if status == "skipped" else int(status)
        out.append({"stage": name, "rc": rc, "seconds": int(seconds or 0), "note": note,
                    "status": "skipped" if rc is None else "ok" if rc == 0
                    else "timeout" if rc in (124, 137) else "failed"})
    return out


def test_group(classname: str, name: str) -> str:
    """Which backend a test case exercises (see the module docstring)."""
    if "test_d_step" in classname:
        return "cuda_graph"
    if "triton" in classname or "triton" in name:
        return "triton"
    return "cuda"


def read_junit(work: Path) -> dict[str, dict[str, int]]:
    counts = {g: {"passed": 0, "failed": 0, "skipped": 0} for g in TEST_GROUPS}
    for path in sorted(work.glob("junit_*.xml")):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError:  # cut by a timeout mid-write
            continue
        for case in root.iter("testcase"):
            group = counts[test_group(case.get("classname", ""), case.get("name", ""))]
            if case.find("failure") is not None or case.find("error") is not None:
                group["failed"] += 1
            elif case.find("skipped") is not None:
                group["skipped"] += 1
            else:
                group["passed"] += 1
    return counts


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def bench_rows(work: Path) -> dict[str, list[dict[str, Any]]]:
    keep = ("op", "config", "backend", "median_s", "tokens_per_s", "agreement",
            "speedup_vs_reference_loop", "speedup_vs_reference", "speedup_vs_torch_compile",
            "gemm_ratio", "error")
    out = {}
    for name in ("paper", "large", "train", "warmup"):
        doc = load_json(work / f"bench_{name}.json")
        if doc:
            out[name] = [{k: r[k] for k in keep if k in r} for r in doc.get("results", [])]
    return out


def roofline(bench: dict[str, list[dict[str, Any]]], peak_tflops: float) -> list[dict]:
    rows = []
    for stage in ("paper", "large"):
        for r in bench.get(stage, []):
            cfg = CONFIGS.get(r["config"])
            if r["op"] != "rollout" or not r.get("median_s") or cfg is None:
                continue
            flops = cfg.rollout_tokens * 2 * cfg.hidden * (cfg.vocab + 4 * (cfg.emb + cfg.hidden))
            tflops = flops / r["median_s"] / 1e12
            rows.append({"config": r["config"], "backend": r["backend"], "tflops": tflops,
                         "fraction_of_fp32_peak": tflops / peak_tflops})
    return rows


def train_run(work: Path, name: str) -> dict[str, Any] | None:
    summary = load_json(work / f"run_{name}" / "summary.json")
    if not summary:
        return None
    keep = ("device", "backend", "wall_s", "phase_s", "mle_epochs", "d_pretrain_rounds",
            "adv_batches", "nll_oracle_init", "nll_oracle_mle", "nll_oracle_adv")
    out = {k: summary[k] for k in keep if k in summary}
    if name == "paper":
        out["projection"] = project_paper(summary)
    return out


def project_paper(summary: dict[str, Any]) -> dict[str, Any] | None:
    """Each phase's seconds per unit (epoch, round, batch) times the official count."""
    phases = summary.get("phase_s") or {}
    per_unit, total = {}, 0.0
    for phase, (key, full) in PAPER_SCHEDULE.items():
        done = summary.get(key)
        if not done or phase not in phases:
            return None
        per_unit[phase] = phases[phase] / done
        total += per_unit[phase] * full
    return {"seconds_per_unit": per_unit, "full_schedule_s": total,
            "schedule": {p: n for p, (_, n) in PAPER_SCHEDULE.items()}}


def build(work: Path, dry_run: bool, budget_s: int) -> dict[str, Any]:
    stages = read_stages(work)
    tests = read_junit(work)
    bench = bench_rows(work)
    doc = {"dry_run": dry_run, "budget_s": budget_s, "env": load_json(work / "env.json"),
           "stages": stages, "tests": tests, "bench": bench,
           "roofline": roofline(bench, float(os.environ.get("GPU_PEAK_TFLOPS", "67"))),
           "train": {n: train_run(work, n) for n in ("quick", "paper")}}
    failures = [f"stage {s['stage']}: {s['status']} (rc {s['rc']})" for s in stages
                if s["status"] in ("failed", "timeout")]
    failures += [f"tests {g}: {c['failed']} failed" for g, c in tests.items() if c["failed"]]
    build_stage = next((s for s in stages if s["stage"] == "build"), None)
    if build_stage and build_stage["status"] != "ok" and build_stage["status"] != "skipped":
        failures.append("the CUDA backend did not build: its tests count as failed, not skipped")
    for stage, rows in bench.items():
        failures += [f"bench {stage}: {r['op']}/{r['backend']}: {r['error'][:120]}"
                     for r in rows if r.get("error") and not r["error"].startswith("unavailable")]
    doc["failures"] = failures
    doc["status"] = "FAIL" if failures else "PASS"
    return doc


def _f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def summary_text(doc: dict[str, Any]) -> str:
    lines = [f"gpu_check: {doc['status']}{' (dry run)' if doc['dry_run'] else ''}"]
    env = doc.get("env") or {}
    lines.append("env: " + ", ".join(f"{k} {env.get(k)}" for k in
                                     ("device", "python", "torch", "triton", "nvcc", "cores")))
    lines.append(f"stages (budget {doc['budget_s']} s):")
    for s in doc["stages"]:
        what = "skipped: " + s["note"] if s["status"] == "skipped" else \
            f"{s['status']} in {s['seconds']} s ({s['note']})"
        lines.append(f"  {s['stage']:12s} {what}")
    lines.append("tests: " + "; ".join(
        f"{g} {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped"
        for g, c in doc["tests"].items()))
    for stage in ("paper", "large", "train"):
        rows = doc["bench"].get(stage) or []
        if rows:
            lines.append(f"bench {stage}: op config backend median_s tokens/s agree "
                         "x_loop x_ref x_compile")
        for r in rows:
            if r.get("error"):
                lines.append(f"  {r['op']} {r['config']} {r['backend']}: {r['error'][:100]}")
                continue
            lines.append(
                f"  {r['op']} {r['config']} {r['backend']} {_f(r.get('median_s'), '{:.4g}')} "
                f"{_f(r.get('tokens_per_s'), '{:.3g}')} {_f(r.get('agreement'), '{:.5f}')} "
                f"{_f(r.get('speedup_vs_reference_loop'))} {_f(r.get('speedup_vs_reference'))} "
                f"{_f(r.get('speedup_vs_torch_compile'))}")
    for r in doc["roofline"]:
        lines.append(f"roofline rollout {r['config']} {r['backend']}: {r['tflops']:.3f} TFLOP/s "
                     f"= {100 * r['fraction_of_fp32_peak']:.2f}% of fp32 peak")
    for name, run in doc["train"].items():
        if not run:
            continue
        ph = run.get("phase_s", {})
        lines.append(f"train {name} ({run.get('device')}, {run.get('backend')}): wall "
                     f"{_f(run.get('wall_s'), '{:.1f}')} s, phases mle {ph.get('mle')} / "
                     f"d_pretrain {ph.get('d_pretrain')} / adv {ph.get('adv')} s; NLL_oracle "
                     f"{_f(run.get('nll_oracle_init'), '{:.3f}')} -> "
                     f"{_f(run.get('nll_oracle_mle'), '{:.3f}')} (MLE) -> "
                     f"{_f(run.get('nll_oracle_adv'), '{:.3f}')} (adversarial)")
        proj = run.get("projection")
        if proj:
            lines.append(f"  projected full paper schedule: {proj['full_schedule_s'] / 60:.1f} "
                         "min (" + ", ".join(f"{p} {v:.3g} s/unit" for p, v in
                                             proj["seconds_per_unit"].items()) + ")")
    for f in doc["failures"]:
        lines.append(f"FAILURE: {f}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("work")
    p.add_argument("--dest", required=True)
    p.add_argument("--budget", type=int, default=540)
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    work, dest = Path(args.work), Path(args.dest)
    if not work.is_dir():
        print(f"gpu_report: work folder {work} not found", file=sys.stderr)
        return 2
    doc = build(work, args.dry_run, args.budget)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "results.json").write_text(json.dumps(doc, indent=1))
    (dest / "summary.txt").write_text(summary_text(doc))
    return 0 if doc["status"] == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
