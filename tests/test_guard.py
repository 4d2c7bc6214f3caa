"""The finite-value guard (seqgan_fast/train/guard.py) and the op it shares with checkpoints
(``ops.first_non_finite``, seqgan_fast/ops/finite.py): training stops at the first non-finite
gradient or weight with one line, and the last good checkpoint is kept."""
from __future__ import annotations

import pytest
import torch
from helpers import TINY_TRAIN as TINY
from helpers import outputs_per_isa_and_threads, train_tiny, typed_setting

from seqgan_fast import ops
from seqgan_fast._ext import has_kernel
from seqgan_fast.cli.commands import main
from seqgan_fast.config import TrainConfig
from seqgan_fast.errors import NonFiniteError
from seqgan_fast.ops.finite import first_non_finite
from seqgan_fast.run import checkpoint as ckpt
from seqgan_fast.run.lock import is_locked
from seqgan_fast.train.guard import most_likely_setting

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.one_thread


def test_guard_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    """d_l2_reg=1e38 passes validation (finite) but overflows the discriminator's gradients
    in its first step, after the MLE phase's checkpoint."""
    out = tmp_path / "run"
    assert train_tiny(out, "d_l2_reg=1e38") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seqgan-fast: error: training stopped"), err
    assert "phase d_pretrain" in err[0] and "d_l2_reg=1e+38" in err[0]
    assert "000001" in err[0]  # names the checkpoint it kept
    tensors, state = ckpt.load_checkpoint(ckpt.latest_checkpoint(out))
    assert state["phase"] == "d_pretrain" and state["mle_epoch"] == 2
    assert first_non_finite(tensors["generator"].items()) is None
    assert not (out / "summary.json").exists()
    assert main(["sample", "--run", str(out), "-n", "50", "--backend", "reference"]) == 0
    rows = [[int(t) for t in line.split()] for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 50 and all(len(r) == 7 for r in rows)
    assert len({t for r in rows for t in r}) > 20  # not V-1 everywhere
    # and the run continues from there once the setting is fixed (resume keeps d_l2_reg,
    # so here: replace it)
    assert train_tiny(out, "--overwrite") == 0


def test_guard_names_g_lr_when_the_generator_diverges(tmp_path):
    from seqgan_fast import SeqGANTrainer

    cfg = TrainConfig.preset("quick", **{k: typed_setting(k, v) for k, v in
                                        (s.split("=") for s in TINY)}, backend="reference")
    trainer = SeqGANTrainer(cfg, tmp_path / "r", progress=False)
    for group in trainer.g_mle_opt.param_groups:
        group["lr"] = float("inf")  # what g_lr=inf did before validation refused it
    # the gradients of the first step are finite; the step makes the weights inf: the
    # post-step check stops training there, before anything is evaluated or saved
    with pytest.raises(NonFiniteError, match=r"non-finite weight of generator parameter .* "
                       r"phase mle, MLE epoch 1 .*g_lr=0\.01"):
        trainer.fit()
    records = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert len(records) == 1  # only the evaluation before training
    assert ckpt.latest_checkpoint(tmp_path / "r") is None
    assert not is_locked(tmp_path / "r")  # released on the error



def test_first_non_finite_and_most_likely_setting():
    ok = torch.ones(3)
    assert first_non_finite([("a", ok), ("b", None), ("i", torch.arange(3))]) is None
    assert first_non_finite([("a", ok), ("b", torch.tensor([1.0, float("nan")]))]) == "b"
    assert first_non_finite([("a", torch.tensor([float("-inf")]))]) == "a"
    assert first_non_finite([("big", torch.full((4,), 3e38))]) == "big"  # square overflows
    for check in (first_non_finite, ops.first_non_finite):  # the guard's and the op
        assert check([("a", ok), ("b", torch.tensor([1.0, float("nan")]))]) == "b"
        assert check([("big", torch.full((4,), 3e38))]) == "big"
    cfg = TrainConfig.preset("quick", d_l2_reg=1e30)
    assert most_likely_setting(cfg, ("d_lr", "d_l2_reg")) == "d_l2_reg=1e+30"
    cfg = TrainConfig.preset("quick", g_lr=5.0)
    assert most_likely_setting(cfg, ("g_lr", "g_grad_clip")) == "g_lr=5.0"


@pytest.mark.parametrize("bad, where", [
    (float("nan"), 0), (float("inf"), 70_001), (float("-inf"), 99_999), (2.0 ** 64, 65_536),
    (-(2.0 ** 64), 12), (float("nan"), 99_995),  # the last in the tail after whole vectors
])
def test_guard_check_op_and_torch_fallback_agree(bad, where):
    """The extension's one-pass check (csrc/common/finite.h) on every ISA path and at 1 and 3
    threads, against the torch fallback (non-contiguous views): NaN, +-inf and magnitudes
    from 2^64 (whose square overflows float32) in any block or tail, in the third of four
    tensors; just below 2^64 passes, as do large elements whose sum of squares overflows."""
    fine = [torch.randn(100_000), torch.randn(77), torch.full((1000,), 1.8e19)]
    third = torch.randn(100_000)
    third[where] = bad
    named = [("a", fine[0]), ("b", fine[1]), ("c", third), ("d", torch.tensor([float("nan")]))]
    strided = [(n, torch.stack([t, t], 1)[:, 0]) for n, t in named]
    assert not strided[0][1].is_contiguous()
    assert first_non_finite(strided) == "c"
    assert first_non_finite([(n, t) for n, t in zip("abx", fine, strict=True)]) is None
    if not has_kernel("first_non_finite", "CPU"):
        pytest.skip("needs the compiled extension (seqgan_fast._C)")
    check = torch.ops.seqgan_fast.first_non_finite  # the op itself, not only the guard's call
    runs = outputs_per_isa_and_threads(
        lambda: (int(check([t for _, t in named])), int(check(fine)), first_non_finite(named)),
        threads=(1, 3))
    assert runs and all(o == (2, -1, "c") for outs in runs.values() for o in outs), runs
