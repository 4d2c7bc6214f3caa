"""Ratios within one run, and the readable tables of a run: the plain one printed after it and
the Markdown one the docs' figures are pasted from.

    python benchmarks/report.py docs/bench/cpu-avx512/paper.json [more.json ...] [--markdown]
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

GEMM = "gemm_floor"


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Per (op, config): speedups against reference_loop, reference and torch_compile, and
    time / GEMM floor.

    speedup_vs_X = median_s(X) / median_s(row); gemm_ratio = median_s(row) / median_s(GEMM).
    Rows without a time (errors) get None.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["op"], r["config"]), []).append(r)
    for group in groups.values():
        med = {r["backend"]: r.get("median_s") for r in group if r.get("median_s")}
        for r in group:
            t = r.get("median_s")
            for base in ("reference_loop", "reference", "torch_compile"):
                r[f"speedup_vs_{base}"] = med[base] / t if t and base in med else None
            r["gemm_ratio"] = t / med[GEMM] if t and GEMM in med and r["backend"] != GEMM \
                else None
    # the g_cell axis: a non-LSTM row's time relative to the LSTM's (same op, size, backend)
    lstm = {(r["op"], r.get("config_base", r["config"]), r["backend"]): r.get("median_s")
            for r in rows if r.get("cell", "lstm") == "lstm" and r.get("median_s")}
    for r in rows:
        if r.get("cell", "lstm") != "lstm":
            base = lstm.get((r["op"], r.get("config_base"), r["backend"]))
            t = r.get("median_s")
            r["time_vs_lstm"] = t / base if t and base else None


def _fmt_rate(x: float | None) -> str:
    if not x:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _fmt_x(x: float | None) -> str:
    return f"{x:.3g}x" if x else "-"


def _fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x * 1e3:.3g} ms" if x < 1 else f"{x:.3g} s"


def _fmt_mem(x: int | None) -> str:
    return "-" if x is None else f"{x / 2**20:.1f}"


def _machine(m: dict[str, Any]) -> str:
    """The machine block in words: what every table of a run says above it."""
    return (f"{m.get('device_name', '?')} ({m.get('device')}), {m.get('torch_threads')} "
            f"threads, torch {m.get('torch')}, cpp CPU path {m.get('cpu_isa')} (best here: "
            f"{m.get('cpu_isa_best')}), malloc {m.get('malloc', '?')}")


def _projection(r: dict[str, Any]) -> str:
    """A schedule row's projected paper-preset wall time, by phase."""
    p, ph = r["projected_s"], r["phases_s"]
    return (f"total {p['total'] / 3600:.2f} h = MLE {p['mle'] / 3600:.2f} h + D pre-training "
            f"{p['d_pretrain'] / 3600:.2f} h + adversarial {p['adversarial'] / 3600:.2f} h; "
            f"one adversarial batch {p['adv_batch']:.1f} s (phases: "
            + ", ".join(f"{k} {v:.3g} s" for k, v in ph.items()) + ")")


def load_doc(path: str) -> dict[str, Any]:
    """A saved ``seqgan-fast bench`` JSON; ValueError naming ``path`` if it is not one."""
    with open(path) as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or doc.get("schema") != 1 \
            or not isinstance(doc.get("results"), list):
        raise ValueError(f"{path}: not a seqgan_fast benchmark file (schema 1)")
    return doc


def format_table(doc: dict[str, Any]) -> str:
    """A plain-text table of the JSON document's results, one block per (op, config)."""
    head = ("op", "config", "backend", "median", "min", "tokens/s", "vs loop", "vs ref",
            "/GEMM", "/LSTM", "peak MiB", "runs")
    lines = []
    rows = doc["results"]
    body = []
    for r in rows:
        if r.get("error"):
            continue
        body.append((r["op"], r["config"], r["backend"], _fmt_s(r.get("median_s")),
                     _fmt_s(r.get("min_s")), _fmt_rate(r.get("tokens_per_s")),
                     _fmt_x(r.get("speedup_vs_reference_loop")),
                     _fmt_x(r.get("speedup_vs_reference")), _fmt_x(r.get("gemm_ratio")),
                     _fmt_x(r.get("time_vs_lstm")), _fmt_mem(r.get("peak_mem_bytes")),
                     str(r.get("runs", "-"))))
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body, strict=True)]
    fmt = "  ".join(f"{{:{'<' if i < 3 else '>'}{w}}}" for i, w in enumerate(widths))
    m = doc.get("machine", {})
    lines.append(f"seqgan_fast benchmarks on {_machine(m)}, "
                 f"load {m.get('loadavg_start')} -> {m.get('loadavg_end')}")
    lines.append(fmt.format(*head))
    lines.append("  ".join("-" * w for w in widths))
    prev = None
    for b in body:
        if prev is not None and b[:2] != prev:
            lines.append("")
        lines.append(fmt.format(*b))
        prev = b[:2]
    sched = [r for r in rows if r.get("projected_s")]
    if sched:
        lines.append("")
        lines.append("projected paper-preset wall time from measured phase costs (schedule):")
        for r in sched:
            lines.append(f"  {r['config']}/{r['backend']}: {_projection(r)}")
    errors = [r for r in rows if r.get("error")]
    if errors:
        lines.append("")
        lines.append("failed or skipped:")
        for r in errors:
            lines.append(f"  {r['op']}/{r['config']}/{r['backend']}: {r['error']}")
    lines.append("")
    lines.append("tokens/s: sampled tokens per second (d_epoch: 20,000*T sequence tokens); "
                 "vs loop / vs ref: speedup over reference_loop / reference (median times); "
                 "/GEMM: time over the bare output-projection GEMM for the same tokens; "
                 "/LSTM: a GRU row's time over the LSTM row's (same op, size, backend).")
    return "\n".join(lines)


def _md_x(x: float | None) -> str:
    return f"{x:.3g}×" if x else "—"


def markdown_table(doc: dict[str, Any]) -> str:
    """The JSON document's timed rows as one Markdown table (the docs' layout), the machine
    line above it; a `cpp` row names the ISA path it ran (``cpp (avx512)``)."""
    rows = [r for r in doc["results"] if r.get("median_s") and not r.get("error")]
    m = doc.get("machine", {})
    cols = [("op", lambda r: r["op"])]
    if len({r["config"] for r in rows}) > 1:
        cols.append(("config", lambda r: r["config"]))
    cols += [("backend", lambda r: f"cpp ({m['cpu_isa']})" if r["backend"] == "cpp"
             and m.get("cpu_isa") else r["backend"]),
            ("median", lambda r: _fmt_s(r["median_s"])),
            ("tokens/s", lambda r: _fmt_rate(r.get("tokens_per_s")))]
    for key, name in (("speedup_vs_reference_loop", "vs `reference_loop`"),
                      ("speedup_vs_reference", "vs `reference`"), ("gemm_ratio", "/GEMM"),
                      ("time_vs_lstm", "/LSTM")):
        if any(r.get(key) for r in rows):
            cols.append((name, lambda r, key=key: _md_x(r.get(key))))
    lines = [f"{_machine(m)}; `{' '.join(doc.get('command') or ['?'])}`", "",
             "| " + " | ".join(c[0] for c in cols) + " |",
             "| " + " | ".join("---" if name in ("op", "config", "backend") else "---:"
                               for name, _ in cols) + " |"]
    lines += ["| " + " | ".join(f(r) for _, f in cols) + " |" for r in rows]
    lines += [f"\n`schedule` {r['backend']}, projected full `paper` preset: {_projection(r)}"
              for r in rows if r.get("projected_s")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="print the table of saved benchmark JSON file(s)")
    p.add_argument("json", nargs="+", help="benchmark JSON file(s) from seqgan-fast bench")
    p.add_argument("--markdown", action="store_true", help="Markdown (the docs' layout)")
    args = p.parse_args(argv)
    for i, path in enumerate(args.json):
        try:
            doc = load_doc(path)
            text = markdown_table(doc) if args.markdown else format_table(doc)
        except OSError as exc:
            print(f"report: {path}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        except (ValueError, KeyError, TypeError) as exc:
            print(f"report: {exc}", file=sys.stderr)
            return 2
        print(("\n" if i else "") + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
