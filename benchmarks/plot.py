"""Bar chart of tokens/s per backend for every (op, config) of one or more benchmark JSONs.

    python benchmarks/plot.py out.json [more.json ...] -o bench.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from report import load_doc  # this folder (plot.py runs as a script)

BACKEND_ORDER = ("reference_loop", "reference", "torch_compile", "cpp", "triton", "cuda", "any",
                 "gemm_floor")


def load_rows(paths: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Timed rows of the given JSON files, and each file's machine in words (device and the
    cpp CPU path, e.g. ``cpu avx512``); a config name gets its file's device appended when
    several files are plotted together (e.g. ``paper/cpu``, ``paper/cuda``)."""
    rows, machines = [], []
    for path in paths:
        doc = load_doc(path)
        m = doc.get("machine", {})
        dev = m.get("device", "?")
        machines.append(" ".join(str(v) for v in (dev, m.get("cpu_isa")) if v))
        for r in doc["results"]:
            if r.get("tokens_per_s"):
                rows.append({**r, "config": f"{r['config']}/{dev}" if len(paths) > 1
                             else r["config"]})
    return rows, machines


def plot(rows: list[dict[str, Any]], out: str, title: str | None = None) -> None:
    """Grouped bars, log scale: one group per (op, config), one bar per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((r["op"], r["config"]) for r in rows))
    present = {r["backend"] for r in rows}
    order = {b: i for i, b in enumerate(BACKEND_ORDER)}
    # the known backends in their order, a forced ISA path after its backend (cpp@avx2 after
    # cpp), anything else after them, the GEMM floor last
    backends = sorted(present, key=lambda b: (b == "gemm_floor",
                                              order.get(b.split("@")[0], len(order)), b))
    value = {(r["op"], r["config"], r["backend"]): r["tokens_per_s"] for r in rows}
    width = 0.8 / max(len(backends), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(groups) + 3), 4.5))
    for i, b in enumerate(backends):
        xs, ys = [], []
        for g, key in enumerate(groups):
            v = value.get((*key, b))
            if v:
                xs.append(g + (i - (len(backends) - 1) / 2) * width)
                ys.append(v)
        hatch = "//" if b == "gemm_floor" else None
        ax.bar(xs, ys, width, label=b, hatch=hatch)
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{op}\n{cfg}" for op, cfg in groups])
    ax.set_ylabel("tokens / s (log)")
    ax.set_title(title or "seqgan_fast: throughput per backend")
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("json", nargs="+", help="benchmark JSON file(s) from seqgan-fast bench")
    p.add_argument("-o", "--out", default="bench.png", help="PNG to write (bench.png)")
    p.add_argument("--title", default=None)
    args = p.parse_args(argv)
    try:
        rows, machines = load_rows(args.json)
    except (OSError, ValueError, KeyError) as exc:
        print(f"plot: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print("plot: no timed results in the input", file=sys.stderr)
        return 1
    title = args.title or ("seqgan_fast: throughput per backend ("
                           + ", ".join(dict.fromkeys(machines)) + ")")
    plot(rows, args.out, title)
    print(f"wrote {Path(args.out).resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
