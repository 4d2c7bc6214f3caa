"""The generator's output layer + log-softmax + NLL as one kernel (seqgan_fast/ops/linear_nll.py,
csrc/common/lnll.h) against torch: values and gradients, its bits across thread counts and
ISA paths, the Generator's fused MLE loss and NLL, the MLE training curve, NaN propagation and
the op's argument checks."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import outputs_per_isa_and_threads

from seqgan_fast import Generator, ops
from seqgan_fast.ops.linear_nll import fused_available, nll_rows, weighted_nll

pytestmark = pytest.mark.skipif(not fused_available(torch.zeros(1)),
                                reason="needs the compiled extension (seqgan_fast._C)")

# (N, H, V): the paper's MLE batch; rows not a multiple of the 64-row chunk, V not a multiple
# of the 256-row block, H not a multiple of any vector width; one row; one vocabulary entry
SHAPES = [(1280, 32, 5000), (70, 13, 300), (1, 5, 257), (130, 40, 1)]


def _case(N, H, V, seed):
    g = torch.Generator().manual_seed(seed)
    layer = torch.nn.Linear(H, V)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(V, H, generator=g))
        layer.bias.copy_(torch.randn(V, generator=g))
    h = torch.randn(N, H, generator=g)
    y = torch.randint(0, V, (N,), generator=g)
    w = torch.randn(N, generator=g)  # any sign: rewards with a baseline are negative too
    return layer, h, y, w


def _grads(layer, h, loss_fn):
    layer.zero_grad(set_to_none=True)
    h = h.clone().requires_grad_()
    loss = loss_fn(h)
    loss.backward()
    return [loss.detach(), h.grad, layer.weight.grad, layer.bias.grad]


@pytest.mark.parametrize("shape", SHAPES)
def test_weighted_nll_matches_torch_on_every_isa_path(shape):
    layer, h, y, w = _case(*shape, seed=sum(shape))
    want = _grads(layer, h, lambda h: (F.cross_entropy(layer(h), y, reduction="none") * w).sum())
    want_rows = F.cross_entropy(layer(h), y, reduction="none").detach()
    for isa in ops.cpu_isa_paths():
        with ops.force_cpu_isa(isa):
            got = _grads(layer, h, lambda h: weighted_nll(h, layer, y, w))
            rows = nll_rows(h, layer, y)
        assert (rows - want_rows).abs().max().item() <= 2e-5 * max(1.0, want_rows.abs().max())
        for name, a, b in zip(["loss", "h", "weight", "bias"], want, got, strict=True):
            scale = max(a.abs().max().item(), 1e-3)
            assert (a - b).abs().max().item() <= 2e-5 * scale, (isa, name)


def test_bits_are_the_same_at_every_thread_count_and_on_the_fma_paths():
    """Every sum has a fixed order (k inside the products, vocabulary blocks in order, rows
    in order): 1, 2 and 3 threads give the same bits on each path; avx2 = avx512."""
    layer, h, y, w = _case(200, 32, 1000, seed=1)
    args = (h, layer.weight.detach(), layer.bias.detach(), y, w)
    runs = outputs_per_isa_and_threads(lambda: torch.ops.seqgan_fast.linear_nll(*args))
    for isa, outs in runs.items():
        for o in outs[1:]:
            assert all(torch.equal(a, b) for a, b in zip(outs[0], o, strict=True)), isa
    if "avx2" in runs and "avx512" in runs:
        assert all(torch.equal(a, b) for a, b in zip(runs["avx2"][0], runs["avx512"][0],
                                                     strict=True))


def test_forward_only_gives_the_same_nll_and_no_gradients():
    layer, h, y, w = _case(100, 8, 50, seed=2)
    full = torch.ops.seqgan_fast.linear_nll(h, layer.weight.detach(), layer.bias.detach(), y, w)
    fwd = torch.ops.seqgan_fast.linear_nll(h, layer.weight.detach(), layer.bias.detach(), y)
    assert len(fwd) == 1 and torch.equal(fwd[0], full[0])
    with torch.no_grad():  # no autograd: the forward-only kernel, the same value
        assert torch.equal(weighted_nll(h, layer, y, w), (full[0] * w).sum())


def test_the_incoming_gradient_scales_the_gradients():
    layer, h, y, w = _case(50, 8, 40, seed=3)
    one = _grads(layer, h, lambda h: weighted_nll(h, layer, y, w))
    three = _grads(layer, h, lambda h: 3.0 * weighted_nll(h, layer, y, w))
    for a, b in zip(one[1:], three[1:], strict=True):
        assert torch.allclose(3.0 * a, b, rtol=1e-6, atol=0)


def test_nan_reaches_the_rows_it_is_in():
    layer, h, y, _ = _case(130, 8, 300, seed=4)
    h[7, 3] = float("nan")
    rows = nll_rows(h, layer, y)
    assert torch.isnan(rows[7]) and torch.isfinite(rows[torch.arange(130) != 7]).all()
    w = torch.ones(130)
    _, gh, gw, gb = torch.ops.seqgan_fast.linear_nll(h, layer.weight.detach(),
                                                     layer.bias.detach(), y, w)
    assert torch.isnan(gh[7]).all() and torch.isfinite(gh[torch.arange(130) != 7]).all()
    assert torch.isnan(gw).any() and torch.isnan(gb).all()  # row 7 reaches every entry
    with torch.no_grad():
        layer.bias[11] = float("nan")  # a NaN logit: every row's softmax
    h[7, 3] = 0.0
    assert torch.isnan(nll_rows(h, layer, y)).all()
    grads = torch.ops.seqgan_fast.linear_nll(h, layer.weight.detach(), layer.bias.detach(), y, w)
    assert all(torch.isnan(g).any() for g in grads[1:])


def _generator(seed=0):
    torch.manual_seed(seed)
    return Generator(300, 16, 24, 12)


@pytest.mark.parametrize("total_tokens", [None, 1000])
def test_generator_fused_mle_loss_matches_the_module(total_tokens):
    g = _generator()
    x = torch.randint(0, 300, (37, 12))

    def run(fused):
        g.zero_grad(set_to_none=True)
        loss = g.mle_loss(x, fused=fused, total_tokens=total_tokens)
        loss.backward()
        return [loss.detach()] + [p.grad.clone() for p in g.parameters()]

    want, got = run(False), run(True)
    for a, b in zip(want, got, strict=True):
        assert (a - b).abs().max().item() <= 1e-5 * max(a.abs().max().item(), 1e-3)


def test_generator_nll_matches_torch():
    g = _generator(1)
    x = torch.randint(0, 300, (1100, 12))  # two chunks of nll's batch_size
    with torch.no_grad():
        want = float(-torch.cat([g.log_probs(x[:700]), g.log_probs(x[700:])]).double().sum()
                     / x.numel())
    assert abs(g.nll(x) - want) <= 1e-6 * abs(want)


@pytest.mark.parametrize("lr,tol", [(1e-3, 1e-4), (1e-2, 5e-3)])
def test_mle_training_curve_is_the_modules(lr, tol):
    """200 Adam steps of MLE (clip 5) with the fused loss against torch's: the same loss
    curve. At lr 1e-3 to 1e-4 (measured 1.4e-6); at the paper's 1e-2, where the generator
    memorises these 256 sequences (5.71 -> 2.94 nats), Adam amplifies the rounding
    differences to 1.0e-3 by step 200 (measured), hence the wider bound there."""
    data = torch.randint(0, 300, (64 * 4, 12), generator=torch.Generator().manual_seed(5))
    curves = []
    for fused in (False, True):
        g = _generator(2)
        opt = torch.optim.Adam(g.parameters(), lr=lr)
        curve = []
        for step in range(200):
            x = data[(step % 4) * 64 : (step % 4 + 1) * 64]
            opt.zero_grad(set_to_none=True)
            loss = g.mle_loss(x, fused=fused)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(g.parameters(), 5.0)
            opt.step()
            curve.append(float(loss.detach()))
        curves.append(torch.tensor(curve))
    assert curves[0][-1] < curves[0][0] - 0.25  # it trains
    assert (curves[0] - curves[1]).abs().max().item() <= tol


def test_trainer_uses_the_fused_loss_except_on_the_reference_backend(tmp_path, monkeypatch):
    from seqgan_fast.config import TrainConfig
    from seqgan_fast.train.trainer import SeqGANTrainer

    calls = []
    original = Generator.mle_loss
    monkeypatch.setattr(Generator, "mle_loss", lambda self, x, **kw: calls.append(
        kw.get("fused", False)) or original(self, x, **kw))
    for backend, fused in (("reference", False), ("cpp", True)):
        cfg = TrainConfig.preset("quick").with_overrides(
            [f"backend={backend}", "num_train=64", "num_eval=64"])
        calls.clear()
        tr = SeqGANTrainer(cfg, out_dir=tmp_path / backend, progress=False)
        tr.mle_epoch()
        assert calls and all(c is fused for c in calls), backend
        assert tr.d_step.pool == ("fused" if fused else "module")


def test_linear_nll_rejects_bad_input():
    op = torch.ops.seqgan_fast.linear_nll
    h, w, b, y = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5), torch.tensor([0, 4, 1])
    with pytest.raises(RuntimeError, match=r"target\[1\] = 5 is outside \[0, V=5\)"):
        op(h, w, b, torch.tensor([0, 5, 1]))
    with pytest.raises(RuntimeError, match=r"target\[0\] = -1"):
        op(h, w, b, torch.tensor([-1, 0, 1]))
    with pytest.raises(RuntimeError, match="h must be Float"):
        op(h.double(), w, b, y)
    with pytest.raises(RuntimeError, match="target must be Long"):
        op(h, w, b, y.int())
    with pytest.raises(RuntimeError, match=r"weight must have shape \(V, H=4\)"):
        op(h, torch.randn(5, 3), b, y)
    with pytest.raises(RuntimeError, match="bias must have V=5"):
        op(h, w, torch.randn(4), y)
    with pytest.raises(RuntimeError, match="target must have N=3"):
        op(h, w, b, y[:2])
    with pytest.raises(RuntimeError, match="row_weight must have N=3"):
        op(h, w, b, y, torch.ones(2))
