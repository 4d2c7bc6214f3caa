"""Per-row initial states (h0, c0) and the GRU cell on every backend that runs here.

A state handed to sample / rollout as h0 (c0) must give the tokens that teacher-forcing the
history that produced it gives, step by step through ``decode`` (same Philox counters); the
model's teacher-forced logits from ``state=encode(history)`` must equal those of feeding the
history itself; and a separate encoder must receive gradients through the state.
"""
import pytest
import torch
from helpers import CELLS, assert_tokens_agree, small_generator

from seqgan_fast import Generator, ops

BACKENDS = [b for b in ("reference", "cpp") if ops.is_available(b, "cpu")]


def _history_state(g: Generator, hist: torch.Tensor):
    """(h0, c0) after the start token and hist (B, L): a teacher-forced decode loop."""
    B = hist.shape[0]
    h, c = g.zero_state(B)
    tok = torch.full((B,), g.start_token, dtype=torch.int64)
    for s in range(hist.shape[1] + 1):
        _, h, c = ops.decode(g, tok, h, c, seed=0, backend="reference")
        if s < hist.shape[1]:
            tok = hist[:, s]
    return h, c


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_state_gives_the_tokens_of_teacher_forcing_its_history(cell, backend):
    V, H, T, B = 301, 17, 6, 9
    g = small_generator(V, 7, H, T, scale=3.0, cell=cell)
    hist = torch.randint(0, V, (B, 5))
    with torch.no_grad():
        h0, c0 = g.encode(hist)  # the tied encoder: the generator's own pass
    h_tf, c_tf = _history_state(g, hist)
    torch.testing.assert_close(h0, h_tf, rtol=1e-5, atol=1e-6)
    got = ops.sample(g, B, seed=77, h0=h0, c0=c0, backend=backend)
    # teacher-force the history through decode, then feed the start token and sample
    h, c = h_tf, c_tf
    tok = torch.full((B,), g.start_token, dtype=torch.int64)
    want = torch.empty(B, T, dtype=torch.int64)
    for s in range(T):
        tok, h, c = ops.decode(g, tok, h, c, seed=77, step=s, stream=0, backend=backend)
        want[:, s] = tok
    assert_tokens_agree(got, want)
    assert (got != ops.sample(g, B, seed=77, backend=backend)).any()  # the state mattered


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("V,E,H,T,B,N", [(300, 8, 16, 7, 5, 3), (1000, 5, 3, 9, 17, 2),
                                         (257, 7, 20, 4, 1, 4)])
def test_initial_states_agree_with_reference(cell, V, E, H, T, B, N):
    if "cpp" not in BACKENDS:
        pytest.skip("cpp backend not built")
    g = small_generator(V, E, H, T, scale=3.0, cell=cell)
    h0 = torch.randn(B, H)
    c0 = torch.randn(B, H) if cell == "lstm" else None
    s_cpp = ops.sample(g, B, seed=3, h0=h0, c0=c0, backend="cpp")
    assert_tokens_agree(s_cpp, ops.sample(g, B, seed=3, h0=h0, c0=c0, backend="reference"))
    x = ops.sample(g, B, seed=1, backend="reference")
    r_cpp = ops.rollout(g, x, N, seed=5, h0=h0, c0=c0, backend="cpp")
    r_ref = ops.rollout(g, x, N, seed=5, h0=h0, c0=c0, backend="reference")
    assert_tokens_agree(r_cpp, r_ref)
    assert (r_cpp != ops.rollout(g, x, N, seed=5, backend="cpp")).any()
    # zeros given explicitly are the default
    z = torch.zeros(B, H)
    assert torch.equal(ops.sample(g, B, seed=3, h0=z, backend="cpp"),
                       ops.sample(g, B, seed=3, backend="cpp"))


@pytest.mark.parametrize("cell", CELLS)
def test_forward_from_state_equals_feeding_the_history(cell):
    g = small_generator(200, 6, 11, 5, scale=2.0, cell=cell)
    hist = torch.randint(0, 200, (4, 3))
    x = torch.randint(0, 200, (4, 5))
    start = torch.full((4, 1), g.start_token)
    # the tied model over [hist, start, x]: position L + 1 + t sees hist, start, x[:t]
    full = g(torch.cat([hist, start, x], dim=1))[:, hist.shape[1] + 1 :]
    torch.testing.assert_close(g(x, state=g.encode(hist)), full, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_gru_weights_load_into_torch_and_back(cell):
    g = small_generator(100, 6, 10, 4, scale=2.0, cell=cell)
    rnn = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(6, 10, batch_first=True)
    rnn.load_state_dict(g.rnn.state_dict())
    x = torch.randint(0, 100, (3, 4))
    emb = g.embedding(g._inputs(x))
    torch.testing.assert_close(g.rnn(emb)[0], rnn(emb)[0])
    hs, _ = g.prefix_states(x)  # the kernels' weight layout, through the reference cell
    torch.testing.assert_close(hs.transpose(0, 1), rnn(emb)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_separate_encoder_gets_gradients(cell):
    g = Generator(50, 6, 8, 5, cell=cell, encoder="separate")
    hist = torch.randint(0, 50, (4, 3))
    x = torch.randint(0, 50, (4, 5))
    loss = g.mle_loss(x, state=g.encode(hist))
    loss.backward()
    grads = [p.grad for p in g.encoder.parameters()]
    assert all(gr is not None and float(gr.abs().sum()) > 0 for gr in grads)
    # a detached state would leave the encoder without gradient
    g.zero_grad(set_to_none=True)
    h0, c0 = g.encode(hist)
    g.mle_loss(x, state=(h0.detach(), None if c0 is None else c0.detach())).backward()
    assert all(p.grad is None for p in g.encoder.parameters())


@pytest.mark.parametrize("cell", CELLS)
def test_separate_encoder_trains_in_mle_and_policy_gradient(cell):
    # the trainer's calls (no explicit state): the model's own factorisation reaches the encoder
    g = Generator(50, 6, 8, 6, cell=cell, encoder="separate", encoder_len=2)
    x = torch.randint(0, 50, (4, 6))
    for loss in (g.mle_loss(x), g.pg_loss(x, torch.rand(4, 6))):
        g.zero_grad(set_to_none=True)
        loss.backward()
        assert all(p.grad is not None and float(p.grad.abs().sum()) > 0
                   for p in g.encoder.parameters())
    # rewards of the history positions only: the encoder (read after them) gets nothing
    g.zero_grad(set_to_none=True)
    r = torch.zeros(4, 6)
    r[:, :2] = 1.0
    g.pg_loss(x, r).backward()
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0
               for p in g.encoder.parameters())


def test_state_validation():
    g = small_generator(50, 4, 8, 5, cell="gru")
    with pytest.raises(ValueError, match="a GRU has no cell state"):
        ops.sample(g, 3, h0=torch.zeros(3, 8), c0=torch.zeros(3, 8), backend="reference")
    with pytest.raises(ValueError, match="h0 must be \\(3, 8\\) float32"):
        ops.sample(g, 3, h0=torch.zeros(3, 9), backend="reference")
    with pytest.raises(ValueError, match="initial state h0 holds NaN"):
        ops.rollout(g, torch.zeros(3, 5, dtype=torch.int64), 2,
                    h0=torch.full((3, 8), float("nan")), backend="reference")
    with pytest.raises(ValueError, match="pass c=None"):
        ops.decode(g, torch.zeros(3, dtype=torch.int64), torch.zeros(3, 8), torch.zeros(3, 8))
    with pytest.raises(ValueError, match="cell must be one of"):
        Generator(50, cell="rnn")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_separate_encoder_sample_and_rollout(cell, backend):
    from seqgan_fast.models.encoded import stage_seed

    torch.manual_seed(0)
    g = Generator(120, 6, 9, 7, cell=cell, encoder="separate", encoder_len=3)
    w, L, B, N = g.kernel_weights(), 3, 5, 2
    x = ops.sample(g, B, seed=11, backend=backend)
    # the history from zeros, the continuation from the encoder's state
    assert torch.equal(x[:, :L], ops.sample(w, B, seed=11, seq_len=L, backend=backend))
    with torch.no_grad():
        h0, c0 = g.encode(x[:, :L])
    cont = ops.sample(w, B, seed=stage_seed(11, 1), seq_len=4, h0=h0, c0=c0, backend=backend)
    assert torch.equal(x[:, L:], cont)
    comps = ops.rollout(g, x, N, seed=4, backend=backend)
    assert comps.shape == (6, N, B, 7)
    for t in range(1, 7):
        assert torch.equal(comps[t - 1, :, :, :t], x[:, :t].expand(N, B, t))
    # prefixes past the history: the continuation's rollout from the encoder's state
    tail = ops.rollout(w, x[:, L:].contiguous(), N, seed=stage_seed(4, 1), h0=h0, c0=c0,
                       backend=backend)
    assert torch.equal(comps[L:, :, :, L:], tail)
    # completed histories (t < L) are re-encoded: continuations differ from x's state
    assert not torch.equal(comps[0, :, :, L:], comps[L - 1, :, :, L:])
    if backend == "cpp":
        assert_tokens_agree(comps, ops.rollout(g, x, N, seed=4, backend="reference"))
    # min_prefix: only the prefixes t >= m are computed, each the full call's completion
    # (history rollout, t = L, continuation rollout)
    for m in (2, L, L + 1, 6):
        part = ops.rollout(g, x, N, seed=4, backend=backend, min_prefix=m)
        assert part.shape == (7 - m, N, B, 7) and torch.equal(part, comps[m - 1:]), m
    # the model's likelihood follows the same factorisation
    logits = g(x)
    torch.testing.assert_close(logits[:, L:], g(x[:, L:], state=g.encode(x[:, :L])))
