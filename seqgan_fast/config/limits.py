"""Value validation of a ``TrainConfig`` beyond its basic ranges: types, finiteness, upper
bounds, and sizes whose products fit the kernels' index types and this machine's memory.

Run by ``TrainConfig.validate`` (so at start, before any folder is written); every message
names the key. The bounds are generous (they reject what cannot work, not what is unusual).
"""
from __future__ import annotations

import math
import os
from typing import Any

from ..errors import ConfigError
from ..ops.checks import MAX_TEMPERATURE, MIN_TEMPERATURE

INT_MAX = 2**31 - 1          # the kernels index rows and tokens with int32
SEED_LIMIT = 2**64           # seeds are 64-bit Philox keys
MAX_VOCAB = 2**24
MAX_DIM = 2**16              # embedding / hidden sizes, filter counts, sequence length
MAX_ROLLOUT_ROWS = 2**32     # (T-1) * num_rollouts * batch_size: 32-bit Philox row counter
LR_MAX = 10.0                # Adam's step is ~lr per weight: beyond this nothing trains

INT_KEYS = ("oracle_seed", "num_train", "num_eval", "num_test", "max_len", "min_count",
            "vocab_size", "seq_len", "g_emb_dim", "g_hidden_dim", "d_emb_dim", "batch_size",
            "mle_epochs", "d_pretrain_rounds", "d_epochs", "d_num_negatives", "adv_batches",
            "adv_g_steps", "adv_d_rounds", "num_rollouts", "eval_every", "checkpoint_every",
            "seed")
FLOAT_KEYS = ("d_dropout_keep", "d_l2_reg", "g_lr", "g_grad_clip", "d_lr",
              "rollout_update_rate", "temperature")
STR_KEYS = ("task", "data", "tokenize", "device", "backend", "preset_name")
OPTIONAL_STR_KEYS = ("test_data", "oracle_params", "columns")
TUPLE_KEYS = ("topk", "d_filter_sizes", "d_num_filters")
# (key, upper bound) for ints; the lower bounds are TrainConfig.validate's.
INT_BOUNDS = {"vocab_size": MAX_VOCAB, "seq_len": MAX_DIM, "max_len": MAX_DIM,
              "g_emb_dim": MAX_DIM, "g_hidden_dim": MAX_DIM, "d_emb_dim": MAX_DIM,
              "num_rollouts": 2**20, "seed": SEED_LIMIT - 1, "oracle_seed": SEED_LIMIT - 1}


def _bad(key: str, value: Any, why: str) -> ConfigError:
    return ConfigError(f"bad value {value!r} for {key}: {why}")


def check_types(cfg: Any) -> None:
    """Types first, so that range checks never meet a string (a tampered config.json)."""
    for key in INT_KEYS:
        v = getattr(cfg, key)
        if isinstance(v, bool) or not isinstance(v, int):
            raise _bad(key, v, "expected an int")
    for key in FLOAT_KEYS:
        v = getattr(cfg, key)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _bad(key, v, "expected a number")
        if not math.isfinite(v):
            raise _bad(key, v, "expected a finite number")
    for key in STR_KEYS:
        if not isinstance(getattr(cfg, key), str):
            raise _bad(key, getattr(cfg, key), "expected a string")
    for key in OPTIONAL_STR_KEYS:
        v = getattr(cfg, key)
        if v is not None and not isinstance(v, str):
            raise _bad(key, v, "expected a string or none")
    if not isinstance(cfg.mask_history, bool):
        raise _bad("mask_history", cfg.mask_history, "expected true or false")
    for key in TUPLE_KEYS:
        v = getattr(cfg, key)
        if not isinstance(v, tuple) or not all(
                isinstance(x, int) and not isinstance(x, bool) for x in v):
            raise _bad(key, v, "expected a list of ints")


def physical_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_limits(cfg: Any) -> None:
    """Upper bounds, element lists and size products (after ``check_types`` and the basic
    ranges)."""
    for key, top in INT_BOUNDS.items():
        if getattr(cfg, key) > top:
            raise _bad(key, getattr(cfg, key), f"expected at most {top}")
    for key in INT_KEYS:
        if key not in INT_BOUNDS and getattr(cfg, key) > INT_MAX:
            raise _bad(key, getattr(cfg, key), f"expected at most {INT_MAX} (2**31 - 1)")
    for key in ("g_lr", "d_lr"):
        if getattr(cfg, key) > LR_MAX:
            raise _bad(key, getattr(cfg, key), f"expected a learning rate in (0, {LR_MAX:g}]")
    if not MIN_TEMPERATURE <= cfg.temperature <= MAX_TEMPERATURE:
        raise _bad("temperature", cfg.temperature,
                   f"expected a number in [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}]")
    T = cfg.seq_len if cfg.task == "oracle" else cfg.max_len
    length_key = "seq_len" if cfg.task == "oracle" else "max_len"
    if T < 2:  # refused here, not after MLE with the run folder written
        raise _bad(length_key, T, "expected at least 2 (the adversarial phase rolls out a "
                   "prefix and scores its continuation)")
    for size in cfg.d_filter_sizes:
        if not 1 <= size <= MAX_DIM:
            raise _bad("d_filter_sizes", list(cfg.d_filter_sizes),
                       f"every filter size must be in [1, {MAX_DIM}]")
    if min(cfg.d_filter_sizes) > T:
        raise _bad("d_filter_sizes", list(cfg.d_filter_sizes),
                   f"no filter fits {length_key}={T} (the discriminator would have no filter)")
    for n in cfg.d_num_filters:
        if not 1 <= n <= MAX_DIM:
            raise _bad("d_num_filters", list(cfg.d_num_filters),
                       f"every filter count must be in [1, {MAX_DIM}]")
    if not cfg.topk or min(cfg.topk) < 1:
        raise _bad("topk", list(cfg.topk), "expected positive ints")
    if cfg.task == "oracle":
        for key in ("g_emb_dim", "g_hidden_dim", "d_emb_dim"):
            if cfg.vocab_size * getattr(cfg, key) > INT_MAX:
                raise _bad("vocab_size", cfg.vocab_size,
                           f"vocab_size * {key} must be at most 2**31 - 1")
    rows = (T - 1) * cfg.num_rollouts * cfg.batch_size
    if rows > MAX_ROLLOUT_ROWS:
        key = "num_rollouts" if cfg.num_rollouts >= cfg.batch_size else "batch_size"
        raise _bad(key, getattr(cfg, key),
                   f"(length - 1) * num_rollouts * batch_size = {rows} rollout rows exceed "
                   "2**32")
    if cfg.task == "oracle" and cfg.batch_size > cfg.num_train:
        # the data cannot fill a batch; each adversarial step would still roll out
        # (seq_len - 1) * num_rollouts * batch_size completions (30 M at batch_size=100000)
        raise _bad("batch_size", cfg.batch_size, f"a batch cannot be larger than the training "
                   f"data: num_train={cfg.num_train} sequences (lower batch_size or raise "
                   "num_train)")
    mem = physical_memory_bytes()
    if mem is None:
        return
    needs = {  # int64 token tensors that are materialised whole
        "num_rollouts": rows * T * 8 * 2,  # completions + their scores' inputs
        "num_train": cfg.num_train * T * 8 if cfg.task == "oracle" else 0,
        "d_num_negatives": cfg.d_num_negatives * T * 8 * 3,  # negatives, positives, concat
        "num_eval": min(cfg.num_eval, 4096) * T * 8,
    }
    for key, nbytes in needs.items():
        if nbytes > mem:
            if key == "num_rollouts" and cfg.batch_size > cfg.num_rollouts:
                key = "batch_size"
            raise _bad(key, getattr(cfg, key), f"needs about {_gib(nbytes)} of memory, more "
                       f"than this machine's {_gib(mem)}")
