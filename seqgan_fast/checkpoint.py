"""Checkpoints: safetensors for tensors, JSON for the rest; written atomically, never pickled.

Layout of a run folder's checkpoints::

    checkpoints/LATEST            name of the newest complete checkpoint (one line)
    checkpoints/000007/           one checkpoint: <name>.safetensors per tensor group
                                  (generator, rollout, discriminator, optimizers, rng)
                                  and state.json (phase, counters, seeds, model sizes)

A checkpoint is assembled in a hidden temporary folder, renamed into place with
``os.replace`` and only then named in ``LATEST`` (itself written to a temporary file and
``os.replace``-d), so a crash at any moment leaves the previous checkpoint intact and
readable. Older checkpoints are removed after ``LATEST`` moves on.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LATEST = "LATEST"
STATE = "state.json"
_TMP_PREFIX = ".tmp-"


class CheckpointError(RuntimeError):
    """No usable checkpoint (missing, incomplete or unreadable); the message names the path."""


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder + ``os.replace``."""
    path = Path(path)
    tmp = _temp_name(path.parent, path.name)
    try:
        with open(tmp, "x", encoding="utf-8") as f:  # "x": never clobber; umask applies
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _temp_name(folder: Path, name: str) -> Path:
    """A fresh hidden name next to the final one (same file system, so os.replace is atomic)."""
    return folder / f"{_TMP_PREFIX}{name}.{os.getpid()}.{secrets.token_hex(4)}"


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


# -- optimizer state <-> flat tensors -------------------------------------------------------
def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    """An optimizer's per-parameter state as flat ``prefix.<param index>.<key>`` tensors."""
    out = {}
    for pid, st in opt.state_dict()["state"].items():
        for key, value in st.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            out[f"{prefix}.{pid}.{key}"] = t.detach().cpu().contiguous()
    return out


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                   prefix: str) -> None:
    """Restore ``optimizer_tensors(opt, prefix)``; hyper-parameters stay as constructed."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        head, _, rest = name.partition(".")
        if head != prefix:
            continue
        pid, _, key = rest.partition(".")
        state.setdefault(int(pid), {})[key] = t
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})


# -- save / load ----------------------------------------------------------------------------
def save_checkpoint(run_dir: str | os.PathLike, index: int,
                    tensors: dict[str, dict[str, torch.Tensor]], state: dict[str, Any]) -> Path:
    """Write checkpoint number ``index``: ``tensors`` maps group name -> state dict.

    Returns the checkpoint folder. Atomic (see module docstring); on error nothing of the
    new checkpoint is left behind and ``LATEST`` still names the previous one.
    """
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    name = f"{index:06d}"
    final = root / name
    tmp = _temp_name(root, name)
    try:
        tmp.mkdir()
        for group, sd in tensors.items():
            flat = {k: v.detach().cpu().contiguous() for k, v in sd.items()}
            save_file(flat, str(tmp / f"{group}.safetensors"))
        (tmp / STATE).write_text(json.dumps({**state, "groups": sorted(tensors)}, indent=2,
                                            sort_keys=True) + "\n", encoding="utf-8")
        if final.exists():  # left by a crash between the rename and LATEST: not referenced
            _remove(final)
        os.replace(tmp, final)
        atomic_write_text(root / LATEST, name + "\n")
    except BaseException:
        _remove(tmp)
        raise
    for old in root.iterdir():  # older checkpoints and stale temporaries
        if old.name not in (name, LATEST):
            _remove(old)
    log.debug("checkpoint %s written", final)
    return final


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The folder named by ``checkpoints/LATEST``, or None if the run has no checkpoint."""
    root = Path(run_dir) / CHECKPOINT_DIR
    try:
        name = (root / LATEST).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    path = root / name
    if not name or not (path / STATE).is_file():
        raise CheckpointError(f"{root / LATEST} names {name!r}, which is not a complete "
                              "checkpoint")
    return path


def load_checkpoint(path: str | os.PathLike,
                    groups: tuple[str, ...] | None = None
                    ) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Read a checkpoint folder: (group -> CPU tensors, state). ``groups`` limits what is read."""
    path = Path(path)
    try:
        state = json.loads((path / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path / STATE}: unreadable checkpoint state ({exc})") from exc
    tensors = {}
    for group in groups if groups is not None else state.get("groups", []):
        file = path / f"{group}.safetensors"
        try:
            tensors[group] = load_file(str(file), device="cpu")
        except Exception as exc:  # safetensors raises its own error type
            raise CheckpointError(f"{file}: unreadable checkpoint tensors ({exc})") from exc
    return tensors, state


def clear_checkpoints(run_dir: str | os.PathLike) -> None:
    """Remove a run's checkpoints (when a new run replaces an old one in the same folder)."""
    _remove(Path(run_dir) / CHECKPOINT_DIR)
