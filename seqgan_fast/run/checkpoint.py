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

Integrity: ``state.json`` records the SHA-256 of every tensor file (``digests``), checked on
load, and no tensor may be NaN or inf (refused on save and on load); ``LATEST`` must name a
checkpoint folder inside ``checkpoints/``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError, NonFiniteCheckpointError
from ..ops.finite import first_non_finite

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LATEST = "LATEST"
STATE = "state.json"
TMP_PREFIX = ".tmp-"  # unfinished writes (atomic_write_*, save_checkpoint, plots)
_NAME = re.compile(r"[0-9]{6,}")  # checkpoint folder names, as save_checkpoint writes them






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
    return folder / f"{TMP_PREFIX}{name}.{os.getpid()}.{secrets.token_hex(4)}"


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
        state.setdefault(_param_index(name, pid), {})[key] = t
    check_optimizer_state(opt, state, prefix)
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})


def _param_index(name: str, pid: str) -> int:
    try:
        return int(pid)
    except ValueError:
        raise CheckpointError(f"optimizer tensor {name!r}: bad parameter index") from None


def check_optimizer_state(opt: torch.optim.Optimizer, state: dict[int, dict[str, torch.Tensor]],
                          prefix: str) -> None:
    """Per-parameter tensors must match their parameter's shape (``step`` is a scalar)."""
    params = [p for group in opt.param_groups for p in group["params"]]
    for pid, entries in state.items():
        if not 0 <= pid < len(params):
            raise CheckpointError(f"optimizer tensors {prefix}.{pid}.*: no parameter {pid} "
                                  f"(the optimizer has {len(params)})")
        for key, t in entries.items():
            want = () if key == "step" else tuple(params[pid].shape)
            ok = t.numel() == 1 if key == "step" else tuple(t.shape) == want
            if not ok:
                raise CheckpointError(f"optimizer tensor {prefix}.{pid}.{key} has shape "
                                      f"{tuple(t.shape)}, expected {want}")


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
    renamed = False  # final holds the new checkpoint, which LATEST does not name yet
    try:
        tmp.mkdir()
        digests = {}
        for group, sd in tensors.items():
            flat = {k: v.detach().cpu().contiguous() for k, v in sd.items()}
            _check_finite(flat, f"checkpoint group {group!r}", NonFiniteCheckpointError)
            save_file(flat, str(tmp / f"{group}.safetensors"))
            digests[group] = file_digest(tmp / f"{group}.safetensors")
        (tmp / STATE).write_text(json.dumps({**state, "groups": sorted(tensors),
                                             "digests": digests}, indent=2,
                                            sort_keys=True) + "\n", encoding="utf-8")
        if final.exists():  # left by a crash between the rename and LATEST: not referenced
            _remove(final)
        os.replace(tmp, final)
        renamed = True
        atomic_write_text(root / LATEST, name + "\n")
    except (OSError, SafetensorError) as exc:  # a full disk, a quota, a lost mount
        _remove(final if renamed else tmp)
        kept = "the previous checkpoint is kept" if (root / LATEST).exists() else \
            "no checkpoint had been written yet"
        raise CheckpointError(f"cannot write a checkpoint in {root}: {_io_reason(exc)}; "
                              f"{kept}") from None
    except BaseException:  # also SIGINT / SIGTERM (the CLI turns both into exceptions)
        _remove(final if renamed else tmp)
        raise
    for old in root.iterdir():  # older checkpoints and stale temporaries
        if old.name not in (name, LATEST):
            _remove(old)
    log.debug("checkpoint %s written", final)
    return final


def _io_reason(exc: BaseException) -> str:
    """An I/O error's reason in a few words (no file names: the caller names the folder)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The folder named by ``checkpoints/LATEST``, or None if the run has no checkpoint."""
    root = Path(run_dir) / CHECKPOINT_DIR
    file = root / LATEST
    if file.is_symlink():  # LATEST is written in place, never linked: a link leads elsewhere
        raise CheckpointError(f"{file} is a symbolic link; expected a one-line file naming the "
                              "newest checkpoint (such as 000007)")
    try:
        name = file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise CheckpointError(f"{file} is a folder, expected a one-line file naming the "
                              "newest checkpoint") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{file} is not text (expected a checkpoint name such as "
                              "000007)") from None
    except OSError as exc:
        raise CheckpointError(f"{file}: unreadable ({exc.strerror or exc})") from None
    if not _NAME.fullmatch(name):  # also rejects ../x, absolute paths and several lines
        # never echoed: LATEST may be any file (a file's contents are not printed)
        raise CheckpointError(f"{file} does not hold the name of a checkpoint folder: its "
                              f"text is not a checkpoint folder inside {root} (expected one "
                              "line such as 000007)")
    path = root / name
    if path.is_symlink() or not (path / STATE).is_file():
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
    except RecursionError:
        raise CheckpointError(f"{path / STATE}: unreadable checkpoint state (nested too "
                              "deeply to be a checkpoint's state)") from None
    _check_index(state, path / STATE)
    tensors = {}
    for group in groups if groups is not None else state["groups"]:
        file = path / f"{group}.safetensors"
        if group not in state["groups"]:
            raise CheckpointError(f"{path / STATE}: no tensor group {group!r} in 'groups'")
        if group not in state["digests"]:
            raise CheckpointError(f"{path / STATE}: no digest for group {group!r} in 'digests'")
        try:
            digest = file_digest(file)
        except OSError as exc:
            raise CheckpointError(f"{file}: unreadable checkpoint tensors ({exc})") from exc
        if digest != state["digests"][group]:
            raise CheckpointError(f"{file}: corrupted (its SHA-256 does not match the digest "
                                  f"recorded in {STATE})")
        try:
            tensors[group] = load_file(str(file), device="cpu")
        except Exception as exc:  # safetensors raises its own error type
            raise CheckpointError(f"{file}: unreadable checkpoint tensors ({exc})") from exc
        _check_finite(tensors[group], str(file), CheckpointError)
    return tensors, state


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_index(state: Any, where: Path) -> None:
    """The part of ``state.json`` this module relies on: ``groups`` and ``digests``."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: expected a JSON object, got {type(state).__name__}")
    groups = state.get("groups")
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise CheckpointError(f"{where}: key 'groups' must be a list of names, got "
                              f"{groups!r:.80}")
    digests = state.get("digests")
    if not isinstance(digests, dict) or not all(
            isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for v in digests.values()):
        raise CheckpointError(f"{where}: key 'digests' must map each group to a SHA-256 (hex); "
                              f"got {digests!r:.80} (written by an older version?)")


def _check_finite(tensors: dict[str, torch.Tensor], where: str,
                  error: type[Exception]) -> None:

    bad = first_non_finite(tensors.items())
    if bad is not None:
        raise error(f"{where}: tensor {bad!r} holds NaN, inf or values of magnitude >= "
                    "2**64")


def clear_checkpoints(run_dir: str | os.PathLike) -> None:
    """Remove a run's checkpoints (when a new run replaces an old one in the same folder)."""
    _remove(Path(run_dir) / CHECKPOINT_DIR)
