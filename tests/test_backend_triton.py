"""Triton kernels in the interpreter (TRITON_INTERPRET=1 on CPU tensors): token-for-token
agreement with the reference backend, distribution, determinism, validation.

The interpreter pays per program instance, so shapes are tiny (V = 300 / 600: two or three
vocabulary tiles including a short last one, H = 16) and blocks are large.
"""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # must precede the first triton import

import pytest  # noqa: E402
import torch  # noqa: E402

triton = pytest.importorskip("triton", reason="triton is not installed")
if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
    pytest.skip("these tests run the Triton interpreter (TRITON_INTERPRET=1)",
                allow_module_level=True)

import triton.language as tl  # noqa: E402
from helpers import (  # noqa: E402
    CELLS,
    assert_tokens_agree,
    chi_square_pvalue,
    small_generator,
    triton_interpreter_problem,
)

if (_problem := triton_interpreter_problem()) is not None:
    pytest.skip(_problem, allow_module_level=True)

from seqgan_fast import ops  # noqa: E402
from seqgan_fast.ops.decode import decode_ref  # noqa: E402
from seqgan_fast.ops.philox import philox4x32, to_uniform  # noqa: E402
from seqgan_fast.ops.triton_common import join_seed, philox_uniforms, seed_words  # noqa: E402
from seqgan_fast.ops.triton_decode import decode_triton  # noqa: E402
from seqgan_fast.ops.triton_rollout import rollout_triton  # noqa: E402
from seqgan_fast.ops.triton_sample import sample_triton  # noqa: E402
from seqgan_fast.ops.weights import project  # noqa: E402

SEEDS = [0, 12345678901, 2**64 - 3]  # i32-, i64- and u64-typed kernel arguments


@triton.jit
def _uniforms_kernel(rows_ptr, u0_ptr, u1_ptr, seed, j, step, stream, BLOCK: tl.constexpr):
    o = tl.arange(0, BLOCK)
    rows = tl.load(rows_ptr + o)
    u0, u1 = philox_uniforms(seed, j, step, rows, stream)
    tl.store(u0_ptr + o, u0)
    tl.store(u1_ptr + o, u1)


@pytest.mark.parametrize("seed,j,step,stream", [
    (0, 0, 0, 0), (42, 3, 7, 0), (12345678901, 19, 5, 1), (2**64 - 1, 2, 9, 1)])
def test_philox_uniforms_match_torch(seed, j, step, stream):
    rows = torch.tensor([0, 11, 1023, 2**31 + 5, 2**32 - 1, 7, 8, 9] * 2, dtype=torch.int64)
    u0 = torch.empty(16)
    u1 = torch.empty(16)
    _uniforms_kernel[(1,)](rows, u0, u1, seed, j, step, stream, BLOCK=16)
    w0, w1, _, _ = philox4x32(seed, torch.tensor(j), torch.tensor(step), rows, torch.tensor(stream))
    assert torch.equal(u0, to_uniform(w0)) and torch.equal(u1, to_uniform(w1))


@triton.jit
def _join_seed_kernel(out_ptr, seed_lo, seed_hi):
    tl.store(out_ptr, join_seed(seed_lo, seed_hi).to(tl.int64, bitcast=True))


@pytest.mark.parametrize("seed", [0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 12345678901,
                                  2**63 - 1, 2**63, 2**64 - 3, 2**64 - 1])
def test_seed_words_are_int32_and_rebuild_the_seed(seed):
    """Every seed reaches the kernels as two int32 words (one argument type, so one compile)
    and join_seed rebuilds the 64-bit seed exactly."""
    lo, hi = seed_words(seed)
    assert all(-(2**31) <= w < 2**31 for w in (lo, hi))
    out = torch.zeros(1, dtype=torch.int64)
    _join_seed_kernel[(1,)](out, lo, hi)
    assert int(out[0]) % 2**64 == seed


def test_philox_design_known_answer():
    rows = torch.full((16,), 1023, dtype=torch.int64)
    u0 = torch.empty(16)
    u1 = torch.empty(16)
    _uniforms_kernel[(1,)](rows, u0, u1, 12345678901, 19, 5, 1, BLOCK=16)
    assert float(u0[0]) == pytest.approx(0.111466072, rel=1e-7)
    assert float(u1[0]) == pytest.approx(0.0818434879, rel=1e-7)


def test_backend_available_in_interpreter():
    assert ops.is_available("triton", "cpu")
    assert "triton" in ops.available_backends("cpu")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("vocab", [300, 600, 256])
@pytest.mark.parametrize("seed", SEEDS)
def test_decode_matches_reference(vocab, seed, cell):
    g = small_generator(vocab=vocab, scale=3.0, cell=cell)
    B = 37
    tok = torch.randint(0, vocab, (B,))
    h = torch.randn(B, 16)
    c = torch.randn(B, 16) if cell == "lstm" else None
    args = (seed, 3, 5, 1, 0.7)
    got = ops.decode(g, tok, h, c, *args, backend="triton")
    ref = decode_ref(g.kernel_weights(), tok, h, c, *args)
    assert_tokens_agree(got[0], ref[0], min_agree=1.0)
    torch.testing.assert_close(got[1], ref[1], atol=1e-5, rtol=1e-5)
    if cell == "lstm":
        torch.testing.assert_close(got[2], ref[2], atol=1e-5, rtol=1e-5)
    else:
        assert got[2] is None and ref[2] is None


def test_decode_launch_geometry_and_determinism():
    g = small_generator(vocab=600, emb=24, scale=3.0)  # E = 24: padded to 32
    w = g.kernel_weights()
    B = 50
    tok = torch.randint(0, 600, (B,))
    h, c = torch.randn(B, 16), torch.randn(B, 16)
    a = decode_triton(w, tok, h, c, 7, 2, 0, 0, 1.0, block_rows=16)  # 4 programs
    b = decode_triton(w, tok, h, c, 7, 2, 0, 0, 1.0, block_rows=64)  # 1 program
    assert torch.equal(a[0], b[0])  # the state may differ in the last bit (BLAS blocking)
    torch.testing.assert_close(a[1], b[1], atol=1e-6, rtol=1e-6)
    assert torch.equal(a[0], decode_triton(w, tok, h, c, 7, 2, 0, 0, 1.0)[0])
    # the row offset shifts the Philox row: row b of offset 10 is row b+10 of offset 0
    part = decode_triton(w, tok[10:], h[10:], c[10:], 7, 2, 10, 0, 1.0)
    assert torch.equal(part[0], a[0][10:])
    assert not torch.equal(a[0], decode_triton(w, tok, h, c, 8, 2, 0, 0, 1.0)[0])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("vocab,B,P", [(300, 5, 0), (600, 3, 2), (300, 20, 4)])
def test_sample_matches_reference(vocab, B, P, cell):
    g = small_generator(vocab=vocab, seq_len=6, scale=3.0, cell=cell)
    prefix = torch.randint(0, vocab, (B, P))
    for seed in SEEDS[:2]:
        kw = dict(seed=seed, temperature=1.3, row_offset=11, prefix=prefix)
        got = ops.sample(g, B, backend="triton", **kw)
        assert_tokens_agree(got, ops.sample(g, B, backend="reference", **kw), min_agree=1.0)
        assert torch.equal(got[:, :P], prefix)


def test_sample_launch_geometry_and_determinism():
    g = small_generator(vocab=300, seq_len=5, scale=2.0)
    w = g.kernel_weights()
    empty = torch.zeros(40, 0, dtype=torch.int64)
    a = sample_triton(w, empty, 5, 3, block_rows=16)  # 3 programs, the last one partial
    assert torch.equal(a, sample_triton(w, empty, 5, 3, block_rows=64))
    assert torch.equal(a, sample_triton(w, empty, 5, 3))
    assert not torch.equal(a, sample_triton(w, empty, 5, 4))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("vocab,B,N,T", [(300, 3, 2, 5), (600, 4, 2, 5), (300, 1, 1, 2),
                                         (600, 2, 1, 4)])
def test_rollout_matches_reference(vocab, B, N, T, cell):
    g = small_generator(vocab=vocab, seq_len=T, scale=3.0, cell=cell)
    x = g.sample(B, seed=9, backend="reference")
    kw = dict(seed=SEEDS[2], temperature=0.8)
    got = ops.rollout(g, x, N, backend="triton", **kw)
    assert_tokens_agree(got, ops.rollout(g, x, N, backend="reference", **kw), min_agree=1.0)
    for t in range(1, T):
        assert torch.equal(got[t - 1, :, :, :t], x[:, :t].expand(N, B, t))


@pytest.mark.parametrize("cell", CELLS)
def test_initial_states_match_reference(cell):
    g = small_generator(vocab=300, emb=7, hidden=13, seq_len=5, scale=3.0, cell=cell)
    B = 6
    h0 = torch.randn(B, 13)
    c0 = torch.randn(B, 13) if cell == "lstm" else None
    kw = dict(seed=4, h0=h0, c0=c0)
    got = ops.sample(g, B, backend="triton", **kw)
    assert_tokens_agree(got, ops.sample(g, B, backend="reference", **kw), min_agree=1.0)
    assert not torch.equal(got, ops.sample(g, B, seed=4, backend="triton"))  # h0 was used
    x = g.sample(B, seed=1, backend="reference")
    got = ops.rollout(g, x, 2, backend="triton", **kw)
    assert_tokens_agree(got, ops.rollout(g, x, 2, backend="reference", **kw), min_agree=1.0)
    assert not torch.equal(got, ops.rollout(g, x, 2, seed=4, backend="triton"))


def test_rollout_blocks_with_mixed_prefix_lengths():
    # N*B = 6 rows per prefix length and 16-row blocks: every block holds rows of two or three
    # prefix lengths, which join the block's loop at their own step
    g = small_generator(vocab=300, seq_len=6, scale=3.0)
    w = g.kernel_weights()
    x = g.sample(3, seed=1, backend="reference")
    a = rollout_triton(w, x, 2, 5, block_rows=16)
    assert_tokens_agree(a, ops.rollout(g, x, 2, seed=5, backend="reference"), min_agree=1.0)
    assert torch.equal(a, rollout_triton(w, x, 2, 5))
    assert not torch.equal(a, rollout_triton(w, x, 2, 6))


@pytest.mark.parametrize("cell", CELLS)
def test_min_prefix_rollout_is_the_full_rollouts_tail(cell):
    """min_prefix m: the kernel runs only the logical rows from (m-1)*N*B on (fewer programs,
    a block mixing prefix lengths), and gives the full rollout's completions bit for bit."""
    g = small_generator(vocab=300, seq_len=6, scale=3.0, cell=cell)
    w = g.kernel_weights()
    x = g.sample(3, seed=1, backend="reference")
    full = rollout_triton(w, x, 2, 5, block_rows=16)
    for m in (2, 4, 6):
        part = rollout_triton(w, x, 2, 5, block_rows=16, min_prefix=m)
        assert part.shape == (6 - m, 2, 3, 6)
        assert torch.equal(part, full[m - 1:])
    assert torch.equal(ops.rollout(g, x, 2, seed=5, backend="triton", min_prefix=3), full[2:])


def test_min_prefix_rollout_launches_only_the_kept_rows(monkeypatch):
    """The skipped prefixes cost nothing: the rollout kernel is planned (and its grid sized)
    for the (T - m) * N * B kept rows only, not for the full rollout's (T - 1) * N * B."""
    from seqgan_fast.ops import triton_rollout

    planned = []
    real = triton_rollout.plan_launch

    def spy(rows, *args, **kwargs):
        planned.append(rows)
        return real(rows, *args, **kwargs)

    monkeypatch.setattr(triton_rollout, "plan_launch", spy)
    g = small_generator(vocab=300, seq_len=6, scale=3.0)
    x = g.sample(3, seed=1, backend="reference")
    for m, kept in ((1, 5 * 2 * 3), (4, 2 * 2 * 3)):
        planned.clear()
        rollout_triton(g.kernel_weights(), x, 2, 5, block_rows=16, min_prefix=m)
        assert planned == [3, kept]  # the prefix pass over B rows, then the completions


@pytest.mark.parametrize("cell", CELLS)
def test_first_token_distribution_chi_square(cell):
    # many rows with one state: 16k independent draws (Philox rows) in 16 programs of the
    # decode kernel, against softmax(logits / temperature) over a 2-tile vocabulary
    g = small_generator(vocab=300, scale=2.0, seed=3, cell=cell)
    w = g.kernel_weights()
    w = w._replace(w_out=w.w_out * 4.0)  # peaked logits: the test then has power
    B = 16384
    tok = torch.full((B,), 5, dtype=torch.int64)
    h0, c0 = torch.randn(1, 16), torch.randn(1, 16)
    h = h0.expand(B, 16).contiguous()
    c = c0.expand(B, 16).contiguous() if cell == "lstm" else None
    nxt, h1, _ = decode_triton(w, tok, h, c, 2024, 0, 0, 0, 0.9)
    probs = torch.softmax(project(w, h1[:1]) / 0.9, dim=1)[0]
    assert float(probs.max()) > 10.0 / 300 and float(probs[256:].sum()) > 0.05  # both tiles
    assert chi_square_pvalue(nxt, probs) > 1e-3
    # and a slightly wrong distribution is rejected: the draws do not fit temperature 0.8
    wrong = torch.softmax(project(w, h1[:1]) / 0.8, dim=1)[0]
    assert chi_square_pvalue(nxt, wrong) < 1e-3


def test_tf32_mode_runs_and_stays_in_range():
    g = small_generator(vocab=300, seq_len=4, scale=3.0)
    w = g.kernel_weights()
    x = g.sample(3, seed=0, backend="reference")
    out = rollout_triton(w, x, 2, 0, precision="tf32")
    assert out.shape == (3, 2, 3, 4) and 0 <= int(out.min()) and int(out.max()) < 300
    with pytest.raises(ValueError, match="precision"):
        rollout_triton(w, x, 2, 0, precision="fp8")


def test_validation_errors_before_launch():
    g = small_generator(vocab=300, seq_len=4)
    x = g.sample(2, seed=0, backend="reference")
    with pytest.raises(ValueError, match="x has token ids outside"):
        ops.rollout(g, torch.full((2, 4), 300), 2, backend="triton")
    with pytest.raises(ValueError, match="num_rollouts"):
        ops.rollout(g, x, 0, backend="triton")
    with pytest.raises(ValueError, match="temperature"):
        ops.sample(g, 2, temperature=0.0, backend="triton")
    with pytest.raises(ValueError, match="h must be"):
        ops.decode(g, x[:, 0], torch.zeros(2, 15), torch.zeros(2, 16), backend="triton")
    with pytest.raises(ValueError, match="seed"):
        ops.rollout(g, x, 2, seed=2**64, backend="triton")


def test_empty_batches():
    g = small_generator(vocab=300, seq_len=4)
    w = g.kernel_weights()
    assert sample_triton(w, torch.zeros(0, 0, dtype=torch.int64), 4, 0).shape == (0, 4)
    assert rollout_triton(w, torch.zeros(0, 4, dtype=torch.int64), 2, 0).shape == (3, 2, 0, 4)
    out = rollout_triton(w, torch.zeros(2, 1, dtype=torch.int64), 2, 0)
    assert out.shape == (0, 2, 2, 1)
