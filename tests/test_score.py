"""``ops.score`` (the discriminator's P(real)) and the rewards that use it: the fused cpp
scoring kernel (embedding folded into the first layer, prefix windows shared between rollout
completions) against the reference discriminator."""
import importlib
import logging

import pytest
import torch
from helpers import small_generator

from seqgan_fast import Discriminator, _ext, ops

score_mod = importlib.import_module("seqgan_fast.ops.score")  # the module, not ops.score

pytestmark = pytest.mark.skipif(
    not ops.is_available("cpp", "cpu"),
    reason=f"cpp backend unavailable (seqgan_fast._C without CPU kernels; {_ext.REBUILD_HINT})")

# (vocab, seq_len, filter sizes, filter counts): odd counts (not multiples of 16), widths up to
# T, the paper's filters at its size
DISCS = [
    (50, 7, (1, 3, 7), (5, 17, 3)),
    (301, 12, (2, 4, 5, 12), (33, 16, 1, 40)),
    (5000, 20, None, None),
]


def make_d(V, T, sizes, counts, seed=0) -> Discriminator:
    torch.manual_seed(seed)
    kw = {} if sizes is None else {"filter_sizes": sizes, "num_filters": counts}
    d = Discriminator(V, T, emb_dim=16 if sizes else 64, **kw)
    with torch.no_grad():  # spread the logits so that P(real) is not ~0.5 everywhere
        d.output.weight.mul_(20.0)
    return d


@pytest.mark.parametrize("V,T,sizes,counts", DISCS)
def test_score_matches_reference(V, T, sizes, counts):
    d = make_d(V, T, sizes, counts)
    x = torch.randint(0, V, (97, T))
    want = d.prob_real(x)
    got = ops.score(d, x, backend="cpp", batch_size=40)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert (got - want).abs().max().item() <= 1e-5
    assert want.std() > 0.01  # the comparison is not between constants


@pytest.mark.parametrize("isa", ops.cpu_isa_paths())
def test_score_bit_identical_across_isa_paths(isa):
    """The pooled features are table loads and adds (the same bits on every path), the
    highway's unpacked GEMM one FMA per term: the FMA paths agree bit for bit; the baseline
    (its highway on torch's GEMM) to float rounding."""
    d = make_d(301, 12, (2, 4, 5, 12), (33, 16, 1, 40))
    x = torch.randint(0, 301, (33, 12))
    with ops.force_cpu_isa("avx2" if "avx2" in ops.cpu_isa_paths() else "baseline"):
        base = ops.score(d, x, backend="cpp")
    with ops.force_cpu_isa(isa):
        got = ops.score(d, x, backend="cpp")
    if isa == "baseline" and "avx2" in ops.cpu_isa_paths():
        assert (got - base).abs().max().item() <= 1e-6
    else:
        assert torch.equal(got, base)


@pytest.mark.parametrize("V,T,sizes,counts", DISCS[:2])
@pytest.mark.parametrize("N", [1, 3])
def test_prefix_shared_scores_equal_whole_completions(V, T, sizes, counts, N):
    g = small_generator(V, 8, 16, T, seed=1, scale=3.0)
    d = make_d(V, T, sizes, counts, seed=2)
    x = ops.sample(g, 11, seed=3, backend="cpp")
    comps = ops.rollout(g, x, N, seed=4, backend="cpp").view(-1, T)
    whole = ops.score(d, comps, backend="cpp", batch_size=50)
    shared = ops.score(d, comps, backend="cpp", batch_size=50, prefix_x=x, num_rollouts=N)
    assert torch.equal(whole, shared)  # same windows, same adds, same order
    assert (shared - d.prob_real(comps)).abs().max().item() <= 1e-5
    # the kernel's pooled features, bit for bit, in chunks of 7 rows that cut (t, b) groups
    # (as batches do), from logical row 0 and from min_prefix 3's first row
    f = score_mod.fold(d)
    want = score_mod._pool(comps, 0, None, 1, f)
    for base in (0, 2 * N * x.shape[0]):
        got = [score_mod._pool(comps[r : r + 7].contiguous(), r, x, N, f)
               for r in range(base, comps.shape[0], 7)]
        assert torch.equal(torch.cat(got), want[base:])


def test_rollout_rewards_equal_scoring_every_completion_with_reference():
    V, T, N = 301, 12, 4
    g = small_generator(V, 8, 16, T, seed=5, scale=3.0)
    d = make_d(V, T, (2, 4, 5, 12), (33, 16, 1, 40), seed=6)
    x = ops.sample(g, 9, seed=7, backend="cpp")
    got = ops.rollout_rewards(g, d, x, N, seed=8, backend="cpp", score_batch=64)
    comps = ops.rollout(g, x, N, seed=8, backend="cpp")
    per = d.prob_real(comps.view(-1, T)).view(T - 1, N, -1).mean(dim=1).t()
    assert (got[:, :-1] - per).abs().max().item() <= 1e-5
    assert (got[:, -1] - d.prob_real(x)).abs().max().item() <= 1e-5
    ref = ops.rollout_rewards(g, d, x, N, seed=8, backend="reference")
    assert (got - ref).abs().max().item() <= 1e-5  # same tokens (RNG contract), same D


def test_memory_budget_fallback_gives_the_same_scores(caplog, monkeypatch):
    """Below one 16-column block of the widest group's slice the GEMM form runs; from there on
    the fused kernel, with passes as wide as the limit allows: the same bits at every width."""
    d = make_d(301, 12, (2, 4, 5, 12), (33, 16, 1, 40))
    x = torch.randint(0, 301, (20, 12))
    need = score_mod.min_pass_bytes(d)
    assert need == 4 * 301 * 12 * 16
    assert score_mod.table_bytes(d) == 4 * 301 * (2 * 48 + 4 * 16 + 5 * 16 + 12 * 48)
    calls = []
    real = score_mod._fold_pool
    monkeypatch.setattr(score_mod, "_fold_pool",
                        lambda *a: calls.append(a[6]) or real(*a))  # a[6]: pass_bytes
    monkeypatch.setattr(score_mod, "_warned_budget", False)
    with caplog.at_level(logging.INFO, logger="seqgan_fast"):
        small = ops.score(d, x, backend="cpp", table_bytes_limit=need - 1)
        assert not calls  # the fused kernel was not used
        narrow = ops.score(d, x, backend="cpp", table_bytes_limit=need)
        assert calls == [need]
        wide = ops.score(d, x, backend="cpp")
        assert calls[-1] == score_mod.SCORE_PASS_BYTES
    assert "using the GEMM form" in caplog.text
    assert torch.equal(small, d.prob_real(x))
    assert (small - narrow).abs().max().item() <= 1e-5
    assert torch.equal(narrow, wide)


@pytest.mark.parametrize("V,T,sizes,counts", DISCS)
def test_fold_pool_equals_the_table_op_on_gemm_nn_table(V, T, sizes, counts):
    """score_fold_pool computes each pass's slice with gemm_nn: the same bits as score_pool
    on the whole table gemm_nn builds, for rollout rows, whole rows and extra rows, at
    narrow (several passes per group) and default pass widths."""
    g = small_generator(V, 8, 16, T, seed=1, scale=3.0)
    d = make_d(V, T, sizes, counts, seed=2)
    x = ops.sample(g, 5, seed=3, backend="cpp")
    comps = ops.rollout(g, x, 2, seed=4, backend="cpp").view(-1, T)
    fo = score_mod.fold_operands(d)
    table = torch.ops.seqgan_fast.gemm_nn(fo.emb, fo.w_all)
    folded = score_mod.FoldedConv(table, fo.bias, fo.widths, fo.filters)
    F = sum(fo.filters)
    want_c = score_mod._pool(comps[3:], 3, x, 2, folded)
    want_x = score_mod._pool(x, 0, None, 1, folded)
    for pass_bytes in (score_mod.min_pass_bytes(d), score_mod.SCORE_PASS_BYTES):
        out = torch.full((comps.shape[0] - 3 + x.shape[0], F), float("nan"))
        score_mod._fold_pool(comps[3:].contiguous(), 3, x, 2, x, fo, pass_bytes, out)
        assert torch.equal(out, torch.cat([want_c, want_x]))
        whole = score_mod._fold_pool(comps, 0, None, 1, x, fo, pass_bytes,
                                     torch.empty(comps.shape[0] + x.shape[0], F))
        assert torch.equal(whole, torch.cat([score_mod._pool(comps, 0, None, 1, folded),
                                             want_x]))


def test_calls_split_at_the_pooled_budget_give_the_same_scores(monkeypatch):
    """Rows past SCORE_POOL_BYTES of features go to further kernel calls (each folding the
    table again); the extra rows ride on the last call that has room."""
    V, T, N = 301, 12, 3
    g = small_generator(V, 8, 16, T, seed=5, scale=3.0)
    d = make_d(V, T, (2, 4, 5, 12), (33, 16, 1, 40), seed=6)
    x = ops.sample(g, 7, seed=7, backend="cpp")
    comps = ops.rollout(g, x, N, seed=8, backend="cpp").view(-1, T)
    want = score_mod.rollout_scores(d, comps, x, N, backend="cpp")
    calls = []
    real = score_mod._fold_pool
    monkeypatch.setattr(score_mod, "_fold_pool", lambda *a: calls.append(
        (a[0].shape[0], 0 if a[4] is None else a[4].shape[0])) or real(*a))
    monkeypatch.setattr(score_mod, "SCORE_POOL_BYTES", 4 * 90 * 100)  # F = 90: 100 rows a call
    got = score_mod.rollout_scores(d, comps, x, N, backend="cpp", batch_size=30)
    assert calls == [(100, 0), (100, 0), (31, 7)]  # 231 completions, then x's 7 rows
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_score_restores_training_mode_and_ignores_dropout():
    d = make_d(50, 7, (1, 3, 7), (5, 17, 3)).train()
    x = torch.randint(0, 50, (30, 7))
    a = ops.score(d, x, backend="cpp")
    assert d.training
    assert torch.equal(a, ops.score(d, x, backend="cpp"))  # eval mode: no dropout noise


@pytest.mark.parametrize("call,match", [
    (lambda d: ops.score(d, torch.zeros(3, 7)), "int64"),
    (lambda d: ops.score(d, torch.zeros(3, 7, 1, dtype=torch.long)), "shape"),
    (lambda d: ops.score(d, torch.zeros(3, 8, dtype=torch.long)), "seq_len=7"),
    (lambda d: ops.score(d, torch.full((3, 7), 50)), "outside"),
    (lambda d: ops.score(d, torch.full((3, 7), -1)), "outside"),
    (lambda d: ops.score(d, torch.zeros(3, 7, dtype=torch.long), batch_size=0), "batch_size"),
    (lambda d: ops.score(d, torch.zeros(3, 7, dtype=torch.long),
                         prefix_x=torch.zeros(2, 7, dtype=torch.long), num_rollouts=1),
     "completions"),
    (lambda d: ops.score(d, torch.zeros(12, 7, dtype=torch.long),
                         prefix_x=torch.zeros(2, 7, dtype=torch.long), num_rollouts=0),
     "num_rollouts"),
])
def test_score_validation(call, match):
    d = make_d(50, 7, (1, 3, 7), (5, 17, 3))
    with pytest.raises(ValueError, match=match):
        call(d)


def test_kernel_refuses_filters_wider_than_the_sequence():
    d = make_d(50, 7, (1, 3, 7), (5, 17, 3))
    f = score_mod.fold(d)
    with pytest.raises(RuntimeError, match="filter width 7 must be in"):
        torch.ops.seqgan_fast.score_pool(torch.zeros(2, 5, dtype=torch.long), 0, None, 1,
                                         f.table, f.bias, f.widths, f.filters)


@pytest.mark.parametrize("change,match", [
    ({"w_all": torch.zeros(16, 7)}, "w_all must be"),
    ({"out": torch.zeros(3, 25)}, "out must be"),
    ({"extra": torch.zeros(1, 6, dtype=torch.long)}, "extra must have T=7"),
    ({"extra": torch.full((1, 7), 50)}, "extra has token id 50"),
    ({"tokens": torch.zeros(2, 5, dtype=torch.long)}, "filter width 7 must be in"),
    ({"pass_bytes": 0}, "pass_bytes"),
])
def test_fold_pool_validation(change, match):
    d = make_d(50, 7, (1, 3, 7), (5, 17, 3))
    fo = score_mod.fold_operands(d)
    args = {"tokens": torch.zeros(2, 7, dtype=torch.long), "extra": None, "w_all": fo.w_all,
            "pass_bytes": 2**20, "out": torch.zeros(2, 25)}
    args.update(change)
    if args["extra"] is not None and "out" not in change:
        args["out"] = torch.zeros(2 + args["extra"].shape[0], 25)
    with pytest.raises(RuntimeError, match=match):
        torch.ops.seqgan_fast.score_fold_pool(args["tokens"], 0, None, 1, args["extra"], fo.emb,
                                              args["w_all"], fo.bias, fo.widths, fo.filters,
                                              args["pass_bytes"], args["out"])


@pytest.mark.parametrize("call,match", [
    (lambda g, d, x: ops.rollout_rewards(g, Discriminator(300, 9), x, 2), "seq_len=9"),
    (lambda g, d, x: ops.rollout_rewards(g, Discriminator(299, 7), x, 2), "vocab_size=299"),
    (lambda g, d, x: ops.rollout_rewards(g, d, x, 2, score_batch=0), "score_batch"),
])
def test_rollout_rewards_validation(call, match):
    g = small_generator(300, 8, 16, 7)
    d = Discriminator(300, 7)
    x = ops.sample(g, 3, seed=0, backend="cpp")
    with pytest.raises(ValueError, match=match):
        call(g, d, x)


def test_rollout_rewards_fold_the_table_once(monkeypatch):
    """One reward computation is one kernel call: the completions and x share its passes."""
    V, T = 301, 12
    g = small_generator(V, 8, 16, T, seed=5, scale=3.0)
    d = make_d(V, T, (2, 4, 5, 12), (33, 16, 1, 40), seed=6)
    x = ops.sample(g, 5, seed=7, backend="cpp")
    calls = []
    real = score_mod._fold_pool
    monkeypatch.setattr(score_mod, "_fold_pool",
                        lambda *a: calls.append(a[4]) or real(*a))  # a[4]: extra rows
    ops.rollout_rewards(g, d, x, 2, seed=8, backend="cpp")
    assert len(calls) == 1 and torch.equal(calls[0], x)


def test_workspace_is_reused_grown_and_released():
    """The pooled features go into one per-thread buffer (the same memory on the next call,
    grown for more rows, stale contents never leaking into scores); the kernel keeps its
    slice scratch; release_score_workspace frees both."""
    d = make_d(50, 7, (1, 3, 7), (5, 17, 3))
    x = torch.randint(0, 50, (30, 7))
    ops.release_score_workspace()
    assert torch.ops.seqgan_fast.score_workspace_bytes() == 0
    want = ops.score(d, x, backend="cpp")
    assert torch.ops.seqgan_fast.score_workspace_bytes() > 0
    ptr = score_mod._workspace.pooled.data_ptr()
    assert torch.equal(ops.score(d, x[:10], backend="cpp"), want[:10])
    assert score_mod._workspace.pooled.data_ptr() == ptr
    big = torch.randint(0, 50, (300, 7))
    ops.score(d, big, backend="cpp")  # larger: a new buffer
    assert score_mod._workspace.pooled.numel() >= 300 * 25
    assert torch.equal(ops.score(d, x, backend="cpp"), want)  # in the big buffer's front
    ops.release_score_workspace()
    assert score_mod._workspace.pooled is None
    assert torch.ops.seqgan_fast.score_workspace_bytes() == 0
    assert torch.equal(ops.score(d, x, backend="cpp"), want)


@pytest.mark.parametrize("backend", ["reference", "cpp"])
@pytest.mark.parametrize("weight", ["embedding.weight", "convs.1.weight", "convs.0.bias",
                                    "highway.gate.weight", "output.weight"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_discriminator_weights_are_refused_by_name(backend, weight, bad):
    """The cpp path folded a NaN embedding or filter into finite scores (0.5026...) where the
    reference gives NaN: every backend refuses, naming the weight, as the generator ops do."""
    V, T = 50, 7
    d = make_d(V, T, (1, 3, 7), (5, 17, 3))
    x = torch.randint(0, V, (9, T))
    with torch.no_grad():
        d.get_parameter(weight).fill_(bad)
    with pytest.raises(ValueError, match=rf"discriminator weight {weight} holds NaN or inf"):
        ops.score(d, x, backend=backend)
    g = small_generator(vocab=V, seq_len=T)
    with pytest.raises(ValueError, match=rf"discriminator weight {weight}"):
        ops.rollout_rewards(g, d, x[:3], num_rollouts=2, seed=1, backend=backend)
