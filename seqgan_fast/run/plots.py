"""Training curves as a PNG (matplotlib's Agg canvas; pyplot's global state is not touched)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .checkpoint import TMP_PREFIX

_SKIP = ("phase", "epoch", "time_s")


def plot_curves(records: list[dict[str, Any]], path: str | os.PathLike) -> Path | None:
    """One panel per numeric metric of ``records`` (metrics.jsonl rows) against training
    progress: MLE epochs, then adversarial batches after a dashed line. Written atomically.
    Returns the path, or None when there is nothing to draw."""
    # local: matplotlib is heavy to import, and only the end of a phase draws
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = sorted({k for r in records for k, v in r.items()
                   if k not in _SKIP and isinstance(v, (int, float)) and not isinstance(v, bool)})
    if not keys:
        return None
    mle_end = max((r["epoch"] for r in records if r["phase"] == "mle"), default=0)

    def x_of(r: dict[str, Any]) -> float:
        return r["epoch"] + (mle_end if r["phase"] == "adv" else 0)

    cols = min(3, len(keys))
    rows = (len(keys) + cols - 1) // cols
    fig = Figure(figsize=(4.5 * cols, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(rows, cols, i + 1)
        start: list[tuple[float, float]] = []
        for phase, style in (("mle", "o-"), ("adv", "s-")):
            pts = [(x_of(r), r[key]) for r in records
                   if r["phase"] == phase and isinstance(r.get(key), (int, float))]
            if phase == "mle":
                start = pts[-1:]  # the adversarial curve starts where MLE ended
            elif pts:
                pts = start + pts
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, style, markersize=3, label="MLE" if phase == "mle" else "SeqGAN")
        if any(r["phase"] == "adv" for r in records):
            ax.axvline(mle_end, color="gray", linestyle="--", linewidth=0.8)
        ax.set_title(key)
        ax.set_xlabel("MLE epochs, then adversarial batches")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
