"""What every op benchmark shares: contenders, cases, models, checks and the GEMM floor."""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from seqgan_fast import Discriminator, Generator
from seqgan_fast.ops import is_available

from .baselines import CompiledBackend
from .configs import BenchConfig

PACKAGE_BACKENDS = ("reference", "cpp", "triton", "cuda")
BASELINES = ("reference_loop", "torch_compile")
ALL_BACKENDS = ("reference_loop", "reference", "torch_compile", "cpp", "triton", "cuda")
# cpp with its CPU core forced onto one ISA path for the row (ops.force_cpu_isa), so every
# path is measured in one run beside the same baselines
ISA_BACKENDS = ("cpp@avx512", "cpp@avx2", "cpp@baseline")
KNOWN_BACKENDS = ALL_BACKENDS + ISA_BACKENDS


def split_backend(name: str) -> tuple[str, str | None]:
    """'cpp@avx2' -> ('cpp', 'avx2'); 'reference' -> ('reference', None)."""
    base, _, isa = name.partition("@")
    return base, isa or None


def on_isa(fn: Callable[[], Any] | None, isa: str | None) -> Callable[[], Any] | None:
    """fn run with the CPU core forced onto path ``isa`` (None: unchanged)."""
    if fn is None or isa is None:
        return fn

    def forced():
        from seqgan_fast import ops

        with ops.force_cpu_isa(isa):
            return fn()

    return forced
# backends that draw with the Philox contract: their tokens must agree with `reference`
RNG_CONTRACT = ("reference", "torch_compile", "cpp", "triton", "cuda")
MIN_AGREE = 0.999
SEED = 0  # the Philox seed every contract backend uses, so graphs/kernels are shared


class CheckError(AssertionError):
    """A contender's output broke the op's contract (recorded in the JSON as its error)."""


@dataclass
class Contender:
    """One backend's way of running an op: ``fn()`` is one timed call.

    ``check(out, case)`` raises CheckError when the first call's output is wrong;
    ``warm_fn`` / ``check_fn`` replace fn for warm-up / the checked first call when a full
    call is needlessly long;
    ``compiles``: the first call compiles, so memory is measured on a later call.
    """

    backend: str
    fn: Callable[[], Any]
    check: Callable[[Any, Case], None] | None = None
    warm_fn: Callable[[], Any] | None = None
    check_fn: Callable[[], Any] | None = None
    compiles: bool = False


@dataclass
class Case:
    """One op at one config on one device, with its contenders and its GEMM floor."""

    op: str
    config: BenchConfig
    device: str
    tokens: int
    contenders: list[Contender]
    gemm: Callable[[], Any] | None = None
    gemm_desc: str = ""
    make_reference: Callable[[], Any] | None = None  # the reference output, for checks
    unavailable: dict[str, str] = field(default_factory=dict)  # backend -> why it cannot run
    backend_independent: bool = False
    notes: str = ""
    annotate: Callable[[dict[str, Any]], None] | None = None  # adds fields to each row
    # backend -> fields its check measured (the token agreement), copied into its row
    measured: dict[str, dict[str, Any]] = field(default_factory=dict)
    _reference: Any = None

    def reference_output(self) -> Any:
        if self._reference is None and self.make_reference is not None:
            self._reference = self.make_reference()
        return self._reference

    def set_reference_output(self, out: Any) -> None:
        self._reference = out


@dataclass
class Models:
    generator: Generator
    discriminator: Discriminator
    x: torch.Tensor  # (B, T) generated sequences to roll out

    @property
    def weights(self):
        return self.generator.kernel_weights()


@functools.lru_cache(maxsize=4)
def build_models(cfg: BenchConfig, device: str) -> Models:
    """Generator and discriminator with fixed seeds, and B sequences drawn from the generator.

    Generator weights are scaled up so its softmaxes are peaked like a trained model's rather
    than near uniform (timing does not depend on it, checks do): N(0, 1) at H = 32, as the
    paper's oracle, and N(0, 32 / H) above, which keeps the pre-activations' scale. At
    N(0, 1) with H = 128 the LSTM is chaotic: fp32 and fp64 runs of the *reference* itself
    then agree on only 99.2% of sampled tokens (T = 40; measured), so no fp32 backend could
    pass the 99.9% agreement check. A GRU above H = 32 gets 0.6 x that scale: at the LSTM's
    (x5 at H = 128) it is chaotic - `reference` and `cpp` agree on every token up to position
    20 and then drift apart by float rounding (97.4% of tokens equal at T = 40; measured) -
    while at x3 they agree on 100%.
    """
    torch.manual_seed(cfg.seed)
    g = Generator(cfg.vocab, cfg.emb, cfg.hidden, cfg.seq_len, cell=cfg.cell)
    scale = 10.0 * min(1.0, (32 / cfg.hidden) ** 0.5)
    if cfg.cell == "gru" and cfg.hidden > 32:
        scale *= 0.6
    with torch.no_grad():
        for p in g.parameters():
            p.mul_(scale)
    kwargs = {} if cfg.d_num_filters is None else {"num_filters": cfg.d_num_filters}
    d = Discriminator(cfg.vocab, cfg.seq_len, **kwargs)
    g, d = g.to(device), d.to(device)
    from seqgan_fast import ops

    x = ops.sample(g, cfg.batch, seed=cfg.seed + 1, backend="reference")
    return Models(g, d, x)


@functools.lru_cache(maxsize=1)
def compiled_backend() -> CompiledBackend:
    """One per process, so graphs compiled for one op serve the others."""
    return CompiledBackend()


def by_contender(backend: str, loop: Callable[[], Any],
                 compiled: Callable[[CompiledBackend], Any],
                 package: Callable[[], Any]) -> Callable[[], Any]:
    """The zero-argument call an op's bench times for ``backend``: the classic Python loop
    (``reference_loop``), the batched algorithm under torch.compile (``torch_compile``; its
    compiled graphs are built on first use) or the package's op (``package``, which passes
    ``backend`` on)."""
    if backend == "reference_loop":
        return loop
    if backend == "torch_compile":
        cb = compiled_backend()
        return lambda: compiled(cb)
    return package


def shares_rng(backend: str) -> bool:
    """Whether ``backend`` keeps the RNG contract and is not the reference itself: its output
    is then checked against the reference's draw for draw, not only for shape and range."""
    return backend in RNG_CONTRACT and backend != "reference"


def select_backends(requested: list[str] | None, device: str) -> tuple[list[str], dict[str, str]]:
    """(backends to run, {backend: why not}) for a request; None means every available one.

    Triton on CPU runs only under TRITON_INTERPRET (far too slow to time) and only when asked.
    """
    if requested is None:
        wanted = [b for b in ALL_BACKENDS
                  if not (b == "triton" and torch.device(device).type == "cpu")]
        implicit = True
    else:
        bad = [b for b in requested if b not in KNOWN_BACKENDS]
        if bad:
            raise ValueError(f"unknown backend(s) {bad}; choose from "
                             f"{', '.join(KNOWN_BACKENDS)}")
        wanted, implicit = list(dict.fromkeys(requested)), False
    run, skipped = [], {}
    for b in wanted:
        base, isa = split_backend(b)
        if base in PACKAGE_BACKENDS and not is_available(base, device):
            if not implicit:
                skipped[b] = f"backend {base!r} is not available on {device}"
            continue
        if isa is not None:
            from seqgan_fast.ops import cpu_isa_paths

            if isa not in cpu_isa_paths():
                skipped[b] = f"this CPU cannot run the {isa} path"
                continue
        run.append(b)
    return run, skipped


# ---------------------------------------------------------------------------- checks
def expect(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckError(msg)


def check_tokens_range(t: torch.Tensor, vocab: int, name: str) -> None:
    expect(t.dtype == torch.int64, f"{name}: dtype {t.dtype}, expected int64")
    if t.numel():
        lo, hi = int(t.min()), int(t.max())
        expect(0 <= lo and hi < vocab, f"{name}: token ids in [{lo}, {hi}] outside [0, {vocab})")


def check_draws(tokens: torch.Tensor, reference: Callable[[], torch.Tensor], vocab: int,
                name: str, case: Case) -> None:
    """Sampled token ids: int64 within the vocabulary and, for a backend under the RNG
    contract (``shares_rng``), the reference's draws (``reference()``: its tokens)."""
    check_tokens_range(tokens, vocab, name)
    if shares_rng(name):
        check_agreement(tokens, reference(), name, case)


def check_agreement(actual: torch.Tensor, expected: torch.Tensor, name: str, case: Case,
                    min_agree: float = MIN_AGREE) -> None:
    """At least ``min_agree`` of the tokens equal reference's; the fraction is recorded in
    the backend's row (``agreement``), passed or not."""
    expect(actual.shape == expected.shape,
           f"{name}: shape {tuple(actual.shape)} != reference {tuple(expected.shape)}")
    same = (actual == expected).double().mean().item()
    case.measured.setdefault(name, {})["agreement"] = same
    expect(same >= min_agree, f"{name}: tokens agree with reference on {same:.5f} < {min_agree}")


def check_rollout_output(comps: torch.Tensor, x: torch.Tensor, num_rollouts: int, vocab: int,
                         name: str = "rollout") -> None:
    """Shape (T-1, N, B, T), int64 in range, and completion [t-1, n, b, :t] == x[b, :t]."""
    B, T = x.shape
    expect(tuple(comps.shape) == (T - 1, num_rollouts, B, T),
           f"{name}: shape {tuple(comps.shape)}, expected {(T - 1, num_rollouts, B, T)}")
    check_tokens_range(comps, vocab, name)
    for t in range(1, T):
        expect(bool((comps[t - 1, :, :, :t] == x[:, :t]).all()),
               f"{name}: completions of prefix length {t} do not start with the prefix")


# ---------------------------------------------------------------------------- rewards
@torch.no_grad()
def rewards_from_completions(discriminator: Discriminator, comps: torch.Tensor, x: torch.Tensor,
                             score_batch: int = 4096) -> torch.Tensor:
    """Rewards (B, T) from completions (T-1, N, B, T), scored as ``ops.rollout_rewards`` does."""
    B, T = x.shape
    N = comps.shape[1]
    scores = discriminator.prob_real(comps.reshape(-1, T), batch_size=score_batch)
    rewards = torch.empty(B, T, dtype=torch.float32, device=x.device)
    rewards[:, : T - 1] = scores.view(T - 1, N, B).mean(dim=1).t()
    rewards[:, T - 1] = discriminator.prob_real(x, batch_size=score_batch)
    return rewards


# ---------------------------------------------------------------------------- GEMM floor
def gemm_floor(tokens: int, block: int, w_out: torch.Tensor) -> tuple[Callable[[], Any], str]:
    """The bare output projection for ``tokens`` rows: torch.mm (block x H) @ (H x V) repeated.

    Every exact sampler computes all V logits of every sampled token, so this is its floor.
    """
    V, H = w_out.shape
    block = max(1, min(block, tokens))
    gen = torch.Generator(device="cpu").manual_seed(0)
    h = torch.randn(block, H, generator=gen).to(w_out.device)
    out = torch.empty(block, V, device=w_out.device)
    full, rem = divmod(tokens, block)
    wt = w_out.t()

    def run() -> torch.Tensor:
        for _ in range(full):
            torch.mm(h, wt, out=out)
        if rem:
            torch.mm(h[:rem], wt, out=out[:rem])
        return out

    return run, f"torch.mm ({block} x {H}) @ ({H} x {V}), {full} + {1 if rem else 0} calls"


def backend_case(op: str, cfg: BenchConfig, device: str, backends: list[str] | None,
                 make_fn: Callable[[str, BenchConfig, str], Callable[[], Any]],
                 make_check: Callable[[str], Callable[[Any, Case], None]],
                 tokens: int, gemm_block: int, notes: str) -> Case:
    """A Case whose contenders are the selected backends, each timed as ``make_fn(backend,
    cfg, device)`` and checked by ``make_check(backend)``; the reference output comes from
    ``make_fn("reference", ...)`` and the GEMM floor covers ``tokens`` rows in ``gemm_block``s."""
    run, skipped = select_backends(backends, device)
    contenders = []
    for b in run:
        base, isa = split_backend(b)  # checks only read outputs: no ISA to force there
        contenders.append(Contender(b, on_isa(make_fn(base, cfg, device), isa),
                                    make_check(base), compiles=base == "torch_compile"))
    gemm, desc = gemm_floor(tokens, gemm_block, build_models(cfg, device).weights.w_out)
    return Case(op, cfg, device, tokens, contenders, gemm, desc,
                make_reference=make_fn("reference", cfg, device), unavailable=skipped,
                notes=notes)
