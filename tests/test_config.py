"""TrainConfig: presets, ``--set`` parsing, validation, JSON round trip."""
from __future__ import annotations

import json

import pytest

from seqgan_fast import TrainConfig
from seqgan_fast.config import PRESETS, ConfigError


def test_default_and_preset_names():
    assert TrainConfig().preset_name == "custom"
    json.loads(TrainConfig().to_json())
    cfg = TrainConfig.preset("quick", seed=7)
    assert cfg.preset_name == "quick" and cfg.seed == 7
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        TrainConfig.preset("nope")


def test_paper_preset_is_the_reference_schedule():
    p = TrainConfig.preset("paper")
    assert (p.batch_size, p.num_train, p.g_emb_dim, p.g_hidden_dim) == (64, 10_000, 32, 32)
    assert (p.g_lr, p.g_grad_clip, p.mle_epochs) == (0.01, 5.0, 120)
    assert (p.d_emb_dim, p.d_lr, p.d_pretrain_rounds, p.d_num_negatives, p.d_epochs) == (
        64, 1e-4, 50, 10_000, 3)
    assert (p.adv_batches, p.adv_g_steps, p.num_rollouts, p.adv_d_rounds) == (200, 1, 16, 5)
    assert (p.rollout_update_rate, p.num_eval, p.eval_every) == (0.8, 10_000, 5)
    assert (p.vocab_size, p.seq_len) == (5000, 20)


def test_quick_preset_is_a_scaled_paper_run():
    q, p = TrainConfig.preset("quick"), TrainConfig.preset("paper")
    for key in ("num_train", "mle_epochs", "d_pretrain_rounds", "adv_batches", "num_eval"):
        assert 0 < getattr(q, key) < getattr(p, key), key
    for key in ("vocab_size", "seq_len", "g_emb_dim", "g_hidden_dim", "g_lr", "batch_size",
                "rollout_update_rate", "task", "data"):
        assert getattr(q, key) == getattr(p, key), key
    for name in PRESETS:
        TrainConfig.preset(name).validate()


@pytest.mark.parametrize("item, key, value", [
    ("mle_epochs=17", "mle_epochs", 17),
    ("seed = 3", "seed", 3),
    ("d_lr=3e-4", "d_lr", 3e-4),
    ("g_lr=0.5", "g_lr", 0.5),
    ("rollout_update_rate=1", "rollout_update_rate", 1.0),
    ("mask_history=false", "mask_history", False),
    ("mask_history=Yes", "mask_history", True),
    ("topk=1,7,20", "topk", (1, 7, 20)),
    ("topk=(3, 5)", "topk", (3, 5)),
    ("d_filter_sizes=[2,3,5]", "d_filter_sizes", (2, 3, 5)),
    ("test_data=None", "test_data", None),
    ("oracle_params=none", "oracle_params", None),
    ("oracle_params=/x/y.npz", "oracle_params", "/x/y.npz"),
    ("backend=cpp", "backend", "cpp"),
])
def test_set_parses_by_field_type(item, key, value):
    cfg = TrainConfig().with_overrides([item])
    got = getattr(cfg, key)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("item, message", [
    ("mle_epochs", "expects key=value"),
    ("=3", "expects key=value"),
    ("nosuch=1", "unknown config key 'nosuch'"),
    ("mle_epochs=ten", "bad value 'ten' for mle_epochs"),
    ("mle_epochs=2.5", "bad value '2.5' for mle_epochs"),
    ("g_lr=fast", "bad value 'fast' for g_lr"),
    ("mask_history=maybe", "bad value 'maybe' for mask_history"),
    ("topk=5,x", "bad value '5,x' for topk"),
])
def test_set_rejects_bad_items(item, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig().with_overrides([item])


@pytest.mark.parametrize("changes, key", [
    ({"mle_epochs": -1}, "mle_epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"g_lr": 0.0}, "g_lr"),
    ({"rollout_update_rate": 1.5}, "rollout_update_rate"),
    ({"d_dropout_keep": 0.0}, "d_dropout_keep"),
    ({"task": "images"}, "task"),
    ({"backend": "opencl"}, "backend"),
    ({"device": "tpu"}, "device"),
    ({"d_filter_sizes": (2, 3)}, "d_filter_sizes"),
    ({"g_history": 3}, "g_history"),  # tied encoder: nothing reads it
    ({"g_encoder": "separate", "history_len": 5, "g_history": 6}, "g_history"),
])
def test_validate_names_the_bad_key(changes, key):
    with pytest.raises(ConfigError, match=key):
        TrainConfig().replace(**changes).validate()


def test_a_separate_encoder_reads_the_conditioning_history_by_default():
    base = TrainConfig().replace(g_encoder="separate")
    assert base.encoder_len() is None  # the model's seq_len // 2
    assert base.replace(history_len=15).encoder_len() == 15
    assert base.replace(history_len=15, g_history=4).validate().encoder_len() == 4


def test_json_round_trip_and_unknown_keys():
    cfg = TrainConfig.preset("quick").with_overrides(["topk=3,9", "oracle_params=/p.npz"])
    back = TrainConfig.from_dict(json.loads(cfg.to_json()))
    assert back == cfg and isinstance(back.topk, tuple)
    with pytest.raises(ConfigError, match="unknown config key"):
        TrainConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ConfigError, match="unknown config key"):
        cfg.replace(bogus=1)
