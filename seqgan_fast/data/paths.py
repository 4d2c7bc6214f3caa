"""The one place that finds the shared data sets (oracle weights, COCO, poems, Instacart).

``SEQGAN_FAST_DATA`` wins; otherwise ``../shared/data`` next to the repository checkout
(then next to the working directory). The data are never copied into the project.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "SEQGAN_FAST_DATA"


def data_dir() -> Path:
    """The shared data folder (it may not exist: callers check, tests skip)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    for base in (repo, Path.cwd()):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return repo.parent / "shared" / "data"


def data_file(*parts: str) -> Path:
    """Path to a file in the shared data folder; FileNotFoundError names where it looked."""
    path = data_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"data file not found: {path} (set {ENV_VAR} to the folder holding the data)")
    return path
