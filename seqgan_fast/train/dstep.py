"""The discriminator's training step: forward, cross-entropy + the paper's L2 term, backward,
Adam (issue 11: the step the paper's schedule repeats ~1 million times).

``DiscriminatorStep(d, opt, batch_size, graph=...)`` is called once per minibatch and returns
the loss and the count of correct predictions as 0-dim tensors on the model's device, so a
caller on a GPU synchronises once per epoch instead of once per step.

The forward is the module's (oneDNN convolutions on CPU, cuDNN on CUDA). Formulating each
filter width as one GEMM over unfolded windows was measured and dropped: the same time per
step at one and two threads on an idle AVX-512 instance (30.1 against 30.3 ms forward, 60.1
against 58.8 ms backward at one thread, ``python benchmarks/micro.py d_step``). What the CPU
step does differently is the convolution backward: max-pooling passes each (row, filter)'s
gradient to one window, and the fused kernel of seqgan_fast/ops/dpool.py computes only those
(``pool``, below).

On CUDA, ``graph="auto"`` (or ``"on"``) captures the whole step (forward, backward, the L2
term and the fused Adam update) in one CUDA graph at ``batch_size`` rows and replays it for
every full minibatch: one launch instead of ~150 kernels per step. The capture follows
PyTorch's whole-network recipe: the first full minibatch is a normal eager step; the
parameters and the optimizer state are then saved, the step is warmed up on a side stream,
both are restored in place, and the graph is captured, so the training trajectory is the
eager one (the warm-up steps leave no trace). Minibatches of another size (an epoch's last)
run eagerly. The optimizer must be ``torch.optim.Adam(..., capturable=True)``
(:func:`seqgan_fast.train.optim.fast_adam` makes it so on CUDA). Dropout draws inside the graph come
from PyTorch's graph-safe Philox offsets: the same distribution as eager, not the same masks.

Optimizer step hooks cannot run inside a capture: they are suspended while capturing and
called on the host after each replay, pre-hooks then post-hooks, except the finite-value
guard's (seqgan_fast/train/guard.py), whose check would cost two host syncs and ~120 launches per
step. The guard's test runs inside the graph instead (``ops.finite.non_finite_flags`` on the
gradients before the update and the weights after it, ORed into sticky per-parameter flags)
and ``check()`` reads the flags: once per epoch from the trainer, or every ``check_every``
steps. A non-finite value therefore still stops training, naming the parameter, before
anything is checkpointed; it stops at the check, not before the offending update. Eager steps
on CUDA (an epoch's last, short minibatch; data-parallel steps) defer the same way
(``deferred_guard``, default: on CUDA); on CPU the guard's hooks check every step.

On CPU the step is always eager (no graphs); ``graph="on"`` there is an error. ``pool="auto"``
(default) trains the convolutions with the fused sparse max-pool backward where it runs (CPU
with the extension: seqgan_fast/ops/dpool.py), ``"module"`` with autograd's dense one.

``configure_tf32(enabled)`` switches cuBLAS/cuDNN float32 matmuls and convolutions to TF32
(config key ``tf32``, default off: TF32 keeps 10 mantissa bits, beyond float32 rounding, so the
faithful presets do not use it).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from ..ops.dpool import resolve_pool
from ..ops.finite import non_finite_flags
from .guard import Watch, watch_of

GRAPH_MODES = ("auto", "on", "off")


def configure_tf32(enabled: bool) -> None:
    """TF32 for float32 matmuls and cuDNN convolutions (CUDA only; no effect on CPU)."""
    torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
    torch.backends.cudnn.allow_tf32 = bool(enabled)


def _param_device(d: torch.nn.Module) -> torch.device:
    return next(d.parameters()).device


class DiscriminatorStep:
    """One discriminator training step per call; see the module docstring.

    Data-parallel (``world_size`` > 1): a call trains on this rank's rows of a minibatch,
    ``batch_rows=(lo, total)``; its loss is the rank's share of the single-process loss
    (cross-entropy summed over its rows / total, the L2 term / world_size; the dropout mask
    is its slice of the whole batch's, see ``Discriminator.forward``), and ``grad_hook``
    (the cross-rank gradient sum) runs between backward and the optimizer step. A step with
    a hook is never graph-captured.
    """

    def __init__(self, discriminator: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 batch_size: int, graph: str = "auto",
                 grad_hook: Callable[[], None] | None = None, world_size: int = 1,
                 pool: str = "auto", deferred_guard: bool | None = None,
                 check_every: int = 0) -> None:
        if graph not in GRAPH_MODES:
            raise ValueError(f"graph must be one of {', '.join(GRAPH_MODES)}, got {graph!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        dev = _param_device(discriminator)
        if graph == "on" and dev.type != "cuda":
            raise ValueError(f"graph='on' needs the discriminator on a CUDA device, not {dev}")
        if graph == "on" and grad_hook is not None:
            raise ValueError("graph='on' cannot capture a step with a grad_hook")
        capturable = any(g.get("capturable") for g in optimizer.param_groups)
        if graph == "on" and not capturable:
            raise ValueError("graph='on' needs an optimizer built with capturable=True "
                             "(seqgan_fast.train.optim.fast_adam does this on CUDA)")
        self.pool = resolve_pool(pool, dev)
        self.d, self.opt, self.batch_size = discriminator, optimizer, batch_size
        self.grad_hook, self.world_size = grad_hook, world_size
        self.use_graph = dev.type == "cuda" and graph != "off" and capturable \
            and grad_hook is None
        if not isinstance(check_every, int) or check_every < 0:
            raise ValueError(f"check_every must be an int >= 0, got {check_every!r}")
        self.deferred_guard = dev.type == "cuda" if deferred_guard is None else deferred_guard
        self.check_every = check_every
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static: dict[str, torch.Tensor] = {}
        self._flags: torch.Tensor | None = None  # (2, P) bool: bad gradient / bad weight
        self._unchecked = 0  # steps whose flags check() has not read yet
        self._static_watch_ids: frozenset[int] = frozenset()  # the guard's hooks, in the graph
        self.replays = 0  # graph replays so far (tests and benchmarks read it)

    # -- the step -------------------------------------------------------------------------
    def _forward_backward(self, x: torch.Tensor, y: torch.Tensor,
                          batch_rows: tuple[int, int] | None = None):
        logits = self.d(x, batch_rows=batch_rows, pool=self.pool)
        if batch_rows is None:
            loss = F.cross_entropy(logits, y) + self.d.l2_loss()
        else:  # this rank's share of the batch's loss
            loss = F.cross_entropy(logits, y, reduction="sum") / batch_rows[1] \
                + self.d.l2_loss() / self.world_size
        loss.backward()
        return loss.detach(), (logits.detach().argmax(1) == y).sum()

    def _eager(self, x: torch.Tensor, y: torch.Tensor,
               batch_rows: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        self.opt.zero_grad(set_to_none=True)
        loss, correct = self._forward_backward(x, y, batch_rows)
        if self.grad_hook is not None:
            self.grad_hook()
        watch = watch_of(self.opt) if self.deferred_guard else None
        if watch is None:
            self.opt.step()  # the guard's hooks, if any, check on the host
            return loss, correct
        with self._hooks_suspended(watch.hook_ids):
            self._flagged_update(watch)
        self._stepped()
        return loss, correct

    def _flagged_update(self, watch: Watch) -> None:
        """The optimizer step between the guard's device-side checks (no host sync; captured
        into the graph as it is)."""
        flags = self._guard_flags(watch)
        zero = flags.new_zeros((), dtype=torch.float32)
        grads = [zero if p.grad is None else p.grad for p in watch.params]
        flags[0].logical_or_(non_finite_flags(grads))
        self.opt.step()
        flags[1].logical_or_(non_finite_flags([p.detach() for p in watch.params]))

    def _guard_flags(self, watch: Watch) -> torch.Tensor:
        if self._flags is None:
            self._flags = torch.zeros(2, len(watch.params), dtype=torch.bool,
                                      device=_param_device(self.d))
        return self._flags

    def _stepped(self) -> None:
        self._unchecked += 1
        if self.check_every and self._unchecked >= self.check_every:
            self.check()

    def check(self) -> None:
        """Read the guard's flags of the steps since the last check (one host sync) and raise
        its NonFiniteError naming the first parameter whose gradient, else weight, was
        non-finite (or overflowing). Nothing to do when every step checked on the host."""
        if not self._unchecked or self._flags is None:
            return
        steps, self._unchecked = self._unchecked, 0
        watch = watch_of(self.opt)
        bad = self._flags.cpu()
        for row, what in ((0, "(or overflowing) gradient"), (1, "weight")):
            if watch is not None and bool(bad[row].any()):
                name = watch.names[int(bad[row].nonzero()[0])]
                watch.fail(what, name, f" (found on the device, within the last {steps} "
                                       "discriminator steps)")

    def __call__(self, x: torch.Tensor, y: torch.Tensor,
                 batch_rows: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Train on minibatch (x (b, T) int64, y (b,) int64 labels, 1 = real; a rank's rows
        ``batch_rows=(lo, total)`` of it when data-parallel); returns (loss, correct) as 0-dim
        tensors on the model's device (a rank's: its share)."""
        if batch_rows is not None or not self.use_graph or x.shape[0] != self.batch_size:
            return self._eager(x, y, batch_rows)
        if self._graph is None:
            out = self._eager(x, y)  # the real first step, then capture for the next ones
            self._capture(x, y)
            return out
        self._static["x"].copy_(x)
        self._static["y"].copy_(y)
        self._graph.replay()
        self.replays += 1
        skip = self._static_watch_ids
        for hooks in (self.opt._optimizer_step_pre_hooks, self.opt._optimizer_step_post_hooks):
            for key, hook in list(hooks.items()):
                if key not in skip:  # the guard's test ran in the graph
                    hook(self.opt, (), {})
        self._stepped()
        return self._static["loss"].clone(), self._static["correct"].clone()

    # -- capture --------------------------------------------------------------------------
    def _state_tensors(self) -> list[torch.Tensor]:
        out = [p.data for p in self.d.parameters()]
        for state in self.opt.state.values():
            out.extend(v for v in state.values() if isinstance(v, torch.Tensor))
        return out

    @contextlib.contextmanager
    def _hooks_suspended(self, ids: frozenset[int] | None = None) -> Iterator[None]:
        """The optimizer's step hooks (those of ``ids``; None: all) are off inside."""
        hooks = (self.opt._optimizer_step_pre_hooks, self.opt._optimizer_step_post_hooks)
        saved = [dict(h) for h in hooks]
        for h in hooks:
            for key in list(h):
                if ids is None or key in ids:
                    del h[key]
        try:
            yield
        finally:
            for h, items in zip(hooks, saved, strict=True):
                h.clear()
                h.update(items)

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        saved = [t.clone() for t in self._state_tensors()]
        static_x, static_y = x.clone(), y.clone()
        graph = torch.cuda.CUDAGraph()
        with self._hooks_suspended():
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    self._eager(static_x, static_y)
            torch.cuda.current_stream().wait_stream(side)
            with torch.no_grad():  # the warm-up steps leave no trace
                for t, s in zip(self._state_tensors(), saved, strict=True):
                    t.copy_(s)
            self.opt.zero_grad(set_to_none=True)
            watch = watch_of(self.opt)
            if watch is not None:
                self._guard_flags(watch)  # allocated outside the capture
            with torch.cuda.graph(graph):
                loss, correct = self._forward_backward(static_x, static_y)
                if watch is None:
                    self.opt.step()
                else:
                    self._flagged_update(watch)
        self._static_watch_ids = watch.hook_ids if watch is not None else frozenset()
        self._graph = graph
        self._static = {"x": static_x, "y": static_y, "loss": loss, "correct": correct}
