"""The Triton scoring kernel (ops/triton_score.py): bit-identical pooled features to the cpp
kernel on the same folded table, scores equal to the reference discriminator, dispatch from
``ops.score`` and ``rollout_rewards``. In the interpreter (TRITON_INTERPRET=1, CPU tensors) by
default; with TRITON_INTERPRET=0 on a CUDA machine the same tests run on the GPU
(benchmarks/gpu_check.sh)."""
import importlib
import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # must precede the first triton import

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("triton", reason="triton is not installed")
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
if not INTERPRET and not torch.cuda.is_available():
    pytest.skip("needs TRITON_INTERPRET=1 (CPU) or a CUDA device", allow_module_level=True)
DEVICE = "cpu" if INTERPRET else "cuda"

from helpers import small_generator, triton_interpreter_problem  # noqa: E402

if INTERPRET and (_problem := triton_interpreter_problem()) is not None:
    pytest.skip(_problem, allow_module_level=True)

from seqgan_fast import Discriminator, ops  # noqa: E402
from seqgan_fast.ops.triton_score import pool_triton  # noqa: E402

score_mod = importlib.import_module("seqgan_fast.ops.score")


def make_d(V, T, sizes, counts, seed=0) -> Discriminator:
    torch.manual_seed(seed)
    d = Discriminator(V, T, emb_dim=8, filter_sizes=sizes, num_filters=counts)
    with torch.no_grad():  # spread the logits so that P(real) is not ~0.5 everywhere
        d.output.weight.mul_(20.0)
    return d.eval().to(DEVICE)


# odd filter counts (not multiples of the 16-lane padding), one wider than the 64-column
# block, widths up to T; 37 rows: a partial last row block
CASES = [(41, 7, (1, 3, 7), (5, 17, 3)), (97, 9, (2, 4, 9), (70, 16, 1))]


@pytest.mark.parametrize("V,T,sizes,counts", CASES)
def test_triton_pool_is_bit_identical_to_cpp(V, T, sizes, counts):
    if not ops.is_available("cpp", "cpu"):
        pytest.skip("cpp backend unavailable")
    d = make_d(V, T, sizes, counts)
    folded = score_mod.fold(d)
    x = torch.randint(0, V, (37, T), generator=torch.Generator().manual_seed(1))
    cpu = score_mod.FoldedConv(folded.table.cpu(), folded.bias.cpu(), folded.widths,
                               folded.filters)
    want = score_mod._pool(x, 0, None, 1, cpu)
    got = pool_triton(x.to(DEVICE), folded.table, folded.bias, folded.widths, folded.filters,
                      score_mod._LANES, block_rows=16).cpu()
    assert got.shape == want.shape == (37, sum(counts))
    assert torch.equal(got, want)
    assert (want > 0).any() and (want == 0).any()  # ReLU both ways: not a constant


@pytest.mark.parametrize("V,T,sizes,counts", CASES)
def test_triton_score_matches_reference(V, T, sizes, counts, monkeypatch):
    import seqgan_fast.ops.triton_score as ts

    calls = []
    real = ts.pool_triton
    monkeypatch.setattr(ts, "pool_triton", lambda *a, **k: calls.append(1) or real(*a, **k))
    d = make_d(V, T, sizes, counts)
    x = torch.randint(0, V, (37, T), generator=torch.Generator().manual_seed(2)).to(DEVICE)
    want = d.prob_real(x)
    got = ops.score(d, x, backend="triton", batch_size=16)
    assert len(calls) == 3  # the Triton kernel scored the 37 rows in 3 chunks (no fallback)
    assert (got - want).abs().max().item() <= 1e-5
    assert want.std() > 0.01


def test_triton_rollout_rewards_equal_reference_scoring():
    g = small_generator(vocab=40, emb=8, hidden=16, seq_len=6, seed=3)
    g = g.to(DEVICE)
    d = make_d(40, 6, (1, 2, 6), (5, 9, 4))
    x = ops.sample(g, 5, seed=7, backend="reference")
    got = ops.rollout_rewards(g, d, x, 2, seed=8, backend="triton", score_batch=16)
    want = ops.rollout_rewards(g, d, x, 2, seed=8, backend="reference")
    assert got.shape == want.shape == (5, 6)
    assert (got - want).abs().max().item() <= 1e-5
