"""Data-parallel training on ``torch.distributed`` (DESIGN §10): one process per rank, launched
by ``torchrun`` (gloo on CPU, NCCL on GPU, one device per rank).

A :class:`World` is what the trainer needs of the process group: which logical rows are this
rank's (``shard``: a contiguous block of every batch, the same split for every call), gradients
summed across ranks (``all_reduce_grads``: callers scale their local losses so that the *sum*
is the single-process loss - see ``SeqGANTrainer``), sampled rows gathered so that every rank
(and rank 0, which writes the run folder) holds the whole batch, sums of metrics, broadcasts
and a config check at start. Philox rows are logical (DESIGN §4), so a rank that draws rows
``lo..hi`` of a batch draws exactly the tokens a single process draws for those rows.

A peer that dies makes the next collective raise (gloo/NCCL: connection closed, or the
``timeout`` of ``init_process_group`` for a peer that hangs); :func:`collective_errors` are
turned into one :class:`DistributedError` line by the trainer.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..errors import DistributedError
from ..ops.backends import resolve
from ..ops.rollout import BATCH_ROWS_BACKENDS, check_discriminator, reward_table, rollout
from ..ops.score import rollout_scores
from ..ops.weights import has_separate_encoder

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 120.0  # a hung (not dead) peer: how long a collective waits for it
_ACTIVE: World | None = None


def collective_errors() -> tuple[type[BaseException], ...]:
    """What a collective raises when a peer is gone (gloo: RuntimeError; NCCL and newer
    torch: DistBackendError, a RuntimeError; timeouts: DistError subclasses)."""
    errors: list[type[BaseException]] = [RuntimeError, ConnectionError, TimeoutError]
    for name in ("DistError", "DistBackendError", "DistNetworkError"):
        if hasattr(dist, name):
            errors.append(getattr(dist, name))
    return tuple(errors)


def env_world_size() -> int:
    """WORLD_SIZE as torchrun sets it (1 without torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise DistributedError(f"WORLD_SIZE must be an int, got "
                               f"{os.environ['WORLD_SIZE']!r}") from None


@dataclass
class World:
    """This process's place in a process group: ``rank`` of ``size``, its ``device``."""

    rank: int
    size: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the run folder."""
        return self.rank == 0

    # -- rows -------------------------------------------------------------------------------
    def shard(self, n: int) -> tuple[int, int]:
        """This rank's rows ``lo..hi-1`` of n logical rows (contiguous, sizes differ by <= 1)."""
        return n * self.rank // self.size, n * (self.rank + 1) // self.size

    def gather_rows(self, part: torch.Tensor, n: int) -> torch.Tensor:
        """Concatenate every rank's ``shard(n)`` rows, in rank order: part (hi-lo, ...) ->
        (n, ...), the same tensor on every rank."""
        sizes = [n * (r + 1) // self.size - n * r // self.size for r in range(self.size)]
        if part.shape[0] != sizes[self.rank]:
            raise ValueError(f"rank {self.rank} holds {part.shape[0]} rows, its shard of {n} "
                             f"is {sizes[self.rank]}")
        width = max(sizes)
        comm = self._comm(part)
        padded = comm.new_zeros((width, *part.shape[1:]))
        padded[: part.shape[0]] = comm
        bufs = [torch.empty_like(padded) for _ in range(self.size)]
        with self._guard("all_gather"):
            dist.all_gather(bufs, padded)
        return torch.cat([b[:s] for b, s in zip(bufs, sizes, strict=True)]).to(part.device)

    # -- reductions -------------------------------------------------------------------------
    def all_reduce_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Sum every parameter's gradient across ranks, in one flat buffer (a missing grad
        counts as zeros). The caller scaled its loss so that the sum is the global loss."""
        params = [p for p in params if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        comm = self._comm(flat)
        with self._guard("all_reduce"):
            dist.all_reduce(comm, op=dist.ReduceOp.SUM)
        flat = comm.to(flat.device)
        i = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[i : i + n].view_as(p.grad))
            i += n

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over ranks (float64)."""
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        with self._guard("all_reduce"):
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu().tolist()

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (pickled over the process group: ranks of one job
        trust each other; nothing read from disk is unpickled)."""
        box = [obj if self.is_main else None]
        with self._guard("broadcast"):
            dist.broadcast_object_list(box, src=0, device=self._comm_device())
        return box[0]

    def all_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order."""
        out: list[Any] = [None] * self.size
        with self._guard("all_gather"):
            dist.all_gather_object(out, obj)
        return out

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank (as DDP does at construction)."""
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                comm = self._comm(t.detach())
                with self._guard("broadcast"):
                    dist.broadcast(comm, src=0)
                t.copy_(comm.to(t.device))

    def mean(self, value: float, weight: float) -> float:
        """The ``weight``-weighted mean of every rank's ``value`` (e.g. a per-token NLL of
        ``weight`` tokens)."""
        total, count = self.sum([value * weight, weight])
        return total / count if count else float("nan")

    def barrier(self, timeout_s: float | None = None) -> None:
        """Wait for every rank; gloo names a rank that does not arrive within ``timeout_s``
        (default: the process group's timeout)."""
        with self._guard("barrier"):
            if self.backend == "gloo" and hasattr(dist, "monitored_barrier"):
                kwargs = {} if timeout_s is None else {
                    "timeout": datetime.timedelta(seconds=timeout_s)}
                dist.monitored_barrier(wait_all_ranks=True, **kwargs)
            else:
                dist.barrier()

    # -- plumbing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self, op: str) -> Iterator[None]:
        """A collective that fails because a peer is gone becomes one DistributedError."""
        try:
            yield
        except DistributedError:
            raise
        except collective_errors() as exc:
            raise DistributedError(
                f"rank {self.rank} of {self.size}: another rank stopped or became unreachable "
                f"({op} failed: {_first_line(exc)})") from None

    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")

    def _comm(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self._comm_device()).contiguous()


def world_from_env(device: str = "cpu", timeout_s: float = DEFAULT_TIMEOUT_S) -> World | None:
    """The process group of a ``torchrun`` launch (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT,
    LOCAL_RANK), initialised here if it is not yet; None for a single process. ``device``:
    cpu -> gloo; cuda -> NCCL, this rank on ``cuda:LOCAL_RANK``."""
    if dist.is_available() and dist.is_initialized():
        size, rank = dist.get_world_size(), dist.get_rank()
        backend = str(dist.get_backend())
    else:
        size = env_world_size()
        if size <= 1:
            return None
        if not dist.is_available():
            raise DistributedError("WORLD_SIZE > 1 but this torch build has no "
                                   "torch.distributed")
        if not timeout_s > 0:
            raise DistributedError(f"--dist-timeout must be > 0 seconds, got {timeout_s}")
        backend = "nccl" if device.startswith("cuda") else "gloo"
        rank = int(os.environ.get("RANK", "0"))
        kwargs: dict[str, Any] = {}
        if backend == "nccl":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            kwargs["device_id"] = torch.device("cuda", local)
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s),
                                    **kwargs)
        except collective_errors() as exc:
            raise DistributedError(f"rank {rank}: could not join the process group "
                                   f"({_first_line(exc)})") from None
    if size <= 1:
        return None
    if device.startswith("cuda"):
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    else:
        dev = torch.device("cpu")
    return World(rank=rank, size=size, device=dev, backend=backend)


def active() -> World | None:
    """The World of the training run in progress in this process (None: single process)."""
    return _ACTIVE


@contextlib.contextmanager
def activate(world: World | None) -> Iterator[None]:
    """Make ``world`` the one ``active()`` returns (draws.sample_in_chunks and the tasks
    then shard their rows) for the duration of the block."""
    global _ACTIVE
    previous, _ACTIVE = _ACTIVE, world
    try:
        yield
    finally:
        _ACTIVE = previous


def config_digest(entries: dict[str, Any]) -> str:
    """A short digest of JSON-able ``entries`` (the config and what else must agree)."""
    text = json.dumps(entries, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_same_config(world: World, entries: dict[str, Any]) -> None:
    """Refuse to start when ranks were given different configs: DistributedError naming the
    first rank and the keys that differ from rank 0's."""
    digests = world.all_objects(config_digest(entries))
    if len(set(digests)) == 1:
        return
    everyone = world.all_objects(entries)
    for r, theirs in enumerate(everyone):
        if digests[r] != digests[0]:
            keys = sorted(k for k in set(theirs) | set(everyone[0])
                          if theirs.get(k) != everyone[0].get(k))
            detail = ", ".join(f"{k}: {everyone[0].get(k)!r} (rank 0) vs {theirs.get(k)!r}"
                               for k in keys[:5])
            raise DistributedError(f"the ranks were started with different configs: rank {r} "
                                   f"differs from rank 0 in {detail}; start every rank with "
                                   "the same arguments", echo=world.is_main)


def shard_rollout_rewards(world: World, policy, discriminator, x: torch.Tensor,
                          num_rollouts: int, seed: int, backend: str,
                          history_len: int = 0) -> torch.Tensor:
    """This rank's rows of ``ops.rollout_rewards(policy, discriminator, x, num_rollouts, seed,
    history_len=history_len)`` for the whole batch x (B, T): (hi - lo, T) float, ``(lo, hi) =
    world.shard(B)``.

    On the ``reference`` and ``cpp`` backends each rank rolls out only its rows
    (``ops.rollout(..., batch_rows=(lo, B))``: the whole batch's Philox rows, so the union is
    the single-process rollout); elsewhere (``triton``, ``cuda``, a separate encoder) the
    completions come from one rollout call on the whole batch. The discriminator scores only
    this rank's completions either way.
    """
    check_discriminator(discriminator, policy, x, 4096)
    B, T = x.shape
    lo, hi = world.shard(B)
    m = history_len + 1  # the shortest prefix that ends in a generated token
    if resolve(backend, x.device) in BATCH_ROWS_BACKENDS and not has_separate_encoder(policy):
        mine = rollout(policy, x[lo:hi], num_rollouts, seed, backend=backend, min_prefix=m,
                       batch_rows=(lo, B)).reshape(-1, T)
    else:
        comps = rollout(policy, x, num_rollouts, seed, backend=backend, min_prefix=m)
        mine = comps[:, :, lo:hi].reshape(-1, T)
    scores, last = rollout_scores(discriminator, mine, x[lo:hi], num_rollouts, backend, 4096,
                                  min_prefix=m)
    return reward_table(scores, last, num_rollouts, T, m)


def _first_line(exc: BaseException) -> str:
    """The gist of a backend's error: first line, without gloo's source-file prefix and
    advice ("[.../pair.cc:553] Connection closed by peer [host]:port. This is ...")."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    text = re.sub(r"^\[[^\]]*\.(cc|cpp|h|hpp):\d+\]\s*", "", lines[0])
    return text.split(". ")[0].rstrip(".")
