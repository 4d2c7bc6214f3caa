"""Checkpoints (seqgan_fast/run/checkpoint.py): non-finite tensors refused, digests recorded
and checked, LATEST confined to the checkpoints folder."""
from __future__ import annotations

import json

import pytest
import torch

from seqgan_fast.run import checkpoint as ckpt

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.one_thread


def test_save_refuses_non_finite_tensors_and_keeps_the_previous(tmp_path):
    good = {"g": {"w": torch.ones(2)}}
    ckpt.save_checkpoint(tmp_path, 1, good, {"step": 1})
    with pytest.raises(ckpt.NonFiniteCheckpointError, match="'w'"):
        ckpt.save_checkpoint(tmp_path, 2, {"g": {"w": torch.tensor([1.0, float("inf")])}},
                             {"step": 2})
    latest = ckpt.latest_checkpoint(tmp_path)
    assert latest.name == "000001"
    tensors, state = ckpt.load_checkpoint(latest)
    assert state["step"] == 1 and torch.equal(tensors["g"]["w"], torch.ones(2))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["000001", "LATEST"]


def test_digests_are_recorded_and_checked(tmp_path):
    path = ckpt.save_checkpoint(tmp_path, 1, {"a": {"w": torch.arange(6.0)},
                                              "b": {"v": torch.zeros(2)}}, {})
    state = json.loads((path / "state.json").read_text())
    assert set(state["digests"]) == {"a", "b"}
    for group, digest in state["digests"].items():
        assert digest == ckpt.file_digest(path / f"{group}.safetensors")
    ckpt.load_checkpoint(path)
    data = bytearray((path / "b.safetensors").read_bytes())
    data[-1] ^= 1
    (path / "b.safetensors").write_bytes(bytes(data))
    ckpt.load_checkpoint(path, groups=("a",))  # only what is read is checked
    with pytest.raises(ckpt.CheckpointError, match="b.safetensors: corrupted"):
        ckpt.load_checkpoint(path)


@pytest.mark.parametrize("name", ["../../x", "/abs/000001", "000001\n000002", "", "..",
                                  "000001/../000001"])
def test_latest_must_name_a_folder_inside_checkpoints(tmp_path, name):
    ckpt.save_checkpoint(tmp_path, 1, {"a": {"w": torch.ones(1)}}, {})
    (tmp_path / "checkpoints" / "LATEST").write_text(name)
    with pytest.raises(ckpt.CheckpointError, match="not a checkpoint folder"):
        ckpt.latest_checkpoint(tmp_path)
