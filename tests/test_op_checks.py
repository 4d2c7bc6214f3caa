"""The ops' argument checks (seqgan_fast/ops/checks.py and the ops' own): non-finite weights
and states refused, a transposed x accepted, the rewards' discriminator checked."""
from __future__ import annotations

import pytest
import torch

from seqgan_fast import ops
from seqgan_fast.models import Discriminator, Generator

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.one_thread


def _backends() -> list[str]:
    return [b for b in ("reference", "cpp") if ops.is_available(b, "cpu")]


@pytest.mark.parametrize("backend", _backends())
def test_ops_reject_non_finite_weights_and_states(backend):
    w = Generator(40, 8, 16, 6).kernel_weights()
    w_out = w.w_out.clone()
    w_out[3, 2] = float("nan")
    w = w._replace(w_out=w_out)
    x = torch.zeros(2, 6, dtype=torch.int64)
    with pytest.raises(ValueError, match="weight w_out holds NaN"):
        ops.sample(w, 4, seq_len=6, backend=backend)
    with pytest.raises(ValueError, match="weight w_out holds NaN"):
        ops.rollout(w, x, 2, backend=backend)
    good = Generator(40, 8, 16, 6)
    tok, h = torch.zeros(3, dtype=torch.int64), torch.zeros(3, 16)
    for bad, name in ((float("nan"), "h"), (float("inf"), "c")):
        hc = {"h": h.clone(), "c": h.clone()}
        hc[name][1, 4] = bad
        with pytest.raises(ValueError, match=f"state {name} holds NaN or inf"):
            ops.decode(good, tok, hc["h"], hc["c"], backend=backend)
    with pytest.raises(ValueError, match="temperature"):
        ops.sample(good, 4, temperature=1e-45, backend=backend)


@pytest.mark.parametrize("backend", _backends())
def test_rollout_accepts_a_transposed_x(backend):
    g = Generator(40, 8, 16, 6)
    x = ops.sample(g, 5, seed=1, backend="reference")
    xt = x.t().contiguous().t()  # same values, column-major
    assert not xt.is_contiguous()
    assert torch.equal(ops.rollout(g, xt, 2, seed=3, backend=backend),
                       ops.rollout(g, x, 2, seed=3, backend=backend))


@pytest.mark.parametrize("make,match", [
    (lambda: (Discriminator(40, 8, 8, (2,), (4,)), 6, {}), "built for seq_len=8"),
    (lambda: (Discriminator(41, 6, 8, (2,), (4,)), 6, {}), "built for vocab_size=41"),
    (lambda: (Discriminator(40, 6, 8, (2,), (4,)), 6, {"score_batch": 0}), "score_batch"),
    (lambda: (Discriminator(40, 6, 8, (2,), (4,)), 6, {"score_batch": -3}), "score_batch"),
    (lambda: (Discriminator(40, 1, 8, (1,), (4,)), 1, {}), "seq_len >= 2"),
])
def test_rollout_rewards_checks_its_discriminator(make, match):
    d, T, kw = make()
    g = Generator(40, 8, 16, T)
    x = ops.sample(g, 3, seed=0, backend="reference")
    with pytest.raises(ValueError, match=match):
        ops.rollout_rewards(g, d, x, num_rollouts=2, backend="reference", **kw)
