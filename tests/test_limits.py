"""Value limits of a TrainConfig (seqgan_fast/config/limits.py): every preset passes, every
refusal names its key."""
from __future__ import annotations

import pytest

from seqgan_fast.config import PRESETS, ConfigError, TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.one_thread


def test_every_preset_passes_the_limits():
    for name in PRESETS:
        TrainConfig.preset(name).validate()


@pytest.mark.parametrize("change,key", [
    (dict(g_lr=float("inf")), "g_lr"), (dict(d_lr=float("nan")), "d_lr"),
    (dict(g_lr=100.0), "g_lr"), (dict(temperature=1e-45), "temperature"),
    (dict(temperature=1e9), "temperature"), (dict(g_grad_clip=float("inf")), "g_grad_clip"),
    (dict(rollout_update_rate=float("nan")), "rollout_update_rate"),
    (dict(num_train="100"), "num_train"), (dict(mask_history=1), "mask_history"),
    (dict(topk=(0,)), "topk"), (dict(d_num_filters=(8, 0)), "d_num_filters"),
    (dict(d_filter_sizes=(2, -1)), "d_filter_sizes"), (dict(seed=-1), "seed"),
    (dict(oracle_seed=2**64), "oracle_seed"), (dict(g_hidden_dim=2**20), "g_hidden_dim"),
    (dict(vocab_size=2**24, g_emb_dim=256), "vocab_size"),
    (dict(num_rollouts=2**20, batch_size=2**20), "rollout rows"),
    (dict(d_num_negatives=2**31 - 1, seq_len=4096), "memory"),
    (dict(eval_every=2**40), "eval_every"), (dict(task=3), "task"),
])
def test_limits_name_the_key(change, key):
    base = dict(d_filter_sizes=(2, 3), d_num_filters=(8, 8))
    with pytest.raises(ConfigError, match=key):
        TrainConfig.preset("quick", **{**base, **change}).validate()
