"""The highway layer on the unpacked GEMM (seqgan_fast/ops/highway.py, csrc/common/gemm_nn.h)
against torch: the op's products, its bits across thread counts and ISA paths, the layer's
outputs and gradients against the module's, and the op's argument checks."""
from __future__ import annotations

import copy

import pytest
import torch
from helpers import outputs_per_isa_and_threads

from seqgan_fast import ops
from seqgan_fast.models import Highway
from seqgan_fast.ops.highway import fused_available, highway, highway_logits, inference_weights

pytestmark = pytest.mark.skipif(not fused_available("cpu"),
                                reason="needs the compiled extension (seqgan_fast._C)")

# (R, K, N): rows not a multiple of any path's microkernel, K over two k blocks of 256 and
# not a multiple of one, N with a partial panel on every path (and one narrower than a panel);
# N = 96: a last panel of whole vectors narrower than the AVX-512 panel (the narrow
# microkernel, no padded copies)
SHAPES = [(23, 300, 77), (64, 1720 // 4, 130), (7, 5, 3), (130, 64, 200), (9, 300, 96)]


def _operands(R: int, K: int, N: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(R, K, generator=g), torch.randn(K, N, generator=g), \
        torch.randn(R, generator=g), torch.randn(R, N, generator=g)


@pytest.mark.parametrize("shape", SHAPES)
def test_gemm_nn_is_the_product_on_every_isa_path(shape):
    a, b, bias, c0 = _operands(*shape, seed=sum(shape))
    want = a.double() @ b.double()
    tol = 1e-5 * (shape[1] ** 0.5) * want.abs().max().item()
    for isa in ops.cpu_isa_paths():
        with ops.force_cpu_isa(isa):
            plain = torch.ops.seqgan_fast.gemm_nn(a, b)
            biased = torch.ops.seqgan_fast.gemm_nn(a, b, bias)
            col_biased = torch.ops.seqgan_fast.gemm_nn(a, b, None, c0[0])
            c = c0.clone()
            out = torch.ops.seqgan_fast.gemm_nn_acc_(c, a, b)
        assert out.data_ptr() == c.data_ptr()  # in place
        assert (plain.double() - want).abs().max().item() <= tol, isa
        assert (biased.double() - want - bias.double()[:, None]).abs().max().item() <= tol
        assert (col_biased.double() - want - c0.double()[0]).abs().max().item() <= tol
        assert (c.double() - want - c0.double()).abs().max().item() <= tol


def test_gemm_nn_packs_many_rows_without_changing_a_bit():
    """From 1,024 rows B is copied into contiguous panels first (csrc/common/gemm_nn.h): the
    rows of a 1,100-row product are the same bits as the same rows multiplied alone, on every
    path, with a padded last panel (N = 77)."""
    a, bs, _, c0 = _operands(1100, 300, 77, seed=11)
    for isa in ops.cpu_isa_paths():
        with ops.force_cpu_isa(isa):
            many = torch.ops.seqgan_fast.gemm_nn(a, bs, None, c0[0])
            few = torch.ops.seqgan_fast.gemm_nn(a[1000:1050].contiguous(), bs, None, c0[0])
        assert torch.equal(many[1000:1050], few), isa
        want = a.double() @ bs.double() + c0.double()[0]
        assert (many.double() - want).abs().max().item() <= 1e-4 * want.abs().max().item()


def test_gemm_nn_bits_are_the_same_at_every_thread_count_and_on_the_fma_paths():
    """Every output sums over k in order with one FMA per term: 1, 2 and 3 threads give the
    same bits on each path, and avx2 and avx512 (both FMA) give the same bits."""
    a, b, bias, _ = _operands(130, 600, 200, seed=3)
    runs = outputs_per_isa_and_threads(lambda: torch.ops.seqgan_fast.gemm_nn(a, b, bias))
    for isa, outs in runs.items():
        assert all(torch.equal(outs[0], o) for o in outs[1:]), isa
    if "avx2" in runs and "avx512" in runs:
        assert torch.equal(runs["avx2"][0], runs["avx512"][0])


@pytest.mark.parametrize("B,F", [(64, 200), (37, 77), (1, 16)])
def test_fused_highway_gives_the_modules_outputs_and_gradients(B, F):
    torch.manual_seed(B + F)
    layer = Highway(F)
    x = torch.randn(B, F, requires_grad=True)
    gy = torch.randn(B, F)

    def run(fn):
        layer.zero_grad(set_to_none=True)
        x.grad = None
        y = fn()
        y.backward(gy)
        return [y.detach(), x.grad, *(p.grad for p in layer.parameters())]

    want, got = run(lambda: layer(x)), run(lambda: highway(x, layer))
    assert got[0].is_contiguous()
    for name, a, b in zip(["y", "x", "hidden.w", "hidden.b", "gate.w", "gate.b"], want, got,
                          strict=True):
        assert (a - b).abs().max().item() <= 1e-5 * max(a.abs().max().item(), 1.0), name


def test_discriminator_head_uses_the_fused_highway_only_when_asked(monkeypatch):
    from seqgan_fast import Discriminator
    from seqgan_fast.ops import highway as hw

    calls = []
    monkeypatch.setattr(hw, "highway", lambda x, layer: calls.append(1) or layer(x))
    d = Discriminator(50, 8, emb_dim=8, filter_sizes=(2, 3), num_filters=(4, 5)).eval()
    x = torch.randint(0, 50, (3, 8))
    d(x)
    assert not calls
    d(x, pool="fused")
    assert calls


def test_gemm_nn_rejects_bad_input():
    mm, acc = torch.ops.seqgan_fast.gemm_nn, torch.ops.seqgan_fast.gemm_nn_acc_
    a, b = torch.randn(3, 4), torch.randn(4, 5)
    with pytest.raises(RuntimeError, match="a must be Float"):
        mm(a.double(), b)
    with pytest.raises(RuntimeError, match="must agree on K"):
        mm(a, torch.randn(3, 5))
    with pytest.raises(RuntimeError, match="b must have 2 dimensions"):
        mm(a, torch.randn(4))
    with pytest.raises(RuntimeError, match="b must be contiguous"):
        mm(a, torch.randn(5, 4).t())
    with pytest.raises(RuntimeError, match="row_bias must have a's R=3"):
        mm(a, b, torch.randn(5))
    with pytest.raises(RuntimeError, match="col_bias must have b's N=5"):
        mm(a, b, None, torch.randn(3))
    with pytest.raises(RuntimeError, match="row_bias or col_bias, not both"):
        mm(a, b, torch.randn(3), torch.randn(5))
    with pytest.raises(RuntimeError, match=r"c must have shape \(3, 5\)"):
        acc(torch.zeros(3, 4), a, b)


def _head_weights(F: int, C: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    layer = Highway(F).eval()
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * F ** -0.5)
    out = torch.nn.Linear(F, C)
    with torch.no_grad():
        out.weight.copy_(torch.randn(C, F, generator=g) * F ** -0.5)
        out.bias.copy_(torch.randn(C, generator=g))
    x = torch.randn(1100, F, generator=g).clamp_min(0)  # pooled features are ReLU outputs
    return layer, out, x


# F: a partial last panel and a tail narrower than a native vector on every path (77), whole
# AVX2 vectors with an AVX-512 tail (1720 // 2 = 860: 53.75 zmm), whole panels (128)
@pytest.mark.parametrize("F,C", [(77, 2), (860, 2), (128, 3)])
def test_highway_logits_is_the_head_on_every_isa_path(F, C):
    """The fused scoring head (csrc/common/highway_head.h) against the module in float64, from
    few rows (B unpacked) to past 1,024 (packed), on every ISA path."""
    layer, out, x = _head_weights(F, C, seed=F)
    w = inference_weights(layer)
    with torch.no_grad():
        want = copy.deepcopy(out).double()(copy.deepcopy(layer).double()(x.double()))
    for isa in ops.cpu_isa_paths():
        with ops.force_cpu_isa(isa):
            for rows in (1, 7, 1100):
                got = highway_logits(x[:rows], w, out)
                assert got.shape == (rows, C) and got.dtype == torch.float32
                err = (got.double() - want[:rows]).abs().max().item()
                assert err <= 1e-5 * max(1.0, want.abs().max().item()), (isa, rows, err)


@pytest.mark.parametrize("F", [300, 77])
def test_highway_logits_bits_are_the_same_at_every_thread_count_and_on_the_fma_paths(F):
    """Each logit sums 16 lanes of column-ordered FMA sums on the thread owning its row:
    1, 2 and 3 threads, and the AVX-512 and AVX2 paths, give the same bits (F = 77: the tail
    lanes land where the other path puts them)."""
    layer, out, x = _head_weights(F, 2, seed=5)
    w = inference_weights(layer)
    runs = outputs_per_isa_and_threads(lambda: highway_logits(x, w, out))
    for isa, outs in runs.items():
        assert all(torch.equal(outs[0], o) for o in outs[1:]), isa
    if "avx2" in runs and "avx512" in runs:
        assert torch.equal(runs["avx2"][0], runs["avx512"][0])


def test_highway_logits_keeps_a_nan_a_nan():
    """relu(NaN) must stay NaN (a max(z, 0) would turn it into 0): the scorer's non-finite
    check then sees it."""
    layer, out, x = _head_weights(64, 2, seed=6)
    with torch.no_grad():
        layer.hidden.weight[3, 5] = float("nan")
    x = x[:10].clone()
    got = highway_logits(x, inference_weights(layer), out)
    assert bool(torch.isnan(got).all())


def test_highway_logits_names_the_bad_argument():
    layer, out, x = _head_weights(64, 2, seed=7)
    w = inference_weights(layer)
    op = torch.ops.seqgan_fast.highway_logits
    wo, bo = out.weight.detach(), out.bias.detach()
    with pytest.raises(RuntimeError, match="wt_t must have shape"):
        op(x, w.hidden_t, w.hidden_b, w.gate_t[:10].contiguous(), w.gate_b, wo, bo)
    with pytest.raises(RuntimeError, match="wo must have shape"):
        op(x, w.hidden_t, w.hidden_b, w.gate_t, w.gate_b, wo[:, :10].contiguous(), bo)
    with pytest.raises(RuntimeError, match="bh must have F=64"):
        op(x, w.hidden_t, w.hidden_b[:3].contiguous(), w.gate_t, w.gate_b, wo, bo)
    with pytest.raises(RuntimeError, match="x must be Float"):
        op(x.double(), w.hidden_t, w.hidden_b, w.gate_t, w.gate_b, wo, bo)
