"""``seqgan-fast recommend`` at scale: wall time, users/s and peak memory for every user of an
interaction file, and for a synthetic file of many users drawn from the run's items.

    python benchmarks/recommend_scale.py --run runs/instacart [--users 100000] [-k 10]
        [--json out.json]

Each measurement runs the command in a fresh process (``python -m seqgan_fast recommend``,
wall time including interpreter start and file parsing) and reads its peak resident set from
``resource.getrusage(RUSAGE_CHILDREN)`` of a wrapper whose only child it is; the synthetic file
gives every user 5-60 items drawn uniformly from the run's vocabulary (order numbers as the
chronology), so its histories are as long as real ones but the memory bound is exercised at
``--users`` users. The CSV outputs are written to a temporary folder and deleted.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


# A wrapper process per measurement: its only child is the command, so RUSAGE_CHILDREN's
# ru_maxrss (KiB on Linux) is that command's peak resident set.
_WRAP = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
         "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
         "print(json.dumps({'rc': p.returncode, 'wall_s': time.perf_counter() - t, "
         "'stderr': p.stderr, "
         "'peak_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")


def _run(args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", _WRAP, sys.executable, "-m", "seqgan_fast",
                           "recommend", *args], env=env, capture_output=True, text=True,
                          check=True)
    r = json.loads(proc.stdout)
    if r["rc"] != 0:
        raise SystemExit(f"recommend failed ({r['rc']}): {r['stderr'].strip()}")
    return {"wall_s": round(r["wall_s"], 3), "peak_rss_mib": round(r["peak_kib"] / 1024, 1),
            "stderr": r["stderr"].strip().splitlines()[-1]}


def _synthetic(path: Path, items: list[str], users: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    rows = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write("user_id,order_number,product_id\n")
        for u in range(users):
            for t in range(rng.randint(5, 60)):
                f.write(f"u{u},{t},{rng.choice(items)}\n")
                rows += 1
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a trained recsys run folder")
    p.add_argument("--users", type=int, default=100_000, help="users of the synthetic file")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--json", help="write the figures here")
    a = p.parse_args(argv)
    itos = json.loads((Path(a.run) / "items.json").read_text(encoding="utf-8"))["itos"][2:]
    out: dict = {"machine": {"cpu": platform.processor() or platform.machine(),
                             "cores": os.cpu_count()}, "k": a.k}
    with tempfile.TemporaryDirectory() as tmp:
        real = _run(["--run", a.run, "-k", str(a.k), "--out", f"{tmp}/real.csv"])
        real["users"] = sum(1 for _ in open(f"{tmp}/real.csv", encoding="utf-8")) // a.k
        out["run_data"] = real
        syn = Path(tmp) / "synthetic.csv"
        rows = _synthetic(syn, itos, a.users)
        res = _run(["--run", a.run, "-k", str(a.k), "--data", str(syn), "--out",
                    f"{tmp}/syn.csv"])
        res.update(users=a.users, rows=rows)
        out["synthetic"] = res
    for name in ("run_data", "synthetic"):
        r = out[name]
        r["users_per_s"] = round(r["users"] / r["wall_s"], 1)
        print(f"{name}: {r['users']} users in {r['wall_s']} s ({r['users_per_s']} users/s, "
              f"process start and file parsing included), peak RSS {r['peak_rss_mib']} MiB")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
