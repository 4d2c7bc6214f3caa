"""The ``cpp`` backend (fused C++/OpenMP kernels in seqgan_fast._C) against the reference."""
import importlib

import pytest
import torch
from helpers import CELLS, assert_tokens_agree, chi_square_pvalue, small_generator

from seqgan_fast import Discriminator, Generator, _ext, ops
from seqgan_fast.ops.decode import decode_ref
from seqgan_fast.ops.rollout import rollout_ref
from seqgan_fast.ops.sample import sample_ref

# the modules, not the functions of the same name that seqgan_fast.ops re-exports
sample_mod = importlib.import_module("seqgan_fast.ops.sample")
rollout_mod = importlib.import_module("seqgan_fast.ops.rollout")

pytestmark = pytest.mark.skipif(
    not ops.is_available("cpp", "cpu"),
    reason=f"cpp backend unavailable (seqgan_fast._C without CPU kernels; {_ext.REBUILD_HINT})")

# (vocab, emb, hidden, seq_len, batch, scale): odd sizes next to round ones; V not a multiple
# of 256; H not a multiple of 16; the paper's size.
SHAPES = [
    (300, 8, 16, 7, 5, 3.0),
    (257, 7, 20, 2, 1, 3.0),
    (1000, 5, 3, 9, 17, 4.0),
    (5000, 32, 32, 20, 64, 1.0),
]


@pytest.fixture(params=ops.cpu_isa_paths() or ["unbuilt"])
def cpu_path(request):
    """Runs the test once per ISA path of the CPU core this machine can run (forced)."""
    if request.param == "unbuilt":
        yield None
        return
    with ops.force_cpu_isa(request.param) as isa:
        yield isa


def make(vocab, emb, hidden, seq_len, seed=0, scale=1.0, cell="lstm") -> Generator:
    return small_generator(vocab, emb, hidden, seq_len, seed=seed, scale=scale, cell=cell)


@pytest.fixture(params=CELLS)
def cell(request):
    """The generator's cell: every agreement test runs for the LSTM and the GRU."""
    return request.param


@pytest.mark.parametrize("V,E,H,T,B,scale", SHAPES)
@pytest.mark.parametrize("temperature", [1.0, 0.7, 1.3])
def test_sample_matches_reference(V, E, H, T, B, scale, temperature, cpu_path, cell):
    g = make(V, E, H, T, scale=scale, cell=cell)
    w = g.kernel_weights()
    seed = 2**64 - 3 if temperature == 1.0 else 17
    got = ops.sample(g, B, seed=seed, temperature=temperature, backend="cpp")
    want = sample_ref(w, torch.zeros(B, 0, dtype=torch.int64), T, seed, temperature)
    assert_tokens_agree(got, want)


@pytest.mark.parametrize("V,E,H,T,B,scale", SHAPES)
@pytest.mark.parametrize("P", [1, "half", "all"])
def test_sample_with_prefix_matches_reference(V, E, H, T, B, scale, P, cpu_path, cell):
    g = make(V, E, H, T, scale=scale, cell=cell)
    P = {"half": T // 2, "all": T}.get(P, P)
    prefix = torch.randint(0, V, (B, P))
    got = ops.sample(g, B, seed=5, temperature=0.9, prefix=prefix, row_offset=3, backend="cpp")
    want = sample_ref(g.kernel_weights(), prefix, T, 5, 0.9, row_offset=3)
    assert torch.equal(got[:, :P], prefix)
    assert_tokens_agree(got, want)


def test_sample_rows_are_logical():
    g = make(700, 8, 16, 6, scale=3.0)
    whole = ops.sample(g, 23, seed=2, backend="cpp")
    parts = torch.cat([ops.sample(g, 9, seed=2, backend="cpp"),
                       ops.sample(g, 14, seed=2, row_offset=9, backend="cpp")])
    assert torch.equal(whole, parts)
    assert not torch.equal(whole, ops.sample(g, 23, seed=3, backend="cpp"))


@pytest.mark.parametrize("B,N,T,V,E,H,scale,temperature", [
    (3, 2, 5, 300, 8, 16, 3.0, 1.0),
    (1, 1, 2, 300, 8, 16, 3.0, 1.0),
    (5, 3, 7, 257, 7, 20, 3.0, 1.3),
    (17, 4, 9, 1000, 5, 3, 4.0, 0.7),
    (64, 2, 20, 5000, 32, 32, 1.0, 1.0),
])
def test_rollout_matches_reference(B, N, T, V, E, H, scale, temperature, cpu_path, cell):
    g = make(V, E, H, T, scale=scale, cell=cell)
    x = ops.sample(g, B, seed=1, backend="reference")
    got = ops.rollout(g, x, N, seed=2**63 + 11, temperature=temperature, backend="cpp")
    want = rollout_ref(g.kernel_weights(), x, N, 2**63 + 11, temperature)
    assert got.shape == (T - 1, N, B, T) and got.dtype == torch.int64
    for t in range(1, T):
        assert torch.equal(got[t - 1, :, :, :t], x[:, :t].expand(N, B, t))
    assert_tokens_agree(got, want)


def test_rollout_degenerate_lengths():
    g = make(300, 8, 16, 1)
    x = torch.randint(0, 300, (4, 1))
    out = ops.rollout(g, x, 3, backend="cpp")
    assert out.shape == (0, 3, 4, 1)
    empty = ops.rollout(g, torch.zeros(0, 5, dtype=torch.int64), 2, backend="cpp")
    assert empty.shape == (4, 2, 0, 5)


@pytest.mark.parametrize("B,H,temperature", [(1, 16, 1.0), (37, 20, 0.8), (64, 32, 1.7)])
def test_decode_matches_reference(B, H, temperature, cpu_path, cell):
    g = make(777, 9, H, 5, scale=3.0, cell=cell)
    w = g.kernel_weights()
    tokens = torch.randint(0, 777, (B,))
    h = torch.randn(B, H) * 0.5
    c = torch.randn(B, H) if cell == "lstm" else None
    got = ops.decode(g, tokens, h, c, seed=9, step=4, row_offset=100, stream=1,
                     temperature=temperature, backend="cpp")
    want = decode_ref(w, tokens, h, c, 9, 4, 100, 1, temperature)
    assert_tokens_agree(got[0], want[0])
    torch.testing.assert_close(got[1], want[1], rtol=1e-5, atol=2e-6)
    if cell == "lstm":
        torch.testing.assert_close(got[2], want[2], rtol=1e-5, atol=2e-6)
    else:
        assert got[2] is None


def first_token_probs(g: Generator, temperature: float) -> torch.Tensor:
    """The exact first-step distribution: softmax of the logits after the start token."""
    with torch.no_grad():
        logits = g(torch.zeros(1, 1, dtype=torch.int64))[0, 0].double()
    return torch.softmax(logits / temperature, 0)


@pytest.mark.parametrize("temperature", [1.0, 0.8])
def test_first_token_chi_square(temperature, cpu_path, cell):
    g = make(700, 8, 16, 1, seed=3, scale=10.0, cell=cell)  # 3 tiles, the last one short
    x = ops.sample(g, 200_000, seed=21, temperature=temperature, backend="cpp")
    assert chi_square_pvalue(x[:, 0], first_token_probs(g, temperature)) > 0.001


def test_chi_square_detects_wrong_temperature(cell):
    # the test above can fail: the same draws are rejected against another temperature
    g = make(700, 8, 16, 1, seed=3, scale=10.0, cell=cell)
    x = ops.sample(g, 200_000, seed=21, temperature=1.0, backend="cpp")
    assert chi_square_pvalue(x[:, 0], first_token_probs(g, 1.15)) < 1e-6


def test_deterministic_across_runs_and_thread_counts(cpu_path, cell):
    g = make(1000, 16, 32, 12, scale=2.0, cell=cell)
    x = ops.sample(g, 40, seed=0, backend="cpp")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        r1 = ops.rollout(g, x, 5, seed=3, backend="cpp")
        s1 = ops.sample(g, 40, seed=4, backend="cpp")
        torch.set_num_threads(2)
        r2 = ops.rollout(g, x, 5, seed=3, backend="cpp")
        s2 = ops.sample(g, 40, seed=4, backend="cpp")
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(r1, r2) and torch.equal(s1, s2)
    assert torch.equal(r2, ops.rollout(g, x, 5, seed=3, backend="cpp"))
    assert not torch.equal(r2, ops.rollout(g, x, 5, seed=4, backend="cpp"))


def test_auto_routes_to_cpp_on_cpu(monkeypatch):
    calls = []

    def spy(table, name):
        inner = table["cpp"]

        def wrapped(*args, **kwargs):
            calls.append(name)
            return inner(*args, **kwargs)
        monkeypatch.setitem(table, "cpp", wrapped)

    spy(sample_mod._IMPLS, "sample")
    spy(rollout_mod._IMPLS, "rollout")
    g = make(300, 8, 16, 6, scale=3.0)
    x = g.sample(4, seed=1)  # backend="auto"
    assert calls == ["sample"]
    assert torch.equal(x, g.sample(4, seed=1, backend="reference"))
    comps = ops.rollout(g, x, 2, seed=0)
    assert calls[-1] == "rollout" and torch.equal(comps, rollout_ref(g.kernel_weights(), x, 2, 0))
    d = Discriminator(300, seq_len=6, emb_dim=8, filter_sizes=[2, 3], num_filters=[4, 5])
    r = ops.rollout_rewards(g, d, x, num_rollouts=2, seed=0)
    assert calls == ["sample", "rollout", "rollout"] and r.shape == (4, 6)


# -- validation: every TORCH_CHECK, through torch.ops directly ------------------------------
V_, E_, H_ = 50, 4, 8


def weights():
    g = make(V_, E_, H_, 5)
    return list(g.kernel_weights().tensors())


def call_rollout(x=None, n=2, w=None, start=0, seed=0, temperature=1.0):
    x = torch.zeros(2, 5, dtype=torch.int64) if x is None else x
    return torch.ops.seqgan_fast.rollout(x, n, *(w or weights()), start, seed, temperature)


def call_sample(prefix=None, w=None, seq_len=5, start=0, seed=0, row_offset=0, temperature=1.0):
    prefix = torch.zeros(3, 2, dtype=torch.int64) if prefix is None else prefix
    return torch.ops.seqgan_fast.sample(prefix, *(w or weights()), seq_len, start, seed,
                                        row_offset, temperature)


def call_decode(tokens=None, h=None, c=None, w=None, step=0, row_offset=0, stream=0,
                temperature=1.0):
    tokens = torch.zeros(3, dtype=torch.int64) if tokens is None else tokens
    h = torch.zeros(3, H_) if h is None else h
    c = torch.zeros(3, H_) if c is None else c
    return torch.ops.seqgan_fast.decode(tokens, h, c, *(w or weights()), 0, step, row_offset,
                                        stream, temperature)


def gru_weights():
    return list(make(V_, E_, H_, 5, cell="gru").kernel_weights().tensors())


def call_sample_state(h0=None, c0=None, cell=0, w=None):
    prefix = torch.zeros(3, 2, dtype=torch.int64)
    return torch.ops.seqgan_fast.sample(prefix, *(w or weights()), 5, 0, 0, 0, 1.0, cell, h0, c0)


def call_rollout_state(h0=None, c0=None, cell=0, w=None):
    x = torch.zeros(2, 5, dtype=torch.int64)
    return torch.ops.seqgan_fast.rollout(x, 2, *(w or weights()), 0, 0, 1.0, cell, h0, c0)


def bad_weight(index, value):
    w = weights()
    w[index] = value
    return w


@pytest.mark.parametrize("call,match", [
    (lambda: call_rollout(x=torch.full((2, 5), V_)), "x has token id 50"),
    (lambda: call_rollout(x=torch.full((2, 5), -1)), "x has token id -1"),
    (lambda: call_rollout(x=torch.zeros(2, 5, dtype=torch.int32)), "x must be Long"),
    (lambda: call_rollout(x=torch.zeros(10, dtype=torch.int64)), "x must have 2 dimensions"),
    (lambda: call_rollout(x=torch.zeros(5, 2, dtype=torch.int64).t()), "x must be contiguous"),
    (lambda: call_rollout(n=0), "num_rollouts must be >= 1"),
    (lambda: call_rollout(n=2**40), "num_rollouts: .*32-bit row counter"),
    (lambda: call_rollout(start=V_), "start_token must be in"),
    (lambda: call_rollout(start=-1), "start_token must be in"),
    (lambda: call_rollout(temperature=0.0), "temperature must be"),
    (lambda: call_rollout(temperature=float("inf")), "temperature must be"),
    (lambda: call_rollout(temperature=float("nan")), "temperature must be"),
    (lambda: call_rollout(temperature=1e-300), "temperature must be representable"),
    (lambda: call_rollout(w=bad_weight(0, torch.zeros(V_, E_, dtype=torch.float64))),
     "emb must be Float"),
    (lambda: call_rollout(w=bad_weight(1, torch.zeros(4 * H_, E_ + 1))), "w_ih must have shape"),
    (lambda: call_rollout(w=bad_weight(2, torch.zeros(4 * H_ + 4, H_))), "w_hh must have shape"),
    (lambda: call_rollout(w=bad_weight(3, torch.zeros(4 * H_ + 1))), "bias must have shape"),
    (lambda: call_rollout(w=bad_weight(3, torch.zeros(1, 4 * H_))), "bias must have 1 dim"),
    (lambda: call_rollout(w=bad_weight(4, torch.zeros(V_ + 1, H_))), "w_out must have shape"),
    (lambda: call_rollout(w=bad_weight(4, torch.zeros(H_, V_).t())), "w_out must be contiguous"),
    (lambda: call_rollout(w=bad_weight(5, torch.zeros(V_ - 1))), "b_out must have shape"),
    (lambda: call_rollout(w=bad_weight(0, torch.zeros(0, E_))), "must be non-empty"),
    (lambda: call_sample(prefix=torch.full((3, 2), V_)), "prefix has token id 50"),
    (lambda: call_sample(prefix=torch.zeros(3, 2, dtype=torch.float32)), "prefix must be Long"),
    (lambda: call_sample(seq_len=1), "seq_len must be >= the prefix length 2"),
    (lambda: call_sample(seq_len=0, prefix=torch.zeros(3, 0, dtype=torch.int64)),
     "seq_len must be >= 1"),
    (lambda: call_sample(start=V_ + 3), "start_token must be in"),
    (lambda: call_sample(row_offset=-1), "row_offset must be in"),
    (lambda: call_sample(row_offset=2**32 - 2), "row_offset must be in"),
    (lambda: call_sample(temperature=-0.5), "temperature must be"),
    (lambda: call_decode(tokens=torch.tensor([0, V_, 1])), "tokens has token id 50"),
    (lambda: call_decode(tokens=torch.zeros(3, 1, dtype=torch.int64)),
     "tokens must have 1 dim"),
    (lambda: call_decode(h=torch.zeros(3, H_ + 1)), "h must have shape"),
    (lambda: call_decode(c=torch.zeros(2, H_)), "c must have shape"),
    (lambda: call_decode(h=torch.zeros(3, H_, dtype=torch.float64)), "h must be Float"),
    (lambda: call_decode(step=-1), "step must be in"),
    (lambda: call_decode(step=2**32), "step must be in"),
    (lambda: call_decode(row_offset=2**32), "row_offset must be in"),
    (lambda: call_decode(stream=2), "stream must be 0"),
    (lambda: call_decode(temperature=0.0), "temperature must be"),
    (lambda: call_sample_state(cell=2), "cell must be 0 \\(lstm\\) or 1 \\(gru\\)"),
    (lambda: call_sample_state(cell=1), "w_ih must have shape \\(24, 4\\)"),  # LSTM weights
    (lambda: call_rollout_state(cell=0, w=gru_weights()), "w_ih must have shape \\(32, 4\\)"),
    (lambda: call_sample_state(h0=torch.zeros(2, H_)), "h0 must have shape \\(3, 8\\)"),
    (lambda: call_sample_state(h0=torch.zeros(3, H_), c0=torch.zeros(3, H_ + 1)),
     "c0 must have shape"),
    (lambda: call_rollout_state(h0=torch.zeros(2, H_, dtype=torch.float64)), "h0 must be Float"),
    (lambda: call_rollout_state(h0=torch.zeros(2, H_), c0=torch.zeros(2, H_), cell=1,
                                w=gru_weights()), "c0: a GRU has no cell state"),
])
def test_op_validation_messages(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


def test_ops_accept_valid_arguments():
    # the validation tests above are not vacuous: the same calls with good values run
    assert call_rollout().shape == (4, 2, 2, 5)
    assert call_sample().shape == (3, 5)
    assert call_sample_state(torch.zeros(3, H_), torch.zeros(3, H_)).shape == (3, 5)
    assert call_rollout_state(torch.zeros(2, H_), None, 1, gru_weights()).shape == (4, 2, 2, 5)
    tok, h, c = call_decode()
    assert tok.shape == (3,) and h.shape == (3, H_) and c.shape == (3, H_)


@pytest.mark.parametrize("call,exc,match", [
    (lambda g: ops.rollout(g, torch.full((2, 5), V_), 2, backend="cpp"), ValueError,
     "x has token ids outside"),
    (lambda g: ops.rollout(g, torch.zeros(2, 5, dtype=torch.int32), 2, backend="cpp"), TypeError,
     "x must be int64"),
    (lambda g: ops.rollout(g, torch.zeros(2, 5, dtype=torch.int64), 0, backend="cpp"),
     ValueError, "num_rollouts"),
    (lambda g: ops.sample(g, 3, temperature=0.0, backend="cpp"), ValueError, "temperature"),
    (lambda g: ops.sample(g, 3, prefix=torch.full((3, 2), V_), backend="cpp"), ValueError,
     "prefix"),
    (lambda g: ops.sample(g, 3, prefix=torch.zeros(3, 9, dtype=torch.int64), backend="cpp"),
     ValueError, "prefix"),
    (lambda g: ops.decode(g, torch.full((3,), V_), torch.zeros(3, H_), torch.zeros(3, H_),
                          backend="cpp"), ValueError, "tokens"),
    (lambda g: ops.decode(g, torch.zeros(3, dtype=torch.int64), torch.zeros(3, H_),
                          torch.zeros(3, H_), step=-1, backend="cpp"), ValueError, "step"),
])
def test_public_api_validation(call, exc, match):
    with pytest.raises(exc, match=match):
        call(make(V_, E_, H_, 5))
