import numpy as np
import pytest
import torch
from helpers import small_generator

from seqgan_fast import Discriminator, Generator, Oracle, ops
from seqgan_fast.models import PAPER_FILTER_SIZES, PAPER_NUM_FILTERS


def test_oracle_from_npz_self_nll(oracle_npz):
    oracle = Oracle.from_npz(oracle_npz)
    assert (oracle.vocab_size, oracle.emb_dim, oracle.hidden_dim) == (5000, 32, 32)
    nll = oracle.nll(oracle.sample(10_000, seed=0))
    assert nll == pytest.approx(5.75, abs=0.05)
    uniform = oracle.nll(torch.randint(0, 5000, (2000, 20)))
    assert uniform > 10.5


def test_oracle_semantics_match_row_vector_convention(oracle_npz):
    # one step computed from the npz arrays as the reference code states it
    p = dict(np.load(oracle_npz))
    oracle = Oracle.from_npz(oracle_npz)
    x = p["embedding"][0][None]
    h = np.zeros((1, 32), np.float32)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    i = sig(x @ p["W_i"] + h @ p["U_i"] + p["b_i"])
    o = sig(x @ p["W_o"] + h @ p["U_o"] + p["b_o"])
    cc = np.tanh(x @ p["W_c"] + h @ p["U_c"] + p["b_c"])
    h1 = o * np.tanh(i * cc)
    logits = h1 @ p["W_out"] + p["b_out"]
    with torch.no_grad():
        ours = oracle(torch.zeros(1, 1, dtype=torch.int64))[0, 0].numpy()
    np.testing.assert_allclose(ours, logits[0], rtol=1e-4, atol=1e-4)


def test_oracle_from_npz_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        Oracle.from_npz(tmp_path / "nothere.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, embedding=np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError, match="missing arrays"):
        Oracle.from_npz(bad)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        Oracle.from_npz(junk)


def test_seeded_oracle_is_reproducible_and_standard_normal():
    a, b = Oracle(500, 16, 16, 10, seed=3), Oracle(500, 16, 16, 10, seed=3)
    assert torch.equal(a.embedding.weight, b.embedding.weight)
    assert abs(float(a.output.weight.std()) - 1.0) < 0.05
    assert not any(p.requires_grad for p in a.parameters())


def test_generator_init_and_nll_of_uniform():
    g = Generator(1000, 32, 32, 20)
    assert abs(float(g.embedding.weight.detach().std()) - 0.1) < 0.01
    x = torch.randint(0, 1000, (200, 20))
    assert g.nll(x) == pytest.approx(np.log(1000), abs=0.2)


def test_prefix_states_match_lstm():
    g = small_generator()
    x = g.sample(3, seed=0, backend="reference")
    h, c = g.prefix_states(x)
    with torch.no_grad():
        out, _ = g.lstm(g.embedding(g._inputs(x)))
    torch.testing.assert_close(h.transpose(0, 1), out, rtol=1e-5, atol=1e-5)


def test_policy_gradient_sign():
    """Raising one token's reward raises its probability after one step (paper eq. 7)."""
    g = small_generator(vocab=50, seq_len=5)
    x = g.sample(16, seed=0, backend="reference")
    target = (0, 2)  # sequence 0, position 2
    rewards = torch.zeros(16, 5)
    rewards[target] = 1.0
    before = g.log_probs(x)[target].item()
    opt = torch.optim.SGD(g.parameters(), lr=0.1)
    opt.zero_grad()
    g.pg_loss(x, rewards).backward()
    opt.step()
    after = g.log_probs(x)[target].item()
    assert after > before
    # and a negative reward lowers it
    g2 = small_generator(vocab=50, seq_len=5)
    opt = torch.optim.SGD(g2.parameters(), lr=0.1)
    g2.pg_loss(x, -rewards).backward()
    opt.step()
    assert g2.log_probs(x)[target].item() < before


def test_discriminator_paper_defaults_and_output():
    d = Discriminator(5000, seq_len=20)
    assert [c.kernel_size[0] for c in d.convs] == list(PAPER_FILTER_SIZES)
    assert [c.out_channels for c in d.convs] == list(PAPER_NUM_FILTERS)
    assert d.output.in_features == 1720 and d.dropout.p == pytest.approx(0.25)
    x = torch.randint(0, 5000, (8, 20))
    assert d(x).shape == (8, 2)
    p = d.prob_real(x, batch_size=3)
    assert p.shape == (8,) and float(p.min()) >= 0 and float(p.max()) <= 1
    assert torch.allclose(p, d.prob_real(x))  # eval mode: deterministic, chunking-free
    assert float(d.l2_loss().detach()) > 0


def test_discriminator_drops_wide_filters_and_learns():
    d = Discriminator(20, seq_len=6, emb_dim=8)
    assert max(c.kernel_size[0] for c in d.convs) <= 6
    real = torch.randint(0, 10, (64, 6))
    fake = torch.randint(10, 20, (64, 6))
    xs, ys = torch.cat([real, fake]), torch.cat([torch.ones(64), torch.zeros(64)]).long()
    opt = torch.optim.Adam(d.parameters(), lr=1e-3)
    for _ in range(30):
        opt.zero_grad()
        d.loss(xs, ys).backward()
        opt.step()
    assert float(d.prob_real(real).mean()) > 0.8 > 0.2 > float(d.prob_real(fake).mean())


def test_backends_listing():
    assert "reference" in ops.available_backends()
    with pytest.raises(ValueError, match="unknown backend"):
        ops.resolve("fast", "cpu")


def test_adversarial_objective_gradient_is_the_weighted_sum():
    """grad(lambda * PG + beta * NLL) = lambda * grad(PG) + beta * grad(NLL); the baseline
    subtracts each position's batch-mean reward."""
    g = small_generator(vocab=30, emb=6, hidden=8, seq_len=5, seed=2)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 30, (7, 5), generator=gen)
    real = torch.randint(0, 30, (9, 5), generator=gen)
    rewards = torch.rand(7, 5, generator=gen)

    def grads(loss):
        g.zero_grad(set_to_none=True)
        loss.backward()
        return [p.grad.clone() for p in g.parameters()]

    pg = grads(g.pg_loss(x, rewards))
    nll = grads(g.mle_loss(real))
    both = grads(g.adversarial_loss(x, rewards, real, pg_weight=0.3, mle_weight=2.5))
    for a, b, c in zip(pg, nll, both, strict=True):
        torch.testing.assert_close(c, 0.3 * a + 2.5 * b, atol=1e-5, rtol=1e-5)
    assert any(b.abs().sum() > 0 for b in nll)
    centred = grads(g.pg_loss(x, rewards - rewards.mean(0, keepdim=True)))
    base = grads(g.adversarial_loss(x, rewards, baseline="batch_mean"))
    for a, b in zip(centred, base, strict=True):
        torch.testing.assert_close(a, b)
    # pg_weight 1, mle_weight 0, no baseline is exactly SeqGAN's loss
    assert torch.equal(g.adversarial_loss(x, rewards), g.pg_loss(x, rewards))
    with pytest.raises(ValueError, match="needs real sequences"):
        g.adversarial_loss(x, rewards, mle_weight=1.0)
    with pytest.raises(ValueError, match="baseline"):
        g.adversarial_loss(x, rewards, baseline="median")
