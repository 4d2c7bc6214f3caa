"""The discriminator step the schedule repeats ~1 million times: the trainer's fused Adam
(seqgan_fast/train/optim.py) trains exactly as torch's default Adam up to float rounding; the step
object (seqgan_fast/train/dstep.py) trains exactly as the plain loop on CPU and, captured in a CUDA
graph, follows the eager curve on a GPU (those tests skip without one)."""
import copy

import pytest
import torch
from helpers import outputs_per_isa_and_threads

from seqgan_fast import Discriminator
from seqgan_fast.config import ConfigError, TrainConfig
from seqgan_fast.errors import NonFiniteError
from seqgan_fast.ops.dpool import fused_available, resolve_pool
from seqgan_fast.ops.finite import first_non_finite, non_finite_flags
from seqgan_fast.train.dstep import DiscriminatorStep, configure_tf32
from seqgan_fast.train.guard import watch_optimizer
from seqgan_fast.train.optim import fast_adam

needs_fused = pytest.mark.skipif(not fused_available("cpu"), reason="needs the compiled "
                                 "extension (pip install --no-build-isolation -e .)")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.one_thread


def _train(d: Discriminator, opt, steps: int, seed: int = 0) -> list[float]:
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        x = torch.randint(0, d.vocab_size, (16, d.seq_len), generator=gen)
        y = (x[:, 0] < d.vocab_size // 2).long()  # a rule the discriminator can learn
        torch.manual_seed(len(losses))  # the same dropout masks on both sides
        loss = d.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_fast_adam_follows_the_default_adam_curve():
    torch.manual_seed(3)
    d_ref = Discriminator(200, 12, emb_dim=16, filter_sizes=(1, 2, 3, 5, 12),
                          num_filters=(10, 20, 20, 10, 16))
    d_fast = copy.deepcopy(d_ref)
    opt_ref = torch.optim.Adam(d_ref.parameters(), lr=1e-3, foreach=False, fused=False)
    opt_fast = fast_adam(d_fast.parameters(), lr=1e-3)
    ref = _train(d_ref, opt_ref, 200)
    fast = _train(d_fast, opt_fast, 200)
    assert ref[-1] < ref[0] - 0.05  # it learned something: the curve is not flat
    worst = max(abs(a - b) for a, b in zip(ref, fast, strict=True))
    assert worst <= 1e-4, f"loss curves differ by up to {worst:.2e}"
    wdiff = max((a - b).abs().max().item()
                for a, b in zip(d_ref.parameters(), d_fast.parameters(), strict=True))
    assert wdiff <= 1e-4


def test_fast_adam_is_fused_where_torch_supports_it():
    d = Discriminator(50, 5, filter_sizes=(1, 2), num_filters=(3, 4))
    opt = fast_adam(d.parameters(), lr=1e-4)
    assert opt.defaults.get("fused") or opt.defaults.get("foreach")
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4):
        assert opt.defaults.get("fused") is True


# -- the trainer's step object (seqgan_fast/train/dstep.py) ---------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _small_d(keep: float = 0.75, device: str = "cpu") -> Discriminator:
    torch.manual_seed(5)
    return Discriminator(120, 9, emb_dim=8, filter_sizes=(1, 2, 4, 9),
                         num_filters=(6, 10, 7, 5), dropout_keep=keep).to(device)


def _batches(d: Discriminator, steps: int, rows: int, device: str = "cpu"):
    gen = torch.Generator().manual_seed(9)
    for _ in range(steps):
        x = torch.randint(0, d.vocab_size, (rows, d.seq_len), generator=gen)
        yield x.to(device), (x[:, 0] < d.vocab_size // 2).long().to(device)


@pytest.mark.parametrize("pool", ["module", pytest.param("fused", marks=needs_fused)])
def test_step_object_follows_the_modules_training_curve(pool):
    """The trainer's step (fused Adam, losses on the device; the fused sparse pooling backward
    or autograd's) against today's module with the default Adam: the same loss curve to 1e-4
    over 200 steps, dropout included (same masks)."""
    torch.manual_seed(3)
    d_loop = Discriminator(200, 12, emb_dim=16, filter_sizes=(1, 2, 3, 5, 12),
                           num_filters=(10, 20, 20, 10, 16))
    d_step = copy.deepcopy(d_loop)
    opt_loop = torch.optim.Adam(d_loop.parameters(), lr=1e-3, foreach=False, fused=False)
    step = DiscriminatorStep(d_step, fast_adam(d_step.parameters(), 1e-3), batch_size=16,
                             pool=pool)
    assert not step.use_graph  # CPU: always eager
    assert step.pool == pool
    worst = 0.0
    losses = []
    for i, (x, y) in enumerate(_batches(d_loop, 200, 16)):
        torch.manual_seed(i)
        logits = d_loop(x)
        want = torch.nn.functional.cross_entropy(logits, y) + d_loop.l2_loss()
        opt_loop.zero_grad(set_to_none=True)
        want.backward()
        opt_loop.step()
        torch.manual_seed(i)
        loss, hits = step(x, y)
        assert loss.dim() == 0 and hits.dtype == torch.int64
        worst = max(worst, abs(float(loss) - float(want.detach())))
        losses.append(float(want.detach()))
        if i < 20:
            assert int(hits) == int((logits.argmax(1) == y).sum())
    # it learned: the comparison is not of flat curves
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.05
    assert worst <= 1e-4, f"loss curves differ by up to {worst:.2e}"
    for a, b in zip(d_loop.parameters(), d_step.parameters(), strict=True):
        assert (a - b).abs().max().item() <= 1e-4


def test_step_runs_the_grad_hook_between_backward_and_update():
    d = _small_d()
    seen = []
    step = DiscriminatorStep(d, fast_adam(d.parameters(), 1e-3), batch_size=8,
                             grad_hook=lambda: seen.append(d.output.weight.grad.clone()))
    before = d.output.weight.detach().clone()
    x, y = next(_batches(d, 1, 8))
    step(x, y)
    assert len(seen) == 1 and seen[0].abs().sum() > 0
    assert not torch.equal(before, d.output.weight)


def test_step_validation():
    d = _small_d()
    opt = fast_adam(d.parameters(), 1e-3)
    with pytest.raises(ValueError, match="graph must be one of"):
        DiscriminatorStep(d, opt, 8, graph="yes")
    with pytest.raises(ValueError, match="needs the discriminator on a CUDA device"):
        DiscriminatorStep(d, opt, 8, graph="on")
    with pytest.raises(ValueError, match="batch_size"):
        DiscriminatorStep(d, opt, 0)
    with pytest.raises(ConfigError, match="d_graph"):
        TrainConfig(d_graph="on", device="cpu").validate()
    with pytest.raises(ConfigError, match="d_graph"):
        TrainConfig(d_graph="sometimes").validate()
    with pytest.raises(ConfigError, match="tf32"):
        TrainConfig(tf32="yes").validate()


def test_hooks_are_suspended_and_restored():
    d = _small_d()
    opt = fast_adam(d.parameters(), 1e-3)
    calls = []
    opt.register_step_pre_hook(lambda *a: calls.append("pre"))
    opt.register_step_post_hook(lambda *a: calls.append("post"))
    step = DiscriminatorStep(d, opt, 8)
    with step._hooks_suspended():
        opt.step()
    assert calls == []
    opt.step()
    assert calls == ["pre", "post"]


def test_tests_run_without_tf32():
    """conftest's autouse fixture: torch's default (cuDNN TF32 on) would put the reference
    discriminator beyond fp32 rounding of the kernels on a GPU."""
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32


def test_configure_tf32_sets_and_clears_both_switches():
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        configure_tf32(True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        configure_tf32(False)
        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@needs_cuda
def test_cuda_graph_step_follows_the_eager_curve():
    """Without dropout the captured step is the eager step: same curve over 200 steps."""
    d_eager = _small_d(keep=1.0, device="cuda")
    d_graph = copy.deepcopy(d_eager)
    eager = DiscriminatorStep(d_eager, fast_adam(d_eager.parameters(), 1e-3), 16, graph="off")
    graph = DiscriminatorStep(d_graph, fast_adam(d_graph.parameters(), 1e-3), 16, graph="on")
    a = [float(eager(x, y)[0]) for x, y in _batches(d_eager, 200, 16, "cuda")]
    b = [float(graph(x, y)[0]) for x, y in _batches(d_graph, 200, 16, "cuda")]
    assert graph.replays == 199
    assert a[-1] < a[0] - 0.05
    assert max(abs(u - v) for u, v in zip(a, b, strict=True)) <= 1e-4
    for p, q in zip(d_eager.parameters(), d_graph.parameters(), strict=True):
        assert (p - q).abs().max().item() <= 1e-4


@needs_cuda
def test_cuda_graph_step_keeps_the_finite_guard():
    """The guard's test runs inside the graph: replays do not raise (no host sync), the
    epoch's check does, naming the parameter; with check_every=1 the replay itself raises."""
    for check_every in (0, 1):
        d = _small_d(device="cuda")
        opt = fast_adam(d.parameters(), 1e-3)
        _watch(d, opt)
        step = DiscriminatorStep(d, opt, 16, graph="on", check_every=check_every)
        batches = list(_batches(d, 4, 16, "cuda"))
        step(*batches[0])
        step(*batches[1])  # captured, replayed
        step.check()  # clean so far
        with torch.no_grad():
            d.output.weight.fill_(float("nan"))
        if check_every == 1:
            with pytest.raises(NonFiniteError, match="gradient of discriminator parameter"):
                step(*batches[2])
            continue
        step(*batches[2])
        step(*batches[3])
        assert step.replays == 3
        with pytest.raises(NonFiniteError, match=r"parameter \S+ in test \(found on the device, "
                                                 r"within the last 2 discriminator steps\)"):
            step.check()


# -- the finite-value guard checked on the device (deferred; CPU runs the same code) -----------

def _watch(d: Discriminator, opt) -> None:
    watch_optimizer(opt, "discriminator", {id(p): n for n, p in d.named_parameters()},
                    lambda: "test", lambda: "d_lr=1")


def test_non_finite_flags_match_first_non_finite():
    cases = {"fine": torch.randn(5, 3), "nan": torch.tensor([1.0, float("nan")]),
             "inf": torch.tensor([float("-inf"), 0.0]), "overflow": torch.full((4,), 3e38),
             "just_below": torch.full((3,), 2.0 ** 63), "at": torch.tensor([0.0, -(2.0 ** 64)]),
             "zeros": torch.zeros(7), "many_large": torch.full((100_000,), 1e18)}
    flags = non_finite_flags(list(cases.values()))
    assert flags.dtype == torch.bool and flags.shape == (len(cases),)
    for (name, t), bad in zip(cases.items(), flags.tolist(), strict=True):
        assert bad == (first_non_finite([(name, t)]) is not None), name


def test_deferred_guard_trains_exactly_as_the_host_checked_step():
    """Deferred checks change nothing in the arithmetic: the same weights bit for bit, and the
    optimizer's other hooks (the trainer's step count) still run every step."""
    d_host, d_dev = _small_d(), _small_d()
    opt_host, opt_dev = fast_adam(d_host.parameters(), 1e-3), fast_adam(d_dev.parameters(), 1e-3)
    _watch(d_host, opt_host)
    _watch(d_dev, opt_dev)
    counted = []
    opt_dev.register_step_pre_hook(lambda *a: counted.append(1))
    host = DiscriminatorStep(d_host, opt_host, 16)
    dev = DiscriminatorStep(d_dev, opt_dev, 16, deferred_guard=True)
    assert not host.deferred_guard  # CPU default: the hooks check every step
    for i, (x, y) in enumerate(_batches(d_host, 12, 16)):
        torch.manual_seed(i)
        host(x, y)
        torch.manual_seed(i)
        dev(x, y)
    dev.check()
    assert len(counted) == 12
    for a, b in zip(d_host.parameters(), d_dev.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("case", ["nan_weight", "overflowing_gradient"])
def test_deferred_guard_stops_at_the_check_naming_the_parameter(case):
    """A NaN weight (its gradient goes NaN first) and a gradient of 2^70 on one parameter,
    which Adam absorbs into an inf second moment while the weights stay finite: the later
    steps raise nothing, check() names the parameter; check_every=2 raises on the 2nd step."""
    for check_every in (0, 2):
        d = _small_d()
        opt = fast_adam(d.parameters(), 1e-3)
        _watch(d, opt)
        step = DiscriminatorStep(d, opt, 16, deferred_guard=True, check_every=check_every)
        batches = list(_batches(d, 4, 16))
        step(*batches[0])
        step.check()
        if case == "nan_weight":
            with torch.no_grad():
                d.output.weight.fill_(float("nan"))
            want = r"non-finite \(or overflowing\) gradient of discriminator parameter \S+"
        else:
            d.convs[1].bias.register_hook(lambda g: torch.full_like(g, 2.0 ** 70))
            want = r"gradient of discriminator parameter convs\.1\.bias"
        if check_every:
            step(*batches[1])
            with pytest.raises(NonFiniteError, match=want):
                step(*batches[2])
            continue
        for x, y in batches[1:]:
            step(x, y)
        if case == "overflowing_gradient":
            assert first_non_finite(d.named_parameters()) is None  # frozen, yet finite
        with pytest.raises(NonFiniteError, match=want + r" in test \(found on the device, "
                                                        r"within the last 3 "):
            step.check()


# -- the fused pooling backward (seqgan_fast/ops/dpool.py, csrc/common/dpool.h) ----------------

def _pool_grads(d: Discriminator, x: torch.Tensor, pool: str):
    d.zero_grad(set_to_none=True)
    out = d(x, pool=pool)
    (out * torch.linspace(-1.0, 2.0, out.numel()).view_as(out)).sum().backward()
    return out.detach(), [p.grad.clone() for p in d.parameters()]


@needs_fused
def test_fused_pool_gives_the_modules_outputs_and_gradients():
    """Widths 1..T (E = 24: the kernel's scalar tails), one width whose every window is
    negative (ReLU: no gradient), eval mode (no dropout): the same pooled features, logits
    and gradients for every parameter to float rounding (the fused forward convolves in
    channels-last layout and its highway GEMM sums in another order than MKL's)."""
    torch.manual_seed(1)
    d = Discriminator(300, 20, emb_dim=24, filter_sizes=(1, 2, 5, 20),
                      num_filters=(8, 16, 12, 10)).eval()
    with torch.no_grad():
        d.convs[2].bias.fill_(-100.0)  # width 5: max <= 0 in every row
    x = torch.randint(0, 300, (37, 20), generator=torch.Generator().manual_seed(2))
    from seqgan_fast.ops.dpool import conv_pool

    with torch.no_grad():
        e = d.embedding(x)
        want = torch.cat([torch.relu(c(e.transpose(1, 2))).amax(2) for c in d.convs], dim=1)
        assert (conv_pool(e, d.convs) - want).abs().max().item() <= 1e-5
    out_m, grads_m = _pool_grads(d, x, "module")
    out_f, grads_f = _pool_grads(d, x, "fused")
    assert (out_m - out_f).abs().max().item() <= 1e-5
    names = [n for n, _ in d.named_parameters()]
    for name, a, b in zip(names, grads_m, grads_f, strict=True):
        scale = max(a.abs().max().item(), 1.0)
        assert (a - b).abs().max().item() <= 1e-5 * scale, name
    assert grads_f[names.index("convs.2.weight")].abs().max() == 0  # the dead width
    assert grads_f[names.index("convs.3.weight")].abs().max() > 0


@needs_fused
def test_fused_pool_backward_is_the_same_bits_at_every_thread_count_on_each_isa_path():
    """The kernel alone on fixed inputs (the module's upstream gradient comes from MKL GEMMs,
    whose bits depend on the thread count): per ISA path 1, 2 and 3 threads give the same
    bits; the paths agree to rounding (FMA on avx2/avx512, two roundings on the baseline)."""
    gen = torch.Generator().manual_seed(5)
    B, T, E = 64, 12, 40  # E = 40: vector tails on every path
    weights = [torch.randn(f, E, k, generator=gen) for k, f in ((1, 20), (3, 40), (12, 9))]
    F = sum(w.shape[0] for w in weights)
    e = torch.randn(B, T, E, generator=gen)
    g = torch.randn(B, F, generator=gen) * (torch.rand(B, F, generator=gen) > 0.3)
    idx = torch.cat([torch.randint(0, T - w.shape[2] + 1, (B, w.shape[0]), generator=gen)
                     for w in weights], dim=1)
    runs = outputs_per_isa_and_threads(
        lambda: torch.ops.seqgan_fast.conv_pool_backward(e, g, idx, weights))
    first = next(iter(runs.values()))[0]
    for isa, outs in runs.items():
        for threads, out in zip((1, 2, 3), outs, strict=True):
            for a, b, c in zip(outs[0], out, first, strict=True):
                assert torch.equal(a, b), (isa, threads)
                assert (b - c).abs().max().item() <= 1e-5 * c.abs().max().item()


def test_pool_modes_are_validated():
    d = _small_d()
    with pytest.raises(ValueError, match="pool must be one of"):
        resolve_pool("sparse", "cpu")
    with pytest.raises(ValueError, match="pool must be"):
        d(torch.zeros(2, d.seq_len, dtype=torch.long), pool="sparse")
    with pytest.raises(ValueError, match="pool must be one of"):
        DiscriminatorStep(d, fast_adam(d.parameters(), 1e-3), 8, pool="sparse")
    with pytest.raises(ValueError, match="pool='fused' needs the compiled extension"):
        resolve_pool("fused", "meta")
    assert resolve_pool("auto", "meta") == "module"


def _conv_inputs(B: int, T: int, E: int, groups, seed: int):
    gen = torch.Generator().manual_seed(seed)
    weights = [torch.randn(f, E, k, generator=gen) * 0.3 for k, f in groups]
    biases = [torch.randn(f, generator=gen) for _, f in groups]
    return torch.randn(B, T, E, generator=gen), weights, biases


@needs_fused
def test_conv_pool_forward_is_relu_max_with_the_first_argmax():
    """Against torch's conv1d + max per width: values to float rounding, the argmax wherever
    the two best windows are apart by more than rounding, the first window on exact ties (a
    row of one repeated token: every window the same sum in the same order), NaN propagated."""
    B, T, E, groups = 13, 11, 20, ((1, 5), (3, 70), (11, 9))  # 70: a partial panel everywhere
    e, weights, biases = _conv_inputs(B, T, E, groups, seed=8)
    e[3] = e[3, 0]  # row 3: the same embedding at every position
    v, i = torch.ops.seqgan_fast.conv_pool_forward(e, weights, biases)
    off = 0
    for w, b in zip(weights, biases, strict=True):
        y = torch.nn.functional.conv1d(e.transpose(1, 2), w, b)  # (B, F, L)
        vv, ii = v[:, off : off + w.shape[0]], i[:, off : off + w.shape[0]]
        m = y.amax(2)
        assert (vv - m.clamp_min(0)).abs().max().item() <= 1e-5 * max(m.abs().max().item(), 1)
        top2 = y.topk(2, dim=2).values if y.shape[2] > 1 else None
        clear = (top2[..., 0] - top2[..., 1] > 1e-4) if top2 is not None else \
            torch.ones_like(m, dtype=torch.bool)
        assert torch.equal(ii[clear], y.argmax(2)[clear])
        assert (ii[3] == 0).all()  # exact ties: the first window
        off += w.shape[0]
    e[5, 4, 7] = float("nan")
    v, _ = torch.ops.seqgan_fast.conv_pool_forward(e, weights, biases)
    assert torch.isnan(v[5]).all()  # every width's windows cover position 4 in some window
    assert torch.isfinite(v[torch.arange(B) != 5]).all()


@needs_fused
def test_conv_pool_forward_bits_are_the_same_at_every_thread_count_and_on_the_fma_paths():
    e, weights, biases = _conv_inputs(64, 20, 40, ((1, 20), (4, 100), (20, 9)), seed=9)
    runs = outputs_per_isa_and_threads(
        lambda: torch.ops.seqgan_fast.conv_pool_forward(e, weights, biases))
    for isa, outs in runs.items():
        for v, i in outs[1:]:
            assert torch.equal(v, outs[0][0]) and torch.equal(i, outs[0][1]), isa
    if "avx2" in runs and "avx512" in runs:
        assert torch.equal(runs["avx2"][0][0], runs["avx512"][0][0])


@needs_fused
def test_conv_pool_forward_op_rejects_bad_input():
    op = torch.ops.seqgan_fast.conv_pool_forward
    e, w, b = torch.randn(2, 5, 4), [torch.randn(3, 4, 2)], [torch.randn(3)]
    assert op(e, w, b)[0].shape == (2, 3)
    with pytest.raises(RuntimeError, match="emb must be Float"):
        op(e.double(), w, b)
    with pytest.raises(RuntimeError, match="one tensor per weight"):
        op(e, w, [])
    with pytest.raises(RuntimeError, match=r"biases\[0\] must have 3 entries"):
        op(e, w, [torch.randn(4)])
    with pytest.raises(RuntimeError, match="input channels"):
        op(e, [torch.randn(3, 5, 2)], b)
    with pytest.raises(RuntimeError, match="filter width 6"):
        op(e, [torch.randn(3, 4, 6)], b)


@needs_fused
def test_conv_pool_backward_op_rejects_bad_input():
    op = torch.ops.seqgan_fast.conv_pool_backward
    w = [torch.randn(3, 4, 2)]
    e, g, idx = torch.randn(2, 5, 4), torch.randn(2, 3), torch.zeros(2, 3, dtype=torch.long)
    assert op(e, g, idx, w)[0].shape == (2, 5, 4)
    with pytest.raises(RuntimeError, match="emb must be Float"):
        op(e.double(), g, idx, w)
    with pytest.raises(RuntimeError, match="grad must have shape"):
        op(e, torch.randn(2, 4), idx, w)
    with pytest.raises(RuntimeError, match="is not a window start of width 2"):
        op(e, g, torch.full((2, 3), 4, dtype=torch.long), w)
    with pytest.raises(RuntimeError, match="input channels"):
        op(e, g, idx, [torch.randn(3, 5, 2)])
    with pytest.raises(RuntimeError, match="filter width 6"):
        op(e, g, idx, [torch.randn(3, 4, 6)])


def test_trainer_step_uses_the_fused_pool_only_off_the_reference_backend(tmp_path):
    from helpers import TINY_TRAIN

    from seqgan_fast.train.trainer import SeqGANTrainer

    def trainer(backend: str, run: str) -> SeqGANTrainer:
        cfg = TrainConfig.preset("quick").with_overrides([*TINY_TRAIN, f"backend={backend}"])
        return SeqGANTrainer(cfg, tmp_path / run, progress=False)

    assert trainer("reference", "r").d_step.pool == "module"
    if fused_available("cpu"):
        assert trainer("cpp", "c").d_step.pool == "fused"
