import pytest
import torch
from helpers import small_generator

from seqgan_fast import Discriminator, ops
from seqgan_fast.ops.philox import STREAM_ROLLOUT
from seqgan_fast.ops.rollout import rollout_ref
from seqgan_fast.ops.sample_ref import canonical_sample
from seqgan_fast.ops.weights import lstm_step, project


def rollout_from_scratch(w, x, N, seed):
    """The O(T^2) definition: re-run every prefix from a zero state, then sample on."""
    B, T = x.shape
    out = torch.empty(T - 1, N, B, T, dtype=torch.int64)
    for t in range(1, T):
        for n in range(N):
            rows = ((t - 1) * N + n) * B + torch.arange(B)
            h = torch.zeros(B, w.hidden_dim)
            c = torch.zeros_like(h)
            tok = torch.full((B,), w.start_token, dtype=torch.int64)
            seq = []
            for s in range(T):
                h, c = lstm_step(w, w.emb[tok], h, c)
                tok = x[:, s] if s < t else canonical_sample(project(w, h), seed, s, rows,
                                                             STREAM_ROLLOUT)
                seq.append(tok)
            out[t - 1, n] = torch.stack(seq, 1)
    return out


@pytest.mark.parametrize("B,N,T", [(3, 2, 5), (1, 1, 2), (4, 3, 7)])
def test_reference_rollout_equals_from_scratch(B, N, T):
    g = small_generator(seq_len=T, scale=3.0)
    x = g.sample(B, seed=9, backend="reference")
    w = g.kernel_weights()
    expect = rollout_from_scratch(w, x, N, seed=4)
    got = ops.rollout(g, x, N, seed=4, backend="reference")
    assert torch.equal(got, expect)
    # chunking (tiny logit budget) changes nothing
    assert torch.equal(rollout_ref(w, x, N, 4, logit_bytes=1), expect)


def test_rollout_prefix_contract_and_shape():
    g = small_generator(seq_len=9)
    x = g.sample(5, seed=0, backend="reference")
    comps = ops.rollout(g, x, 4, seed=1, backend="reference")
    assert comps.shape == (8, 4, 5, 9) and comps.dtype == torch.int64
    for t in range(1, 9):
        assert torch.equal(comps[t - 1, :, :, :t], x[:, :t].expand(4, 5, t))
    # completions differ across rollouts (they are random), at least somewhere
    assert (comps[0, 0] != comps[0, 1]).any()


def test_rollout_deterministic_and_seeded():
    g = small_generator()
    x = g.sample(4, seed=0, backend="reference")
    a = ops.rollout(g, x, 3, seed=7, backend="reference")
    assert torch.equal(a, ops.rollout(g, x, 3, seed=7, backend="reference"))
    assert not torch.equal(a, ops.rollout(g, x, 3, seed=8, backend="reference"))


def test_rewards_shape_range_and_last_column():
    g = small_generator(seq_len=10)
    d = Discriminator(300, seq_len=10, emb_dim=8, filter_sizes=[2, 3], num_filters=[4, 5])
    x = g.sample(6, seed=0, backend="reference")
    r = ops.rollout_rewards(g, d, x, num_rollouts=3, seed=0, backend="reference")
    assert r.shape == (6, 10) and r.dtype == torch.float32
    assert float(r.min()) >= 0.0 and float(r.max()) <= 1.0
    assert torch.allclose(r[:, -1], d.prob_real(x))
    comps = ops.rollout(g, x, 3, seed=0, backend="reference")
    manual = d.prob_real(comps[4].reshape(-1, 10)).view(3, 6).mean(0)
    assert torch.allclose(r[:, 4], manual)


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_rollouts=0), "num_rollouts"),
    (dict(temperature=-1.0), "temperature"),
    (dict(seed=2**64), "seed"),
])
def test_rollout_validation(kwargs, match):
    g = small_generator()
    x = g.sample(2, seed=0, backend="reference")
    args = dict(num_rollouts=2, seed=0, backend="reference")
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        ops.rollout(g, x, **args)


def test_rollout_rejects_bad_tokens():
    g = small_generator()
    with pytest.raises(ValueError, match="x has token ids outside"):
        ops.rollout(g, torch.full((2, 7), 300), 2, backend="reference")
    with pytest.raises(TypeError, match="x must be int64"):
        ops.rollout(g, torch.zeros(2, 7, dtype=torch.int32), 2, backend="reference")
    with pytest.raises(ValueError, match="x must have shape"):
        ops.rollout(g, torch.zeros(7, dtype=torch.int64), 2, backend="reference")


@pytest.mark.parametrize("backend", [b for b in ("reference", "cpp") if ops.is_available(b, "cpu")])
@pytest.mark.parametrize("min_prefix", [1, 2, 5, 7])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_min_prefix_rollout_equals_the_full_rollouts_completions(backend, min_prefix, cell):
    """Only prefixes t >= min_prefix are completed (the cpp kernel skips the others), and
    each completion is the full rollout's (logical Philox rows): the same tokens, not just
    the same distribution; with an initial state too."""
    g = small_generator(vocab=53, seq_len=7, seed=4, cell=cell)
    x = ops.sample(g, 5, seed=2, backend="reference")
    full = ops.rollout(g, x, 3, seed=9, backend=backend)
    part = ops.rollout(g, x, 3, seed=9, backend=backend, min_prefix=min_prefix)
    assert part.shape == (7 - min_prefix, 3, 5, 7)
    assert torch.equal(part, full[min_prefix - 1:])
    h0 = torch.randn(5, 16, generator=torch.Generator().manual_seed(1))
    c0 = None if cell == "gru" else torch.randn(5, 16, generator=torch.Generator().manual_seed(2))
    full = ops.rollout(g, x, 3, seed=9, backend=backend, h0=h0, c0=c0)
    part = ops.rollout(g, x, 3, seed=9, backend=backend, h0=h0, c0=c0, min_prefix=min_prefix)
    assert torch.equal(part, full[min_prefix - 1:])


def test_min_prefix_rewards_and_validation():
    g = small_generator(vocab=53, seq_len=7, seed=4)
    torch.manual_seed(0)
    d = Discriminator(53, 7, emb_dim=8, filter_sizes=(2, 3), num_filters=(5, 6))
    x = ops.sample(g, 5, seed=2, backend="reference")
    for backend in [b for b in ("reference", "cpp") if ops.is_available(b, "cpu")]:
        full = ops.rollout_rewards(g, d, x, 3, seed=9, backend=backend)
        for given in (0, 3, 6):
            part = ops.rollout_rewards(g, d, x, 3, seed=9, backend=backend, history_len=given)
            assert torch.equal(part[:, :given], torch.zeros(5, given))
            torch.testing.assert_close(part[:, given:], full[:, given:], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="min_prefix must be an int in"):
        ops.rollout(g, x, 3, min_prefix=0)
    with pytest.raises(ValueError, match="min_prefix must be an int in"):
        ops.rollout(g, x, 3, min_prefix=8)
    with pytest.raises(ValueError, match="history_len must be an int in"):
        ops.rollout_rewards(g, d, x, 3, history_len=7)


@pytest.mark.parametrize("backend", [b for b in ("reference", "cpp") if ops.is_available(b, "cpu")])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_batch_rows_shares_are_the_whole_batchs_rollout(backend, cell):
    """A data-parallel rank's share (batch_rows=(lo, total)) rolls out exactly its rows of the
    whole batch's rollout, with min_prefix too; bad shares are refused."""
    g = small_generator(vocab=53, seq_len=7, seed=4, cell=cell)
    x = ops.sample(g, 9, seed=2, backend="reference")
    for m in (1, 4):
        full = ops.rollout(g, x, 3, seed=9, backend=backend, min_prefix=m)
        parts = [ops.rollout(g, x[lo:hi], 3, seed=9, backend=backend, min_prefix=m,
                             batch_rows=(lo, 9)) for lo, hi in ((0, 4), (4, 9), (9, 9))]
        assert torch.equal(torch.cat(parts, dim=2), full)
    with pytest.raises((ValueError, RuntimeError), match="batch"):
        ops.rollout(g, x[3:], 3, backend=backend, batch_rows=(3, 8))
