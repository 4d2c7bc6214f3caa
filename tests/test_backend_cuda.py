"""GPU backends (``cuda`` kernels in seqgan_fast._C and compiled ``triton``) on CUDA tensors:
token agreement with the reference backend on the same device (tiny, odd and paper-size
shapes), distribution, determinism, validation. Skipped without a CUDA device.

Run in its own pytest process: tests/test_backend_triton.py sets TRITON_INTERPRET=1, which
would turn the triton backend here into the (CPU) interpreter.
"""
import os

import pytest
import torch
from helpers import CELLS, assert_tokens_agree, chi_square_pvalue, small_generator

from seqgan_fast import Generator, Oracle, ops
from seqgan_fast.ops.decode import decode_ref
from seqgan_fast.ops.weights import project

if not torch.cuda.is_available():
    pytest.skip("no CUDA device (these tests need a GPU)", allow_module_level=True)

DEV = torch.device("cuda")
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _backends():
    out = []
    for b in ("cuda", "triton"):
        if b == "triton" and INTERPRET:
            reason = "TRITON_INTERPRET is set: run this module in its own process"
        elif not ops.is_available(b, DEV):
            reason = f"backend {b} unavailable on cuda"
        else:
            out.append(b)
            continue
        out.append(pytest.param(b, marks=pytest.mark.skip(reason=reason)))
    return out


BACKENDS = _backends()


def test_expected_backends_are_available():
    """benchmarks/gpu_check.sh sets SEQGAN_FAST_EXPECT_BACKENDS=cuda,triton: there a backend
    that did not build (or import) is a failure, not a row of skipped tests."""
    want = [b for b in os.environ.get("SEQGAN_FAST_EXPECT_BACKENDS", "").split(",") if b]
    missing = [b for b in want if not ops.is_available(b, DEV)]
    assert not missing, f"expected backends unavailable on cuda: {missing}"


def _gen(vocab=300, emb=8, hidden=16, seq_len=7, scale=3.0, seed=0, cell="lstm"):
    return small_generator(vocab, emb, hidden, seq_len, seed=seed, scale=scale,
                           cell=cell).to(DEV)


@pytest.fixture(params=CELLS)
def cell(request):
    return request.param


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("vocab,emb,hidden,B", [(300, 8, 16, 37), (600, 24, 16, 5),
                                                (5000, 32, 32, 64), (20000, 128, 128, 33)])
def test_decode_matches_reference(backend, vocab, emb, hidden, B, cell):
    g = _gen(vocab, emb, hidden, cell=cell)
    tok = torch.randint(0, vocab, (B,), device=DEV)
    h = torch.randn(B, hidden, device=DEV)
    c = torch.randn(B, hidden, device=DEV) if cell == "lstm" else None
    args = (2**64 - 3, 3, 5, 1, 0.7)
    got = ops.decode(g, tok, h, c, *args, backend=backend)
    ref = decode_ref(g.kernel_weights(), tok, h, c, *args)
    assert_tokens_agree(got[0], ref[0], min_agree=0.999 if B >= 1000 else 1.0)
    torch.testing.assert_close(got[1], ref[1], atol=1e-5, rtol=1e-4)
    if cell == "lstm":
        torch.testing.assert_close(got[2], ref[2], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("vocab,B,P", [(300, 5, 0), (600, 70, 2), (5000, 64, 0)])
def test_sample_matches_reference(backend, vocab, B, P, cell):
    g = _gen(vocab, seq_len=9, cell=cell)
    prefix = torch.randint(0, vocab, (B, P), device=DEV)
    kw = dict(seed=12345678901, temperature=1.3, row_offset=11, prefix=prefix)
    got = ops.sample(g, B, backend=backend, **kw)
    assert_tokens_agree(got, ops.sample(g, B, backend="reference", **kw))
    assert torch.equal(got[:, :P], prefix)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("vocab,B,N,T", [(300, 3, 2, 5), (600, 4, 2, 5), (300, 1, 1, 2),
                                         (600, 7, 3, 6)])
def test_rollout_matches_reference_small(backend, vocab, B, N, T, cell):
    g = _gen(vocab, seq_len=T, cell=cell)
    x = g.sample(B, seed=9, backend="reference")
    got = ops.rollout(g, x, N, seed=2**64 - 3, temperature=0.8, backend=backend)
    ref = ops.rollout(g, x, N, seed=2**64 - 3, temperature=0.8, backend="reference")
    assert_tokens_agree(got, ref, min_agree=1.0)
    for t in range(1, T):
        assert torch.equal(got[t - 1, :, :, :t], x[:, :t].expand(N, B, t))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_min_prefix_rollout_is_the_full_rollouts_tail(backend, cell):
    """The kernels run only the rows of prefixes t >= min_prefix: the full rollout's tail."""
    g = _gen(300, seq_len=9, cell=cell)
    x = g.sample(5, seed=9, backend="reference")
    full = ops.rollout(g, x, 3, seed=11, backend=backend)
    for m in (2, 5, 9):
        part = ops.rollout(g, x, 3, seed=11, backend=backend, min_prefix=m)
        assert part.shape == (9 - m, 3, 5, 9) and torch.equal(part, full[m - 1:])


@pytest.mark.parametrize("backend", BACKENDS)
def test_rollout_matches_reference_paper_size(backend):
    # the paper's synthetic setting: B=64, N=16, T=20, V=5000, E=H=32, N(0, 1) oracle weights
    oracle = Oracle(seed=0).to(DEV)
    x = oracle.sample(64, seed=1, backend="reference")
    got = ops.rollout(oracle, x, 16, seed=7, backend=backend)
    ref = ops.rollout(oracle, x, 16, seed=7, backend="reference")
    same = (got == ref).double().mean().item()
    print(f"\n[{backend}] paper-size rollout: tokens agree on {same:.6f} of positions")
    assert_tokens_agree(got, ref, min_agree=0.999)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_rollout_paper_size_and_initial_states(backend):
    torch.manual_seed(0)
    g = Generator(5000, 32, 32, seq_len=20, cell="gru").to(DEV)
    x = g.sample(64, seed=1, backend="reference")
    h0 = torch.randn(64, 32, device=DEV) * 0.5
    got = ops.rollout(g, x, 16, seed=7, h0=h0, backend=backend)
    ref = ops.rollout(g, x, 16, seed=7, h0=h0, backend="reference")
    same = (got == ref).double().mean().item()
    print(f"\n[{backend}] paper-size GRU rollout from h0: tokens agree on {same:.6f}")
    assert_tokens_agree(got, ref, min_agree=0.999)
    s = ops.sample(g, 64, seed=2, h0=h0, backend=backend)
    assert_tokens_agree(s, ops.sample(g, 64, seed=2, h0=h0, backend="reference"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_rollout_matches_reference_large_hidden(backend):
    # H = E = 128 (the `large` config's cell; weights not staged in shared memory), V = 20000
    g = Generator(20000, 128, 128, seq_len=10).to(DEV)
    x = g.sample(8, seed=1, backend="reference")
    got = ops.rollout(g, x, 2, seed=3, backend=backend)
    ref = ops.rollout(g, x, 2, seed=3, backend="reference")
    same = (got == ref).double().mean().item()
    print(f"\n[{backend}] large-hidden rollout: tokens agree on {same:.6f} of positions")
    assert_tokens_agree(got, ref, min_agree=0.999)


@pytest.mark.parametrize("backend", BACKENDS)
def test_first_token_distribution_chi_square(backend):
    g = _gen(5000, 32, 32, scale=1.0)
    w = g.kernel_weights()
    w = w._replace(w_out=w.w_out * 10.0)
    B = 200_000
    tok = torch.full((B,), 5, dtype=torch.int64, device=DEV)
    h = torch.randn(1, 32, device=DEV).expand(B, 32).contiguous()
    c = torch.randn(1, 32, device=DEV).expand(B, 32).contiguous()
    nxt, h1, _ = ops.decode(w, tok, h, c, seed=99, temperature=0.9, backend=backend)
    probs = torch.softmax(project(w, h1[:1]) / 0.9, dim=1)[0]
    assert chi_square_pvalue(nxt, probs) > 1e-3
    wrong = torch.softmax(project(w, h1[:1]) / 0.85, dim=1)[0]
    assert chi_square_pvalue(nxt, wrong) < 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_deterministic_and_seeded(backend):
    g = _gen(600, seq_len=8)
    x = g.sample(16, seed=0, backend="reference")
    a = ops.rollout(g, x, 4, seed=5, backend=backend)
    assert torch.equal(a, ops.rollout(g, x, 4, seed=5, backend=backend))
    assert not torch.equal(a, ops.rollout(g, x, 4, seed=6, backend=backend))
    s = ops.sample(g, 100, seed=1, backend=backend)
    assert torch.equal(s, ops.sample(g, 100, seed=1, backend=backend))
    # a batch split with row offsets reproduces the whole
    part = ops.sample(g, 40, seed=1, backend=backend, row_offset=60)
    assert torch.equal(part, s[60:])


def test_triton_tf32_mode_agreement():
    if "triton" not in [b for b in BACKENDS if isinstance(b, str)]:
        pytest.skip("triton backend unavailable on cuda")
    from seqgan_fast.ops.triton_rollout import rollout_triton

    oracle = Oracle(seed=0).to(DEV)
    x = oracle.sample(64, seed=1, backend="reference")
    w = oracle.kernel_weights()
    got = rollout_triton(w, x, 16, 7, precision="tf32")
    ref = ops.rollout(oracle, x, 16, seed=7, backend="reference")
    same = (got == ref).double().mean().item()
    print(f"\n[triton tf32] paper-size rollout: tokens agree on {same:.6f} of positions")
    assert got.shape == ref.shape and same > 0.5


def test_cuda_op_validation_errors():
    if not ops.is_available("cuda", DEV):
        pytest.skip("cuda backend unavailable (extension built without CUDA)")
    g = _gen(300, seq_len=4)
    w = g.kernel_weights()
    x = g.sample(2, seed=0, backend="reference")
    op = torch.ops.seqgan_fast.rollout
    with pytest.raises(RuntimeError, match="x has token ids"):
        op(torch.full_like(x, 300), 2, *w.tensors(), 0, 0, 1.0)
    with pytest.raises(RuntimeError, match="x must be"):
        op(x.int(), 2, *w.tensors(), 0, 0, 1.0)
    with pytest.raises(RuntimeError, match="num_rollouts"):
        op(x, 0, *w.tensors(), 0, 0, 1.0)
    with pytest.raises(RuntimeError, match="temperature"):
        op(x, 2, *w.tensors(), 0, 0, 0.0)
    with pytest.raises(RuntimeError, match="w_out must have shape"):
        op(x, 2, w.emb, w.w_ih, w.w_hh, w.bias, w.w_out[:, :8].contiguous(), w.b_out, 0, 0, 1.0)
    with pytest.raises(RuntimeError, match="start_token"):
        torch.ops.seqgan_fast.sample(x, *w.tensors(), 4, 300, 0, 0, 1.0)
    with pytest.raises(RuntimeError, match="h must have shape"):
        torch.ops.seqgan_fast.decode(x[:, 0].contiguous(), torch.zeros(2, 8, device=DEV),
                                     torch.zeros(2, 16, device=DEV), *w.tensors(), 0, 0, 0, 0,
                                     1.0)
    # a CPU token tensor with CUDA weights is refused by the dispatcher or the launcher
    with pytest.raises(RuntimeError):
        op(x.cpu(), 2, *w.tensors(), 0, 0, 1.0)
