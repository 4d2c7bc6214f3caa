"""Tasks: where the training sequences come from and how a generator is evaluated.

Every task follows ``Task`` (tasks/base.py). ``make_task(cfg)`` picks one by ``cfg.task``.
"""
from __future__ import annotations

from ..config import ConfigError, TrainConfig
from .base import Task
from .oracle import OracleTask
from .recsys import RecsysTask
from .text import TextTask


def make_task(cfg: TrainConfig) -> Task:
    if cfg.task == "oracle":
        return OracleTask(cfg)
    if cfg.task == "text":
        return TextTask(cfg)
    if cfg.task == "recsys":
        return RecsysTask(cfg)
    raise ConfigError(f"unknown task {cfg.task!r}; choose from oracle, text, recsys")


__all__ = ["Task", "make_task"]
