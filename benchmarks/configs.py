"""Benchmark sizes (DESIGN §8): the paper's synthetic setting, a larger one, a tiny CI one."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

TINY_ENV = "SEQGAN_FAST_BENCH_TINY"


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one benchmark configuration.

    batch B, rollouts N, seq_len T, vocab V, emb E, hidden H of the generator; rollout-type ops
    complete B*N*(T-1) prefixes. ``sample_batch`` rows for ``sample`` (one call generates
    sample_batch x T tokens), ``decode_batch`` rows for the single ``decode`` step,
    ``d_sequences`` sequences per discriminator epoch in minibatches of ``d_batch``.
    ``d_num_filters`` None means the paper's discriminator filters. ``cell``: the
    generator's RNN, ``lstm`` or ``gru`` (the ``g_cell`` axis: ``--cell lstm,gru``; a GRU
    config is named ``<name>-gru``).
    """

    name: str
    batch: int
    rollouts: int
    seq_len: int
    vocab: int
    emb: int
    hidden: int
    sample_batch: int = 1024
    decode_batch: int = 4096
    d_sequences: int = 20_000
    d_batch: int = 64
    d_num_filters: tuple[int, ...] | None = None
    seed: int = 0
    cell: str = "lstm"

    def replace(self, **changes) -> BenchConfig:
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **changes) if changes else self

    @property
    def rollout_tokens(self) -> int:
        """Sampled completion tokens of one rollout: B * N * T(T-1)/2."""
        return self.batch * self.rollouts * self.seq_len * (self.seq_len - 1) // 2

    @property
    def sample_tokens(self) -> int:
        return self.sample_batch * self.seq_len

    @property
    def adv_sample_tokens(self) -> int:
        """Tokens the generator samples in one adversarial step (B sequences of T)."""
        return self.batch * self.seq_len

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def base_name(self) -> str:
        """The config's name without its cell suffix (``paper-gru`` -> ``paper``)."""
        suffix = f"-{self.cell}"
        return self.name[: -len(suffix)] if self.cell != "lstm" and \
            self.name.endswith(suffix) else self.name

    def with_cell(self, cell: str) -> BenchConfig:
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose from {', '.join(CELLS)}")
        if cell == self.cell:
            return self
        name = self.base_name if cell == "lstm" else f"{self.base_name}-{cell}"
        return dataclasses.replace(self, name=name, cell=cell)


CELLS = ("lstm", "gru")


def parse_choices(spec: str, choices, what: str, everything=None) -> list[str]:
    """A comma list of ``choices`` (``all``: ``everything``, default all of them), in order,
    without repeats; ValueError naming ``what`` for an unknown or empty one."""
    names: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if part == "all":
            names += list(choices if everything is None else everything)
        elif part in choices:
            names.append(part)
        elif part:
            raise ValueError(f"unknown {what} {part!r}; choose from "
                             f"{', '.join(list(choices) + ['all'])}")
    if not names:
        raise ValueError(f"no {what} given")
    return list(dict.fromkeys(names))


def resolve_cells(spec: str) -> list[str]:
    """``lstm``, ``gru``, ``all`` or a comma list: the g_cell axis of a benchmark run."""
    return parse_choices(spec, CELLS, "cell")


CONFIGS: dict[str, BenchConfig] = {
    # the paper's synthetic-data setting
    "paper": BenchConfig("paper", batch=64, rollouts=16, seq_len=20, vocab=5000, emb=32,
                         hidden=32),
    "large": BenchConfig("large", batch=64, rollouts=16, seq_len=40, vocab=20_000, emb=128,
                         hidden=128),
    # CI smoke: odd sizes, seconds in all; a discriminator with few filters
    "tiny": BenchConfig("tiny", batch=5, rollouts=3, seq_len=7, vocab=301, emb=8, hidden=16,
                        sample_batch=37, decode_batch=129, d_sequences=300, d_batch=64,
                        d_num_filters=(4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4)),
}


def tiny_requested() -> bool:
    """Whether the environment asks the pytest suite for the tiny configuration."""
    return os.environ.get(TINY_ENV, "0") not in ("", "0")


def resolve_configs(spec: str) -> list[BenchConfig]:
    """``paper``, ``large``, ``tiny``, ``all`` (paper + large) or a comma list of those."""
    return [CONFIGS[n] for n in parse_choices(spec, CONFIGS, "config", ("paper", "large"))]
