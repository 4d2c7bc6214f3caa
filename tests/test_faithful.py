"""The reference code's effective behaviour (issue 12): policy-gradient scale, rollout policy,
discriminator initialisation, data order and evaluation points; each key's alternative too."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import read_metrics, tiny

from seqgan_fast import Generator, SeqGANTrainer, TrainConfig
from seqgan_fast.config import OFFICIAL, ConfigError
from seqgan_fast.models import Discriminator, Highway
from seqgan_fast.train import trainer as trainer_mod

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.one_thread


def test_paper_preset_is_the_official_behaviour():
    p = TrainConfig.preset("paper")
    assert (p.pg_norm, p.rollout_policy, p.mle_shuffle, p.d_shuffle, p.eval_schedule) == (
        "sum", "current", False, "once", "official")
    assert {k: getattr(p, k) for k in OFFICIAL} == OFFICIAL
    for key, value in (("pg_norm", "mean"), ("rollout_policy", "ema"), ("d_shuffle", "never"),
                       ("eval_schedule", "paper"), ("mle_shuffle", "yes")):
        with pytest.raises(ConfigError, match=key):
            p.replace(**{key: value}).validate()
    assert TrainConfig().with_overrides(["pg_norm=batch_mean"]).validate().pg_norm == \
        "batch_mean"
    assert TrainConfig().with_overrides(["mle_shuffle=true"]).mle_shuffle is True


# -- 1. policy-gradient loss scale -------------------------------------------------------------
def _grads(g: Generator, loss: torch.Tensor) -> torch.Tensor:
    g.zero_grad(set_to_none=True)
    loss.backward()
    return torch.cat([p.grad.reshape(-1) for p in g.parameters()])


def test_pg_loss_is_the_official_sum_over_positions():
    torch.manual_seed(0)
    B, T, V = 6, 5, 11
    g = Generator(V, 4, 7, T).double()
    x = torch.randint(0, V, (B, T))
    rewards = torch.rand(B, T, dtype=torch.float64)
    # The official g_loss, written out: -sum over all B*T positions of log p(x_t) * R_t.
    inputs = torch.cat([torch.zeros(B, 1, dtype=torch.int64), x[:, :-1]], 1)
    logp = F.log_softmax(g.output(g.lstm(g.embedding(inputs))[0]), -1)
    explicit = -sum(logp[b, t, x[b, t]] * rewards[b, t] for b in range(B) for t in range(T))

    g_sum = _grads(g, g.pg_loss(x, rewards, norm="sum"))
    torch.testing.assert_close(g.pg_loss(x, rewards), explicit)  # "sum" is the default
    torch.testing.assert_close(g_sum, _grads(g, explicit))
    torch.testing.assert_close(g_sum, B * _grads(g, g.pg_loss(x, rewards, norm="batch_mean")))
    with pytest.raises(ValueError, match="norm"):
        g.pg_loss(x, rewards, norm="token_mean")


@pytest.mark.parametrize("norm", ["sum", "batch_mean"])
def test_trainer_uses_the_configured_pg_norm(tmp_path, monkeypatch, norm):
    seen = []
    original = Generator.pg_loss

    def spy(self, x, rewards, norm="sum"):
        seen.append((norm, x.shape[0]))
        return original(self, x, rewards, norm=norm)

    monkeypatch.setattr(Generator, "pg_loss", spy)
    SeqGANTrainer(tiny(pg_norm=norm, adv_batches=2), tmp_path, progress=False).fit()
    assert seen == [(norm, 32)] * 2


# -- 2. rollout policy -------------------------------------------------------------------------
def _rollout_spy(monkeypatch) -> list[dict[str, torch.Tensor]]:
    """Record the parameters of the policy every rollout_rewards call is given."""
    calls: list[dict[str, torch.Tensor]] = []
    original = trainer_mod.ops.rollout_rewards

    def spy(policy, discriminator, x, **kw):
        calls.append({"policy": policy, **{k: v.detach().clone()
                                           for k, v in policy.state_dict().items()}})
        return original(policy, discriminator, x, **kw)

    monkeypatch.setattr(trainer_mod.ops, "rollout_rewards", spy)
    return calls


def test_rollouts_use_the_current_generator(tmp_path, monkeypatch):
    calls = _rollout_spy(monkeypatch)
    gens = []
    original = SeqGANTrainer.policy_gradient_step

    def step(self):
        gens.append({k: v.detach().clone() for k, v in self.generator.state_dict().items()})
        return original(self)

    monkeypatch.setattr(SeqGANTrainer, "policy_gradient_step", step)
    tr = SeqGANTrainer(tiny(rollout_policy="current", adv_batches=3), tmp_path, progress=False)
    tr.fit()
    assert len(calls) == 3
    for call, gen in zip(calls, gens, strict=True):
        assert call["policy"] is tr.generator
        for k, v in gen.items():
            assert torch.equal(call[k], v), k  # the generator as it is at that step


def test_delayed_rollout_policy_follows_the_update_rule(tmp_path, monkeypatch):
    calls = _rollout_spy(monkeypatch)
    tr = SeqGANTrainer(tiny(rollout_policy="delayed", adv_batches=3), tmp_path, progress=False)
    tr.fit()
    assert len(calls) == 3 and all(c["policy"] is tr.rollout_policy for c in calls)
    # Batch 2's rollouts use 0.8 * (batch 1's rollout policy) + 0.2 * (generator after step 1),
    # which differs from the current generator.
    rate = tr.cfg.rollout_update_rate
    first, second = calls[0], calls[1]
    for k in first:
        if k == "policy" or k.startswith("embedding."):
            continue
        assert not torch.equal(first[k], second[k]), k
    # Replay: the final rollout policy is the update applied after the last step.
    final = {k: v for k, v in tr.rollout_policy.state_dict().items()}
    gen = tr.generator.state_dict()
    for k, v in final.items():
        expect = gen[k] if k.startswith("embedding.") else rate * calls[2][k] + (1 - rate) * gen[k]
        torch.testing.assert_close(v, expect)


# -- 3. discriminator initialisation ----------------------------------------------------------
def test_discriminator_initialisation_is_the_official_one():
    torch.manual_seed(0)
    d = Discriminator(5000, seq_len=20)
    w, b = d.output.weight.detach(), d.output.bias.detach()
    assert w.shape == (2, 1720)
    assert torch.equal(b, torch.full_like(b, 0.1))
    # tf.truncated_normal(stddev=0.1): re-drawn beyond 2 std, so |w| <= 0.2 and std 0.088.
    assert float(w.abs().max()) <= 0.2 and float(w.abs().max()) > 0.19
    assert float(w.std()) == pytest.approx(0.1 * 0.8796, rel=0.05)
    assert abs(float(w.mean())) < 0.01
    # Highway: Glorot uniform for its matrices and biases (tf.get_variable's default), and
    # no -2 gate offset: a = sqrt(6 / (1720 + 1720)), for a vector of 1720 as well.
    bound = math.sqrt(6 / (2 * 1720))
    hw = d.highway
    for p in (hw.hidden.weight, hw.hidden.bias, hw.gate.weight, hw.gate.bias):
        p = p.detach()
        assert float(p.abs().max()) <= bound
        assert float(p.abs().max()) > 0.98 * bound
        assert float(p.std()) == pytest.approx(bound / math.sqrt(3), rel=0.06)
        assert abs(float(p.mean())) < 0.1 * bound
    shifted = Highway(300, transform_bias=-2.0)
    assert float(shifted.gate.bias.detach().mean()) == pytest.approx(-2.0, abs=0.02)


# -- 4. data order -----------------------------------------------------------------------------
def test_mle_batches_are_in_a_fixed_order_unless_shuffled(tmp_path, monkeypatch):
    batches: list[torch.Tensor] = []
    original = Generator.mle_loss
    monkeypatch.setattr(Generator, "mle_loss",
                        lambda self, x, **kw: batches.append(x.clone()) or original(self, x, **kw))
    tr = SeqGANTrainer(tiny(mle_shuffle=False), tmp_path / "fixed", progress=False)
    tr.mle_epoch()
    tr.mle_epoch()
    n = 200 // 32
    assert len(batches) == 2 * n
    for i in range(n):  # the file's order, every epoch, the incomplete last batch dropped
        assert torch.equal(batches[i], tr.train_x[32 * i: 32 * (i + 1)])
        assert torch.equal(batches[n + i], batches[i])

    batches.clear()
    tr = SeqGANTrainer(tiny(mle_shuffle=True), tmp_path / "shuffled", progress=False)
    tr.mle_epoch()
    tr.mle_epoch()
    assert not torch.equal(torch.cat(batches[:n]), torch.cat(batches[n:]))
    assert not torch.equal(torch.cat(batches[:n]), tr.train_x[: 32 * n])


@pytest.mark.parametrize("d_shuffle", ["once", "epoch"])
def test_discriminator_data_shuffled_once_per_round(tmp_path, monkeypatch, d_shuffle):
    from seqgan_fast.train.dstep import DiscriminatorStep

    seen: list[torch.Tensor] = []
    original = DiscriminatorStep.__call__
    monkeypatch.setattr(DiscriminatorStep, "__call__",
                        lambda self, x, y, *rest: seen.append(x.clone())
                        or original(self, x, y, *rest))
    # 100 positives + 100 negatives in batches of 32: 6 whole batches (192), 8 dropped.
    tr = SeqGANTrainer(tiny(d_shuffle=d_shuffle, d_epochs=3), tmp_path, progress=False)
    tr.discriminator_round()
    assert len(seen) == 3 * 6 and all(b.shape[0] == 32 for b in seen)
    epochs = [torch.cat(seen[6 * e: 6 * (e + 1)]) for e in range(3)]
    same = [torch.equal(epochs[0], e) for e in epochs[1:]]
    assert same == ([True, True] if d_shuffle == "once" else [False, False])
    # Shuffled: the batches mix positives and negatives.
    pos = {tuple(r) for r in tr.train_x.tolist()}
    first = [tuple(r) in pos for r in seen[0].tolist()]
    assert 0 < sum(first) < 32


def test_paper_discriminator_round_has_312_batches(tmp_path):
    tr = SeqGANTrainer(tiny(num_train=10_000, d_num_negatives=10_000, batch_size=64),
                       tmp_path, progress=False)
    batches = list(tr._batches(20_000, seed=0))
    assert len(batches) == 312 and sum(b.numel() for b in batches) == 19_968


# -- 5. evaluation points ----------------------------------------------------------------------
def test_official_evaluation_points_and_labels(tmp_path, monkeypatch):
    done = {"mle": 0, "pg": 0, "d_adv": 0}
    points = []
    orig_mle, orig_pg = SeqGANTrainer.mle_epoch, SeqGANTrainer.policy_gradient_step
    orig_d, orig_eval = SeqGANTrainer.discriminator_round, SeqGANTrainer.evaluate

    def count(key, fn):
        def wrapped(self):
            done[key] += 1 if key != "d_adv" or self.state["phase"] == "adv" else 0
            return fn(self)
        return wrapped

    def evaluate(self, phase, epoch, final=False):
        points.append((phase, epoch, final, dict(done)))
        return orig_eval(self, phase, epoch, final)

    monkeypatch.setattr(SeqGANTrainer, "mle_epoch", count("mle", orig_mle))
    monkeypatch.setattr(SeqGANTrainer, "policy_gradient_step", count("pg", orig_pg))
    monkeypatch.setattr(SeqGANTrainer, "discriminator_round", count("d_adv", orig_d))
    monkeypatch.setattr(SeqGANTrainer, "evaluate", evaluate)
    cfg = tiny(eval_schedule="official", mle_epochs=5, eval_every=2, adv_batches=4,
               adv_d_rounds=2)
    summary = SeqGANTrainer(cfg, tmp_path, progress=False).fit()
    # MLE "epoch k" after k+1 epochs, at k % 2 == 0, and the end of MLE; no untrained point.
    mle = [(e, f, d["mle"]) for p, e, f, d in points if p == "mle"]
    assert mle == [(0, False, 1), (2, False, 3), (4, True, 5)]
    # Adversarial "k": after batch k's generator step, before its discriminator rounds.
    adv = [(e, f, d["pg"], d["d_adv"]) for p, e, f, d in points if p == "adv"]
    assert adv == [(0, False, 1, 0), (2, False, 3, 4), (3, True, 4, 6)]
    assert [(r["phase"], r["epoch"]) for r in read_metrics(tmp_path)] == [
        ("mle", 0), ("mle", 2), ("mle", 4), ("adv", 0), ("adv", 2), ("adv", 3)]
    assert "nll_oracle_init" not in summary and summary["adv_batches"] == 4


def test_official_schedule_resumes_exactly(tmp_path, monkeypatch):
    cfg = tiny(eval_schedule="official", adv_batches=5, eval_every=2, checkpoint_every=1)
    SeqGANTrainer(cfg, tmp_path / "full", progress=False).fit()

    class Stop(Exception):
        pass

    original = SeqGANTrainer.discriminator_round

    def flaky(self):
        if self.state["phase"] == "adv" and self.state["adv_batch"] == 2:
            raise Stop  # batch 2 evaluated, its discriminator round not run
        return original(self)

    monkeypatch.setattr(SeqGANTrainer, "discriminator_round", flaky)
    with pytest.raises(Stop):
        SeqGANTrainer(cfg, tmp_path / "cut", progress=False).fit()
    monkeypatch.setattr(SeqGANTrainer, "discriminator_round", original)
    resumed = SeqGANTrainer(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed.state["adv_batch"] == 1  # the checkpoint after batch 0, not mid-batch 2
    resumed.fit()

    def strip(path):
        return [json.dumps({k: v for k, v in r.items() if k != "time_s"}, sort_keys=True)
                for r in read_metrics(path)]

    assert strip(tmp_path / "cut") == strip(tmp_path / "full")


# -- the comparison script ---------------------------------------------------------------------
def test_paper_curve_parses_and_aligns_the_official_log(tmp_path):
    from seqgan_fast.benchmarks import paper_curve as pc

    log = tmp_path / "experiment-log.txt"
    log.write_text("pre-training...\nepoch:\t0\tnll:\t10.5\nepoch:\t5\tnll:\t9.5\n"
                   "adversarial training...\nepoch:\t0\tnll:\t9.25\n")
    official = pc.parse_official_log(log)
    assert official == {"mle": {0: 10.5, 5: 9.5}, "adv": {0: 9.25}}
    records = [{"phase": "mle", "epoch": 0, "nll_oracle": 10.0},
               {"phase": "mle", "epoch": 7, "nll_oracle": 9.0},
               {"phase": "adv", "epoch": 0, "nll_oracle": 9.0}]
    rows = pc.aligned_rows(records, official)
    assert [(r["phase"], r["label"], r["trained"], r["official"]) for r in rows] == [
        ("mle", 0, 1, 10.5), ("mle", 7, 8, None), ("adv", 0, 1, 9.25)]
    assert rows[0]["diff"] == pytest.approx(-0.5) and rows[1]["diff"] is None
    assert "10.5000" in pc.format_rows(rows)


def test_paper_curve_reads_the_shared_log(shared_data):
    from seqgan_fast.benchmarks import paper_curve as pc

    path = shared_data / "seqgan_oracle" / "experiment-log.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    official = pc.parse_official_log(path)
    assert sorted(official["mle"]) == list(range(0, 120, 5))
    assert (official["mle"][0], official["mle"][115]) == (10.1716, 9.07058)
    assert (official["adv"][0], official["adv"][150]) == (9.08457, 8.6832)


def test_paper_curve_exits_with_a_reason_without_the_data(tmp_path, monkeypatch, capsys):
    from seqgan_fast.benchmarks import paper_curve as pc

    monkeypatch.setenv("SEQGAN_FAST_DATA", str(tmp_path / "nowhere"))
    assert pc.main(["--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "skipped" in err and "target_params.npz" in err and "SEQGAN_FAST_DATA" in err
    assert not (tmp_path / "run").exists()
