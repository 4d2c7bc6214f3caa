"""Checks on a run folder made before training touches it: can it be written, is the saved
training state well formed, is ``metrics.jsonl`` intact. Each failure is one line naming the
path, key or line (ConfigError / CheckpointError)."""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..config import ConfigError
from .checkpoint import CheckpointError, latest_checkpoint

log = logging.getLogger(__name__)
PHASES = ("mle", "d_pretrain", "adv", "done")
_COUNTERS = ("mle_epoch", "d_round", "adv_batch", "seed_calls", "metrics_lines", "num_evals",
             "save_index")
_MODEL_KEYS = ("vocab_size", "seq_len", "start_token")
GROUPS = ("discriminator", "generator", "optimizers", "rng", "rollout")
STATE_FORMAT = 1  # RunState._state_json's "format"
MAX_COUNT = 2**53  # counters: exact in a float (JSON); far beyond any run
MAX_SECONDS = 1e9  # elapsed_s, phase_s.*: 31 years
# Selection records (RunState.consider_best): a paired z may be +-inf by design (metrics.py)
_SELECTION = ("best", "not_selected")


def check_output_folder(out: str | os.PathLike) -> None:
    """``out`` exists as a writable folder, or can be created: its nearest existing ancestor
    must be a folder in which a (removed at once) probe folder can be made. Nothing is left
    behind."""
    out = Path(out)
    _refuse_shared_folder(out)
    probe_in = out
    while not probe_in.exists():
        if probe_in.parent == probe_in:
            break
        probe_in = probe_in.parent
    if probe_in.exists() and not probe_in.is_dir():
        what = "exists and is not a folder" if probe_in == out else \
            f"cannot be created: {probe_in} is a file"
        raise ConfigError(f"output path {out} {what}")
    try:
        probe = tempfile.mkdtemp(prefix=".seqgan-probe-", dir=probe_in)
    except OSError as exc:
        raise ConfigError(f"output folder {out} cannot be written ({probe_in}: "
                          f"{exc.strerror or exc})") from None
    shutil.rmtree(probe, ignore_errors=True)


def _refuse_shared_folder(out: Path) -> None:
    """A run writes config.json, checkpoints/, ... straight into its folder (and
    ``--overwrite`` clears them): never a file system root or the user's home folder."""
    where = out.expanduser().resolve()
    if where.parent == where:
        raise ConfigError(f"output folder {out} is the file system root; give the run a folder "
                          "of its own (e.g. runs/NAME)")
    try:
        home = Path.home().resolve()
    except (RuntimeError, KeyError, OSError):  # no HOME and no passwd entry
        return
    if where == home:
        raise ConfigError(f"output folder {out} is your home folder; give the run a folder of "
                          "its own (e.g. runs/NAME)")


def _key_error(where: Path, key: str, why: str) -> CheckpointError:
    return CheckpointError(f"{where}: key {key!r} {why}")


def check_run_state(state: dict[str, Any], where: Path,
                    groups: tuple[str, ...] = GROUPS) -> None:
    """The keys ``SeqGANTrainer`` and ``seqgan-fast sample`` read from ``state.json``
    (``groups``: the tensor groups it must hold; the best-generator snapshot holds only
    ``generator``)."""
    def need(key: str, types: type | tuple[type, ...], what: str) -> Any:
        if key not in state:
            raise _key_error(where, key, "is missing")
        v = state[key]
        if isinstance(v, bool) or not isinstance(v, types):
            raise _key_error(where, key, f"must be {what}, got {v!r:.60}")
        return v

    _check_numbers({k: v for k, v in state.items() if k not in (*_SELECTION, "config")}, where)
    # the run's settings: finite here; their ranges are TrainConfig's (a d_l2_reg of 1e38 is a
    # legal, if unwise, setting whose run the finite-value guard stops)
    _check_numbers(state.get("config"), where, "config", bounded=False)
    if isinstance(state.get("best"), dict):  # the selected generator's value: compared
        v = state["best"].get("value")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            raise _key_error(where, "best.value", f"must be a number, got {v!r:.40}")
    fmt = need("format", int, f"the int {STATE_FORMAT}")
    if fmt != STATE_FORMAT:
        raise _key_error(where, "format", f"is {fmt}; this version reads format "
                         f"{STATE_FORMAT} only (written by a newer version?)")
    phase = need("phase", str, "a string")
    if phase not in PHASES:
        raise _key_error(where, "phase", f"is {phase!r:.40}; expected one of {', '.join(PHASES)}")
    for key in _COUNTERS:
        if not 0 <= need(key, int, "an int >= 0") <= MAX_COUNT:
            raise _key_error(where, key, f"must be an int in [0, 2**53], got {state[key]:.6g}")
    elapsed = need("elapsed_s", (int, float), "a number")
    if not 0 <= elapsed <= MAX_SECONDS:
        raise _key_error(where, "elapsed_s", f"must be a number of seconds in [0, "
                         f"{MAX_SECONDS:g}], got {elapsed:.6g}")
    phase_s = need("phase_s", dict, "an object")
    for name in ("mle", "d_pretrain", "adv"):
        v = phase_s.get(name)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _key_error(where, f"phase_s.{name}", f"must be a number, got {v!r:.40}")
        if not 0 <= v <= MAX_SECONDS:
            raise _key_error(where, f"phase_s.{name}", f"must be a number of seconds in [0, "
                             f"{MAX_SECONDS:g}], got {v:.6g}")
    missing = sorted(set(groups) - set(need("groups", list, "a list")))
    if missing:
        raise _key_error(where, "groups", f"lacks {missing}")
    need("config", dict, "an object")
    need("task", str, "a string")
    model = need("model", dict, "an object")
    for key in _MODEL_KEYS + ("g_emb_dim", "g_hidden_dim"):
        v = model.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise _key_error(where, f"model.{key}", f"must be an int >= 0, got {v!r:.40}")
    if not 0 <= model["start_token"] < max(model["vocab_size"], 1):
        raise _key_error(where, "model.start_token", "must be below model.vocab_size")


def _check_numbers(value: Any, where: Path, key: str = "", bounded: bool = True) -> None:
    """Every number anywhere in ``value`` (part of ``state.json``) is finite (json reads NaN
    and Infinity) and, where ``bounded``, no larger in magnitude than 2**64 (nothing a run
    records is; 1e30 would be carried into summary.json and the next checkpoint)."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_numbers(v, where, f"{key}.{k}" if key else str(k), bounded)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_numbers(v, where, f"{key}[{i}]", bounded)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise _key_error(where, key, f"is {value}; every number must be finite")
        if bounded and abs(value) > 2**64:
            raise _key_error(where, key, f"is {value:.6g}; no number of a run's state exceeds "
                             "2**64 in magnitude")


def check_metrics_file(path: Path, lines_needed: int) -> None:
    """The first ``lines_needed`` lines of ``metrics.jsonl`` (those a resume keeps) must be
    JSON objects with a phase and an epoch."""
    if lines_needed == 0:
        return
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing; the checkpoint expects {lines_needed} "
                          "lines") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc})") from None
    if len(lines) < lines_needed:
        raise ConfigError(f"{path} has {len(lines)} lines; the checkpoint expects "
                          f"{lines_needed}")
    for number, line in enumerate(lines[:lines_needed], 1):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            record = None
        if not (isinstance(record, dict) and isinstance(record.get("phase"), str)
                and isinstance(record.get("epoch"), int)):
            raise ConfigError(f"{path}:{number}: not a metrics record (a JSON object with "
                              "phase and epoch)")


_RUN_FILES = ("config.json", "metrics.jsonl", "summary.json", "curves.png", "checkpoints")


def restart_plan(out: Path, resume: bool, overwrite: bool) -> tuple[bool, bool]:
    """(resume, overwrite) as the trainer should apply them to ``out``.

    A run stopped before its first checkpoint has nothing worth keeping: ``--resume`` and a
    plain rerun both start it over (logged) instead of failing. ``resume`` together with
    ``overwrite`` is a contradiction and refused.
    """
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other (continue the run, or "
                          "replace it)")
    if overwrite or not any((out / n).exists() for n in _RUN_FILES):
        return resume, overwrite
    if (out / "summary.json").exists() or latest_checkpoint(out) is not None:
        return resume, overwrite
    if resume and not (out / "config.json").is_file():
        return resume, overwrite  # not a run folder at all: "nothing to resume"
    log.warning(
        "%s holds a run stopped before its first checkpoint; starting it over", out)
    return False, True
