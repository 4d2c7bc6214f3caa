"""SeqGANTrainer, checkpoints and the oracle task, on tiny configurations (seconds each)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import read_metrics, tiny

from seqgan_fast import Generator, SeqGANTrainer, TrainConfig
from seqgan_fast.config import ConfigError
from seqgan_fast.errors import CheckpointError
from seqgan_fast.run import checkpoint as ckpt
from seqgan_fast.tasks.oracle import OracleTask
from seqgan_fast.train.draws import draw_seed
from seqgan_fast.train.trainer import update_rollout_policy

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.one_thread


def temp_files(run: Path) -> list[Path]:
    return [p for p in run.rglob("*") if p.name.startswith(ckpt.TMP_PREFIX)]


def test_fit_writes_every_artefact(tmp_path):
    cfg = tiny(num_test=50)
    trainer = SeqGANTrainer(cfg, tmp_path, progress=False)
    first = trainer.fit()
    summary = trainer.fit()  # a finished run: fit() again changes nothing but wall_s
    assert {k: v for k, v in first.items() if k != "wall_s"} == {
        k: v for k, v in summary.items() if k != "wall_s"}

    assert json.loads((tmp_path / "config.json").read_text()) == json.loads(cfg.to_json())
    records = read_metrics(tmp_path)
    assert [(r["phase"], r["epoch"]) for r in records] == [
        ("mle", 0), ("mle", 2), ("mle", 3), ("adv", 2), ("adv", 3)]
    for r in records:
        assert {"phase", "epoch", "time_s", "nll_oracle", "nll_test"} <= set(r)
        assert r["nll_oracle"] > 0 and r["nll_test"] > 0
    times = [r["time_s"] for r in records]
    assert times == sorted(times)

    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == summary
    for key, value in records[-1].items():
        assert summary[key] == value  # final metrics at the top level, same keys
    assert summary["nll_oracle_init"] == records[0]["nll_oracle"]
    assert summary["nll_oracle_mle"] == records[2]["nll_oracle"]
    assert summary["nll_oracle_adv"] == records[4]["nll_oracle"]
    assert summary["backend"] == "reference" and summary["adv_batches"] == 3

    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    latest = ckpt.latest_checkpoint(tmp_path)
    assert latest is not None and latest.parent == tmp_path / "checkpoints"
    tensors, state = ckpt.load_checkpoint(latest)
    assert set(tensors) == {"generator", "rollout", "discriminator", "optimizers", "rng",
                            "best_generator"}
    assert state["phase"] == "done" and state["adv_batch"] == 3 and state["mle_epoch"] == 3
    assert state["model"]["vocab_size"] == 61 and state["model"]["seq_len"] == 7
    assert len(list((tmp_path / "checkpoints").iterdir())) == 2  # LATEST + one checkpoint
    assert temp_files(tmp_path) == []


def test_best_generator_selected_by_validation_and_resumed(tmp_path):
    """select_metric (oracle: nll_oracle, minimised) keeps the best of the final MLE and the
    adversarial evaluations in best/; the summary reports it beside the last point; an
    interrupted run resumes to the same best, and best/ follows the restored state."""
    from seqgan_fast.train.trainer import BEST_DIR

    cfg = tiny(adv_batches=4, eval_every=1)
    full = SeqGANTrainer(cfg, tmp_path / "full", progress=False).fit()
    records = read_metrics(tmp_path / "full")
    cands = [r for r in records if r["phase"] == "adv" or r["epoch"] == 3 and r["phase"] == "mle"]
    want = min(cands, key=lambda r: r["nll_oracle"])
    sel = full["selected"]
    assert sel["metric"] == "nll_oracle" and sel["mode"] == "min"
    assert sel["value"] == want["nll_oracle"]
    assert (sel["phase"], sel["epoch"]) == (want["phase"], want["epoch"])
    assert sel["adversarial_beat_mle"] == (want["phase"] == "adv")
    assert full["last"]["nll_oracle"] == records[-1]["nll_oracle"]
    best = ckpt.latest_checkpoint(tmp_path / "full" / BEST_DIR)
    g_best = ckpt.load_checkpoint(best, groups=("generator",))[0]["generator"]
    # the saved best generator really scores the selected value
    task = OracleTask(cfg)
    g = Generator(61, 8, 16, 7, task.start_token)
    g.load_state_dict(g_best)
    assert task.evaluate(g, phase="adv", epoch=0)["nll_oracle"] == pytest.approx(sel["value"],
                                                                                  abs=1e-6)
    # interrupted after 2 adversarial batches, then resumed: the same selection
    SeqGANTrainer(tiny(adv_batches=2, eval_every=1), tmp_path / "cut", progress=False).fit()
    resumed = SeqGANTrainer(cfg, tmp_path / "cut", resume=True, progress=False).fit()
    assert resumed["selected"] == {**sel, "folder": str(tmp_path / "cut" / BEST_DIR)}
    g_cut = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "cut" / BEST_DIR),
                                 groups=("generator",))[0]["generator"]
    for k in g_best:
        assert torch.equal(g_best[k], g_cut[k])


def test_select_min_z_keeps_the_selected_unless_the_paired_gain_is_significant(
        tmp_path, monkeypatch):
    """select_min_z: a better-valued candidate replaces the selected one only when its
    paired per-user gain exceeds select_min_z standard errors; the passed-over ones are
    reported; after a resume the selected generator's per-user values are recomputed."""
    t = SeqGANTrainer(tiny(select_metric="val_q", select_min_z=2.0, adv_batches=0),
                      tmp_path, progress=False)
    users = np.arange(100)

    def _key(g) -> float:
        return round(sum(float(p.detach().sum()) for p in g.parameters()), 3)

    per_user = {}  # generator parameters' sum -> per-user values of "val_q"
    # None: the generator just evaluated (t.generator here); a resume passes best/'s copy
    monkeypatch.setattr(t.task, "per_user_values", lambda name, g=None: per_user[
        _key(t.generator if g is None else g)])

    def evaluate(phase, epoch, values):
        with torch.no_grad():
            next(t.generator.parameters()).add_(1.0)  # a new generator for each evaluation
        per_user[_key(t.generator)] = values
        t.run.consider_best({"phase": phase, "epoch": epoch, "val_q": float(values.mean())},
                            candidate=True)

    base = (users % 10 == 0).astype(float)  # 0.10
    evaluate("mle", 3, base)
    assert t.state["best"]["phase"] == "mle"
    noisy = base.copy()
    noisy[[1, 2]] = 1.0  # +0.02: 2 users of 100, z = 1.42
    evaluate("adv", 1, noisy)
    assert (t.state["best"]["phase"], t.state["best"]["epoch"]) == ("mle", 3)
    passed = t.state["not_selected"]
    assert passed[0]["epoch"] == 1 and passed[0]["z"] == pytest.approx(1.4213, abs=1e-3)
    strong = base.copy()
    strong[np.flatnonzero(users % 10 != 0)[:12]] = 1.0  # +0.12: z = 3.6
    evaluate("adv", 2, strong)
    assert (t.state["best"]["phase"], t.state["best"]["epoch"]) == ("adv", 2)
    assert t.state["best"]["gain_z"] > 2.0
    # a resumed run has no per-user values in memory: they are recomputed from best/'s weights
    t.run._best_per_user = None
    worse = strong.copy()
    worse[0] = 0.0
    evaluate("adv", 3, worse)  # a lower value: not even tested
    assert t.state["best"]["epoch"] == 2 and len(t.state["not_selected"]) == 1
    evaluate("adv", 4, np.maximum(strong, (users == 77).astype(float)))  # +0.01, z = 1
    assert t.state["best"]["epoch"] == 2 and t.state["not_selected"][-1]["z"] == \
        pytest.approx(1.0)


def test_select_metric_errors_and_off(tmp_path):
    from seqgan_fast.train.trainer import BEST_DIR

    with pytest.raises(ConfigError, match="select_metric='val_ndcg@10' is not among"):
        SeqGANTrainer(tiny(select_metric="val_ndcg@10"), tmp_path / "a", progress=False).fit()
    summary = SeqGANTrainer(tiny(select_metric="none"), tmp_path / "b", progress=False).fit()
    assert "selected" not in summary
    assert ckpt.latest_checkpoint(tmp_path / "b" / BEST_DIR) is None


def test_mle_lowers_nll_oracle(tmp_path):
    summary = SeqGANTrainer(tiny(mle_epochs=6, d_pretrain_rounds=0, adv_batches=0), tmp_path,
                            progress=False).fit()
    records = read_metrics(tmp_path)
    assert [r["phase"] for r in records] == ["mle"] * 4
    nll = [r["nll_oracle"] for r in records]
    assert nll[-1] < nll[0] - 0.3, nll
    assert "nll_oracle_adv" not in summary and summary["phase"] == "mle"


class _Interrupt(Exception):
    pass


def test_resume_continues_exactly_where_it_stopped(tmp_path, monkeypatch):
    # Evaluations: MLE 0, 2, 3; adversarial 2, 4, 5. Checkpoints: every 2nd evaluation
    # (MLE 2, adversarial 2) and at each phase end.
    cfg = tiny(adv_batches=5, eval_every=2, checkpoint_every=2, num_test=30)
    full = SeqGANTrainer(cfg, tmp_path / "full", progress=False).fit()

    calls = {"n": 0}
    original = SeqGANTrainer.policy_gradient_step

    def flaky(self):
        calls["n"] += 1
        if calls["n"] == 5:  # inside adversarial batch 5; last checkpoint: after batch 2
            raise _Interrupt
        return original(self)

    monkeypatch.setattr(SeqGANTrainer, "policy_gradient_step", flaky)
    with pytest.raises(_Interrupt):
        SeqGANTrainer(cfg, tmp_path / "cut", progress=False).fit()
    monkeypatch.setattr(SeqGANTrainer, "policy_gradient_step", original)
    _, state = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "cut"))
    assert state["phase"] == "adv" and state["adv_batch"] == 2
    assert len(read_metrics(tmp_path / "cut")) == 5  # adversarial 4 was evaluated later

    resumed = SeqGANTrainer(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed.state["adv_batch"] == 2 and resumed.state["phase"] == "adv"
    summary = resumed.fit()

    def strip(rs):
        return [{k: v for k, v in r.items() if k != "time_s"} for r in rs]

    assert strip(read_metrics(tmp_path / "cut")) == strip(read_metrics(tmp_path / "full"))
    assert summary["nll_test"] == full["nll_test"]
    # Bit-identical models (sampled-token metrics alone would hide small differences).
    a, _ = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "full"))
    b, _ = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "cut"))
    for group in ("generator", "rollout", "discriminator", "optimizers"):
        assert a[group].keys() == b[group].keys()
        for key in a[group]:
            assert torch.equal(a[group][key], b[group][key]), (group, key)
    assert temp_files(tmp_path) == []


def test_resume_extends_a_finished_schedule(tmp_path):
    SeqGANTrainer(tiny(adv_batches=1), tmp_path, progress=False).fit()
    summary = SeqGANTrainer(tiny(adv_batches=3), tmp_path, resume=True, progress=False).fit()
    assert summary["adv_batches"] == 3
    assert [(r["phase"], r["epoch"]) for r in read_metrics(tmp_path)][-3:] == [
        ("adv", 1), ("adv", 2), ("adv", 3)]


def test_resume_refuses_without_checkpoint_or_with_other_model(tmp_path):
    with pytest.raises(ConfigError, match="nothing to resume"):
        SeqGANTrainer(tiny(), tmp_path / "empty", resume=True)
    SeqGANTrainer(tiny(adv_batches=1, d_pretrain_rounds=0), tmp_path / "run",
                  progress=False).fit()
    with pytest.raises(ConfigError, match="g_hidden_dim"):
        SeqGANTrainer(tiny(g_hidden_dim=12), tmp_path / "run", resume=True)


def test_separate_encoder_reads_history_len_and_a_resume_keeps_what_was_recorded(tmp_path):
    cfg = tiny(g_encoder="separate", history_len=4, mle_epochs=1, d_pretrain_rounds=0,
               adv_batches=1)
    trainer = SeqGANTrainer(cfg, tmp_path, progress=False)
    assert trainer.generator.encoder_len == 4  # the conditioning history, not T // 2 = 3
    trainer.fit()
    # a run from before that default recorded the model's seq_len // 2: resuming keeps it
    ckpt_dir = tmp_path / "checkpoints" / (tmp_path / "checkpoints" / "LATEST").read_text().strip()
    state = json.loads((ckpt_dir / "state.json").read_text())
    assert state["model"]["g_history"] == 4
    state["model"]["g_history"] = 3
    (ckpt_dir / "state.json").write_text(json.dumps(state))
    resumed = SeqGANTrainer(cfg.replace(adv_batches=2), tmp_path, resume=True, progress=False)
    assert resumed.generator.encoder_len == 3
    with pytest.raises(ConfigError, match="g_history"):  # T = 7: at most 6 positions
        SeqGANTrainer(tiny(g_encoder="separate", g_history=7), tmp_path / "bad")


def test_existing_run_is_kept_unless_overwrite(tmp_path):
    cfg = tiny(mle_epochs=1, d_pretrain_rounds=0, adv_batches=0)
    SeqGANTrainer(cfg, tmp_path, progress=False).fit()
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match="already holds a run"):
        SeqGANTrainer(cfg, tmp_path)
    with pytest.raises(ConfigError):  # invalid config: refused before anything is written
        SeqGANTrainer(cfg.replace(mle_epochs=-1), tmp_path, overwrite=True)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    SeqGANTrainer(cfg.replace(mle_epochs=2), tmp_path, overwrite=True, progress=False).fit()
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [0, 2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_unavailable_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="CUDA is not available"):
        SeqGANTrainer(tiny(device="cuda"), tmp_path)
    assert not tmp_path.joinpath("config.json").exists()


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    g = {"w": torch.arange(5.0)}
    ckpt.save_checkpoint(tmp_path, 1, {"a": g, "b": g}, {"step": 1})
    ckpt.save_checkpoint(tmp_path, 2, {"a": {"w": g["w"] + 1}, "b": g}, {"step": 2})
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["000002", "LATEST"]

    calls = {"n": 0}
    real_save = ckpt.save_file

    def failing_save(tensors, path):
        calls["n"] += 1
        if calls["n"] == 2:  # the second tensor group of checkpoint 3
            raise OSError("disk full")
        real_save(tensors, path)

    monkeypatch.setattr(ckpt, "save_file", failing_save)
    with pytest.raises(CheckpointError, match="cannot write a checkpoint in .*: disk full; "
                                              "the previous checkpoint is kept"):
        ckpt.save_checkpoint(tmp_path, 3, {"a": {"w": g["w"] * 7}, "b": g}, {"step": 3})
    latest = ckpt.latest_checkpoint(tmp_path)
    tensors, state = ckpt.load_checkpoint(latest)
    assert latest.name == "000002" and state["step"] == 2
    assert torch.equal(tensors["a"]["w"], g["w"] + 1)
    assert temp_files(tmp_path) == []

    ckpt.atomic_write_json(tmp_path / "x.json", {"k": [1, 2]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"k": [1, 2]}
    assert temp_files(tmp_path) == []


def test_optimizer_state_round_trips(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 3)).square().sum().backward()
        opt.step()
    flat = ckpt.optimizer_tensors(opt, "g")
    other = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=0.01)
    ckpt.load_optimizer(other, flat, "g")
    a, b = opt.state_dict()["state"], other.state_dict()["state"]
    assert a.keys() == b.keys()
    for pid in a:
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(a[pid][key], b[pid][key])


def test_rollout_policy_update_rule():
    torch.manual_seed(3)
    generator, rollout = Generator(23, 5, 6, 4), Generator(23, 5, 6, 4)
    g0 = {k: v.clone() for k, v in generator.state_dict().items()}
    r0 = {k: v.clone() for k, v in rollout.state_dict().items()}
    update_rollout_policy(rollout, generator, 0.8)
    r1 = rollout.state_dict()
    assert torch.equal(r1["embedding.weight"], g0["embedding.weight"])
    mixed = [k for k in r0 if not k.startswith("embedding.")]
    assert {"lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "output.weight",
            "output.bias"} <= set(mixed)
    for k in mixed:
        torch.testing.assert_close(r1[k], 0.8 * r0[k] + 0.2 * g0[k])
    for k, v in generator.state_dict().items():
        assert torch.equal(v, g0[k])  # the generator is untouched


def test_derived_seeds_are_stable_and_distinct():
    seeds = [draw_seed(0, 1, i) for i in range(100)]
    assert len(set(seeds)) == 100 and all(0 <= s < 2**64 for s in seeds)
    assert seeds == [draw_seed(0, 1, i) for i in range(100)]
    assert draw_seed(1, 1, 0) != seeds[0] and draw_seed(0, 2, 0) != seeds[0]


def test_oracle_task_seeded_and_from_file(tmp_path, oracle_npz):
    task = OracleTask(tiny(num_test=40))
    x = task.train_sequences()
    assert x.shape == (200, 7) and x.dtype == torch.int64
    assert torch.equal(x, OracleTask(tiny(num_test=40)).train_sequences())  # fixed seed
    assert not torch.equal(x, OracleTask(tiny(oracle_seed=1)).train_sequences())
    metrics = task.evaluate(task.oracle, phase="mle", epoch=0)
    assert set(metrics) == {"nll_oracle", "nll_test"}

    with pytest.raises(FileNotFoundError, match="oracle parameter file"):
        OracleTask(tiny(oracle_params=str(tmp_path / "missing.npz")))
    paper = OracleTask(TrainConfig(oracle_params=str(oracle_npz), num_train=37))
    assert paper.vocab_size == 5000 and paper.train_sequences().shape == (37, 20)
    # The paper's oracle scores its own samples at about 5.75 nats/token (data README).
    assert abs(paper.oracle.nll(paper.train_sequences()) - 5.75) < 0.6


def test_combined_objective_config_and_step(tmp_path):
    """adv_mle_weight > 0 adds the likelihood term (a different step than plain SeqGAN from
    the same state); bad weights are refused naming the key."""
    with pytest.raises(ConfigError, match="adv_mle_weight"):
        TrainConfig(adv_mle_weight=-1.0).validate()
    with pytest.raises(ConfigError, match="adv_pg_weight"):
        TrainConfig(adv_pg_weight=0.0, adv_mle_weight=0.0).validate()
    with pytest.raises(ConfigError, match="reward_baseline"):
        TrainConfig(reward_baseline="median").validate()
    weights = []
    for beta in (0.0, 5.0):
        cfg = tiny(adv_mle_weight=beta, reward_baseline="batch_mean")
        t = SeqGANTrainer(cfg, tmp_path / f"b{beta}", progress=False)
        t.policy_gradient_step()
        weights.append(t.generator.output.weight.detach().clone())
    assert not torch.equal(weights[0], weights[1])
